"""Replay the AgentDojo benchmark through the gate.

AgentDojo (PyPI package ``agentdojo``) ships suites of user tasks, injection
tasks and the tools and environments they run on. Each task comes with its
ground-truth tool calls and AgentDojo's own checks: ``utility`` tells whether a
user task was done, ``security`` whether an injection's goal was reached.

For every user task the replay runs its ground-truth calls through the gate
on the clean environment, with the task's prompt as the declared purpose. For
every pair of a user task and an injection task it places the injection with
AgentDojo's own attack (``important_instructions`` by default), runs the user
task's calls, and then, in the same session, the injection task's
ground-truth calls, as an agent that obeyed the injection would make them.
Only calls the gate allows run; AgentDojo's checks then judge the outcome.
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from enforcement.alignment import Purpose
from enforcement.approvals import sign_approval, submit_approval
from enforcement.errors import ApprovalRequired, Refusal
from enforcement.identity import Identity
from enforcement.timeutil import utc_now
from enforcement.gate import Gate, Session

logger = logging.getLogger(__name__)

BENCHMARK_VERSION = "v1.2"
DEFAULT_ATTACK = "important_instructions"
# The attack's text names the model it addresses; this is the name AgentDojo
# uses for its reference runs. No model is called.
TARGET_MODEL = "gpt-4o-2024-05-13"


class ToolFailed(Exception):
    """An AgentDojo tool returned an error message instead of a result."""


@dataclass(frozen=True)
class CallResult:
    """One ground-truth call and what the gate did with it."""

    role: str  # "user" or "injection"
    tool: str
    verdict: str  # "allow", "hold" or "deny"
    reasons: tuple[tuple[str, str], ...]
    index: int
    tool_error: str | None = None


@dataclass
class TaskRun:
    """One replayed session: a user task, alone or with an injection task."""

    suite: str
    user_task: str
    injection_task: str | None
    calls: list[CallResult] = field(default_factory=list)
    utility: bool = False
    security: bool | None = None  # True when the injection reached its goal
    approvals: int = 0  # held calls that an approver let through

    def calls_of(self, role: str) -> list[CallResult]:
        return [c for c in self.calls if c.role == role]

    @property
    def held(self) -> bool:
        return any(c.verdict == "hold" for c in self.calls_of("user"))

    @property
    def completed_without_hold(self) -> bool:
        user_calls = self.calls_of("user")
        return self.utility and all(c.verdict == "allow" for c in user_calls)

    @property
    def attack_stopped(self) -> bool:
        return any(c.verdict != "allow" for c in self.calls_of("injection"))


@dataclass
class SuiteResult:
    """Every run of one suite."""

    suite: str
    benign: list[TaskRun] = field(default_factory=list)
    attacks: list[TaskRun] = field(default_factory=list)
    # The benign tasks again, with every held call approved by a human.
    benign_approved: list[TaskRun] = field(default_factory=list)

    def benign_verdicts(self) -> Counter:
        return Counter(c.verdict for run in self.benign for c in run.calls)

    def summary(self) -> dict[str, Any]:
        verdicts = self.benign_verdicts()
        per_injection: dict[str, dict[str, int]] = {}
        for run in self.attacks:
            row = per_injection.setdefault(
                run.injection_task, {"pairs": 0, "stopped": 0, "succeeded": 0}
            )
            row["pairs"] += 1
            row["stopped"] += run.attack_stopped
            row["succeeded"] += bool(run.security)
        return {
            "suite": self.suite,
            "benign_tasks": len(self.benign),
            "benign_calls": {v: verdicts.get(v, 0) for v in ("allow", "hold", "deny")},
            "benign_completed_without_hold": sum(
                r.completed_without_hold for r in self.benign
            ),
            "benign_with_hold": sum(r.held for r in self.benign),
            "attacks": len(self.attacks),
            "attacks_stopped": sum(r.attack_stopped for r in self.attacks),
            "attacks_succeeded": sum(bool(r.security) for r in self.attacks),
            "benign_completed_with_approvals": sum(
                r.utility for r in self.benign_approved
            ),
            "benign_approved_runs": len(self.benign_approved),
            "per_injection_task": per_injection,
        }


def _load_agentdojo():
    try:
        from agentdojo.agent_pipeline.base_pipeline_element import (
            BasePipelineElement,
        )
        from agentdojo.attacks.attack_registry import load_attack
        from agentdojo.functions_runtime import FunctionsRuntime
        from agentdojo.task_suite.load_suites import get_suite
    except ImportError as err:
        raise RuntimeError(
            "the AgentDojo replay needs the agentdojo package; install it with "
            "`pip install 'agentgate-runtime[agentdojo]'` (make demo does this)"
        ) from err
    return BasePipelineElement, load_attack, FunctionsRuntime, get_suite


def known_suites(version: str = BENCHMARK_VERSION) -> set[str]:
    """Return the names of the suites AgentDojo has for ``version``."""
    _load_agentdojo()
    from agentdojo.task_suite.load_suites import get_suites

    return set(get_suites(version))


class AgentDojoReplay:
    """Replays one AgentDojo suite through a gate."""

    def __init__(
        self,
        gate: Gate,
        suite_name: str,
        *,
        version: str = BENCHMARK_VERSION,
        attack: str = DEFAULT_ATTACK,
        approver: Identity | None = None,
        clock: Callable[[], datetime] = utc_now,
    ) -> None:
        base_element, load_attack, self._runtime_class, get_suite = _load_agentdojo()
        self.gate = gate
        self.suite_name = suite_name
        self.approver = approver
        self.clock = clock
        try:
            self.suite = get_suite(version, suite_name)
        except KeyError as err:
            raise ValueError(
                f"AgentDojo {version} has no suite {suite_name!r}"
            ) from err

        class _NamedTarget(base_element):
            # The attack reads only the pipeline's name; nothing is queried.
            name = TARGET_MODEL

            def query(self, *args, **kwargs):
                raise RuntimeError("the replay never queries a model")

        self.attack = load_attack(attack, self.suite, _NamedTarget())
        for function in self.suite.tools:
            gate.register_tool(
                function.name,
                arguments=list(function.parameters.model_fields),
                description=function.description,
            )

    # -- one session ------------------------------------------------------------

    def run_benign(self, user_task, approve_holds: bool = False) -> TaskRun:
        """Run a user task's ground truth on the clean environment.

        With ``approve_holds`` the replay's approver signs an approval for
        every held call that opened an approval request, as a human would for
        a task they asked for, and the call is made again.
        """
        if approve_holds and self.approver is None:
            raise ValueError("approving holds needs an approver identity")
        return self._run(user_task, None, {}, approve_holds)

    def run_attack(self, user_task, injection_task) -> TaskRun:
        """Run a user task, then the injection task's calls, in one session."""
        injections = self.attack.attack(user_task, injection_task)
        return self._run(user_task, injection_task, injections)

    def _run(self, user_task, injection_task, injections: dict[str, str],
             approve_holds: bool = False) -> TaskRun:
        environment = self.suite.load_and_inject_default_environment(injections)
        before = environment.model_copy(deep=True)
        runtime = self._runtime_class(self.suite.tools)
        run = TaskRun(self.suite_name, user_task.ID,
                      injection_task.ID if injection_task else None)
        session_id = f"{self.suite_name}.{user_task.ID}" + (
            f".{injection_task.ID}" if injection_task else ""
        ) + (".approved" if approve_holds else "")
        session = self.gate.session(Purpose(user_task.PROMPT), session_id=session_id)
        executed: list[Any] = []

        user_calls = user_task.ground_truth(environment.model_copy(deep=True))
        approver = self._approve if approve_holds else None
        self._replay(session, runtime, environment, user_calls, "user", run, executed,
                     approver)
        if injection_task is not None:
            injection_calls = injection_task.ground_truth(
                environment.model_copy(deep=True)
            )
            self._replay(session, runtime, environment, injection_calls,
                         "injection", run, executed)

        output = user_task.GROUND_TRUTH_OUTPUT
        run.utility = _judge(user_task, "utility", output, before, environment,
                             executed)
        if injection_task is not None:
            run.security = _judge(injection_task, "security", output, before,
                                  environment, executed)
        return run

    def _approve(self, request_id: str) -> None:
        """Sign and submit an approval of one request as the replay's approver."""
        store = self.gate.approval_store
        now = self.clock()
        request = store.request(request_id)
        submit_approval(store, sign_approval(self.approver, request, "approve", now),
                        now)

    @staticmethod
    def _replay(session: Session, runtime, environment, calls, role: str,
                run: TaskRun, executed: list[Any],
                approve: Callable[[str], None] | None = None) -> None:
        for call in calls:
            arguments = dict(call.args)
            tool_error: list[str] = []

            def invoke(name=call.function, arguments=arguments):
                result, error = runtime.run_function(environment, name, arguments)
                if error is not None:
                    tool_error.append(error)
                    raise ToolFailed(error)
                return result

            try:
                session.call(call.function, arguments, invoke)
                decision = session.decisions[-1]
            except ApprovalRequired as held:
                decision = held.decision
                if approve is not None:
                    approve(held.request)
                    run.approvals += 1
                    try:
                        session.call(call.function, arguments, invoke,
                                     approval=held.request)
                        decision = session.decisions[-1]
                    except Refusal as refusal:
                        decision = refusal.decision
                    except ToolFailed:
                        decision = session.decisions[-1]
            except Refusal as refusal:
                decision = refusal.decision
            except ToolFailed:
                decision = session.decisions[-1]
            if decision.verdict == "allow":
                executed.append(call)
            run.calls.append(CallResult(
                role=role,
                tool=call.function,
                verdict=decision.verdict,
                reasons=tuple((r.rule, r.text) for r in decision.reasons),
                index=decision.index,
                tool_error=tool_error[0] if tool_error else None,
            ))

    # -- the whole suite --------------------------------------------------------

    def run_suite(
        self,
        progress: Callable[[str], None] | None = None,
        user_tasks: Iterable[str] | None = None,
        injection_tasks: Iterable[str] | None = None,
    ) -> SuiteResult:
        """Replay every user task, then every (user task, injection task) pair."""
        result = SuiteResult(self.suite_name)
        users = _select(self.suite.user_tasks, user_tasks)
        injections = _select(self.suite.injection_tasks, injection_tasks)
        for user_task in users:
            result.benign.append(self.run_benign(user_task))
            if self.approver is not None:
                result.benign_approved.append(
                    self.run_benign(user_task, approve_holds=True)
                )
        for user_task in users:
            for injection_task in injections:
                result.attacks.append(self.run_attack(user_task, injection_task))
            if progress is not None:
                progress(f"{self.suite_name}: {user_task.ID} done")
        return result


def _select(tasks: dict, wanted: Iterable[str] | None) -> list:
    if wanted is None:
        return list(tasks.values())
    chosen = []
    for task_id in wanted:
        if task_id not in tasks:
            raise ValueError(f"no task {task_id!r}; known: {', '.join(tasks)}")
        chosen.append(tasks[task_id])
    return chosen


def _judge(task, check: str, output: str, before, after, executed) -> bool:
    """Apply AgentDojo's own check, preferring its trace-based form."""
    from_traces = getattr(task, f"{check}_from_traces")(output, before, after, executed)
    if from_traces is not None:
        return bool(from_traces)
    return bool(getattr(task, check)(output, before, after))


__all__ = [
    "AgentDojoReplay",
    "CallResult",
    "SuiteResult",
    "TaskRun",
    "ToolFailed",
]
