"""Sessions and the pipeline every tool call passes.

A ``Session`` is one agent's run towards one declared purpose, under one
delegation chain. ``Session.call`` is the whole pipeline:

1. validate the request;
2. verify the delegation chain and check the call against its scope;
3. score alignment with the purpose;
4. evaluate the sequence rules;
5. take the strictest verdict;
6. seal the decision record in the log;
7. verify the receipt with the independent verifier against the pinned log
   key, and check that the proved entry is the record that was sent;
8. run the tool only for a verified allow, else raise ``Denied`` or ``Held``;
9. seal the outcome, linked to the decision.

Steps 1-5 are ``evaluate``, which returns an ``Evaluation`` and never touches
the log; steps 6-7 are ``seal``; ``decide`` runs both under the session's
lock. The state updates that keep limits exact under concurrency (budget
charges, rate windows, the session history) happen inside ``evaluate``,
under the sequence engine's lock, atomically with the verdict.

When the policy names approvers, a hold it lets them lift opens an approval
request (``enforcement.approvals``). The call then either waits for the
approvers or raises ``ApprovalRequired``; the same call made again in the
same session runs once the quorum has approved, sealed as an allow that
cites the approval records.

Any exception in steps 1-7 means the tool does not run. There is no switch to
let a call through when the ledger cannot be reached.
"""

from __future__ import annotations

import asyncio
import contextvars
import copy
import logging
import threading
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

from enforcement import jcs
from enforcement.alignment import Purpose, checked_values
from enforcement.approval_desk import Resolution
from enforcement.delegation import Certificate
from enforcement.errors import (
    ApprovalRequired,
    ConfigError,
    Denied,
    Held,
    InvalidRequest,
    Reason,
)
from enforcement.provenance import Provenance, to_plain
from enforcement.records import Decision, decision_record, new_id, outcome_record
from enforcement.sequence import CallFacts, SessionState, strictest
from enforcement.verdict import (
    Evaluation,
    admit_call,
    score_alignment,
    validate_request,
    verify_chain,
)

if TYPE_CHECKING:
    from enforcement.gate import Gate, Sealed

logger = logging.getLogger(__name__)

_current_session: contextvars.ContextVar[Session | None] = contextvars.ContextVar(
    "agentgate_session", default=None
)
# The reset tokens of the sessions entered in the current context, innermost
# last. They live in a context variable, not on the session, because threads
# and asyncio tasks may enter the same session at once, and a token can only
# be reset in the context that created it.
_entered_tokens: contextvars.ContextVar[tuple[contextvars.Token, ...]] = (
    contextvars.ContextVar("agentgate_session_tokens", default=())
)


def current_session() -> Session | None:
    """Return the innermost session entered in this context, or None."""
    return _current_session.get()


class Session:
    """One agent's run towards one declared purpose."""

    def __init__(self, gate: Gate, chain: Sequence[Certificate], purpose: Purpose,
                 session_id: str, *, approval_wait: float = 0.0) -> None:
        self.gate = gate
        self.id = session_id
        self.approval_wait = approval_wait
        self.purpose = purpose
        self._chain = tuple(chain)
        self._state = SessionState(session_id)
        self._provenance = Provenance(purpose.text, purpose.principal_values)
        self._lock = threading.RLock()
        self._previous: str | None = None
        self.decisions: list[Decision] = []

    # -- context ----------------------------------------------------------------

    def __enter__(self) -> Session:
        token = _current_session.set(self)
        _entered_tokens.set(_entered_tokens.get() + (token,))
        return self

    def __exit__(self, *exc_info) -> None:
        tokens = _entered_tokens.get()
        _entered_tokens.set(tokens[:-1])
        _current_session.reset(tokens[-1])

    async def __aenter__(self) -> Session:
        return self.__enter__()

    async def __aexit__(self, *exc_info) -> None:
        self.__exit__(*exc_info)

    # -- the pipeline -----------------------------------------------------------

    def call(self, tool: str, arguments: Mapping[str, Any],
             run: Callable[[], Any], *, approval: str | None = None) -> Any:
        """Decide, seal and verify; run ``run()`` only for a verified allow.

        ``approval`` presents the id of an approval request that an earlier
        ``ApprovalRequired`` carried; without it a pending request for the
        same tool and arguments in this session is found by matching.
        """
        decision = self.decide(tool, arguments, approval=approval)
        decision = self._wait_for_approval(decision, tool, arguments)
        _raise_unless_allowed(decision)
        return self.run_allowed(decision, run)

    async def acall(self, tool: str, arguments: Mapping[str, Any],
                    run: Callable[[], Awaitable[Any]], *,
                    approval: str | None = None) -> Any:
        """Run ``call`` for an async tool; sealing and waiting run in worker threads."""
        decision = await asyncio.to_thread(self.decide, tool, arguments,
                                           approval=approval)
        decision = await asyncio.to_thread(self._wait_for_approval, decision, tool,
                                           arguments)
        _raise_unless_allowed(decision)
        return await self.arun_allowed(decision, run)

    def run_allowed(self, decision: Decision, run: Callable[[], Any]) -> Any:
        """Run a tool under an allow this session sealed, then seal its outcome.

        Steps 8 and 9 of the pipeline, for frameworks that decide in one hook
        and run the tool in another. Raises ``ConfigError`` unless ``decision``
        is an allow of this session; the tool then does not run.
        """
        self._check_runnable(decision)
        started = time.perf_counter()
        try:
            result = run()
        except BaseException as err:
            # An interrupt or a cancellation ends the tool too; its outcome is
            # still sealed, and the tool's own exception is what propagates.
            self._seal_failure(decision, started, err)
            raise
        self._seal_outcome(decision, started, result=result)
        self._count_result(decision, decision.tool, result)
        return result

    async def arun_allowed(self, decision: Decision,
                           run: Callable[[], Awaitable[Any]]) -> Any:
        """The async form of ``run_allowed``; sealing runs in a worker thread."""
        self._check_runnable(decision)
        started = time.perf_counter()
        try:
            result = await run()
        except BaseException as err:
            # Sealing runs on the event loop here: a cancelled task cannot
            # await a worker thread.
            self._seal_failure(decision, started, err)
            raise
        await asyncio.to_thread(self._seal_outcome, decision, started, result=result)
        self._count_result(decision, decision.tool, result)
        return result

    def _check_runnable(self, decision: Decision) -> None:
        sealed_here = any(d is decision for d in reversed(self.decisions))
        if decision.verdict != "allow" or not sealed_here:
            raise ConfigError(
                f"decision {decision.id} ({decision.verdict}) is not an allow sealed "
                f"by session {self.id}; the tool may run only under one"
            )

    def _wait_for_approval(self, decision: Decision, tool: str,
                           arguments: Mapping[str, Any]) -> Decision:
        """Wait for the approvers of a held call, then decide the call again.

        Returns ``decision`` unchanged when there is nothing to wait for. On
        timeout the request is closed and the call is decided again, which
        seals a deny citing the request.
        """
        desk = self.gate._desk
        if (desk is None or decision.request is None or decision.verdict != "hold"
                or self.approval_wait <= 0):
            return decision
        outcome = desk.wait(decision.request, self.approval_wait)
        logger.info("session %s: request %s %s after waiting", self.id,
                    decision.request, outcome)
        if outcome == "timeout":
            desk.store.close_request(decision.request, "timed_out")
        return self.decide(tool, arguments, approval=decision.request)

    def _count_result(self, decision: Decision, tool: str, result: Any) -> None:
        """Feed an executed call's result to provenance and the volume counters."""
        self.observe(tool, result)
        profile = self.gate.profile_for(tool, {})
        engine = self.gate._engine
        # The clock is read only when a rule needs it: some clocks (the demo's)
        # advance on every reading.
        if engine.counts_volume(profile):
            engine.record_result(decision.record["agent"], self.id, profile,
                                 self.gate._clock(), _plain_result(result))

    def observe(self, tool: str, output: Any) -> None:
        """Record a tool output for provenance (``call`` does this itself)."""
        profile = self.gate.profile_for(tool, {})
        with self._lock:
            self._provenance.observe(tool, output, trusted=profile.trusted_output)

    def decide(self, tool: str, arguments: Mapping[str, Any], *,
               approval: str | None = None) -> Decision:
        """Run steps 1-7 of the pipeline and return the sealed, verified decision.

        A hold that the policy's approvers may lift also opens (or reuses) an
        approval request, whose id the returned decision carries.
        """
        with self._lock:
            return self.seal(self.evaluate(tool, arguments, approval=approval))

    def evaluate(self, tool: str, arguments: Mapping[str, Any], *,
                 approval: str | None = None) -> Evaluation:
        """Run steps 1-5 of the pipeline and return the verdict, unsealed.

        The evaluation commits the session's sequence state and charges
        budgets, as the verdict requires. Pass every evaluation to ``seal``
        (``decide`` does both): the state digest of an evaluation that is
        never sealed is missing from the session's chain of records.
        """
        gate = self.gate
        # 1. validate the request
        arguments = validate_request(tool, arguments)

        with self._lock:
            now = gate._clock()
            profile = gate.profile_for(tool, arguments)

            # 2. delegation; the scope and its budgets are checked below,
            # under the engine's lock
            delegation: list[Reason] = []
            chain = verify_chain(gate._chains, self._chain, now, delegation)

            # 3. alignment
            aligned: list[Reason] = []
            alignment, alignment_verdict = score_alignment(
                gate._scorer, gate.policy.alignment, self.purpose, profile,
                arguments, self._provenance, aligned,
            )

            # Approvals already given for this exact call, tallied here and
            # sealed with the decision.
            desk = gate._desk
            resolution = Resolution()
            if desk is not None:
                resolution = desk.prepare(self.id, tool, arguments, approval, now)

            destinations = {
                argument: self._provenance.source_of(value)
                for argument, value in checked_values(
                    profile, arguments, self._provenance).items()
            }
            facts = CallFacts(
                agent=chain.agent, session=self.id, profile=profile,
                arguments=arguments, destination_sources=destinations, now=now,
                names_destinations=bool(
                    profile.arguments_with_roles({"recipient", "url"})),
                source_of=self._provenance.source_of,
            )

            # 2 (scope and budgets), 4 and 5, atomically with the state
            # update so that concurrent calls respect limits exactly
            engine = gate._engine
            with engine.lock:
                charged = admit_call(chain, tool, arguments, gate._budgets,
                                     delegation)
                # Each reason with the verdict it requests.
                requested = [(reason, "deny") for reason in delegation]
                requested += [(reason, alignment_verdict) for reason in aligned]
                before = self._state.digest
                firings = engine.evaluate(self._state, facts)
                requested += [(Reason(firing.rule, firing.text), firing.verdict)
                              for firing in firings]
                verdict = strictest(v for _, v in requested)
                hold_rules = frozenset(reason.rule for reason, v in requested
                                       if v == "hold")
                if desk is not None:
                    verdict, added = desk.settle(resolution, verdict, hold_rules)
                    requested += added
                if verdict != "allow" and charged:
                    gate._budgets.refund(charged)
                    charged = ()
                # NOTE: the state is committed before the record is sealed. If
                # sealing fails, the digest (and, for an allow, the rate
                # windows) has advanced with no record, so the next decision's
                # "before" does not match any sealed "after".
                after = engine.commit(self._state, facts, verdict)
                counters = dict(self._state.counters)

        return Evaluation(
            tool=tool, arguments=arguments, now=now, profile=profile, chain=chain,
            alignment=alignment, verdict=verdict,
            reasons=tuple(reason for reason, _ in requested), hold_rules=hold_rules,
            sequence={"before": before, "after": after,
                      "fired": [firing.rule for firing in firings],
                      "counters": counters},
            resolution=resolution, charged=charged,
        )

    def seal(self, evaluation: Evaluation) -> Decision:
        """Run steps 6-7: seal the decision record and verify its receipt.

        The approvals the evaluation counted are sealed first, so the record
        can cite them. A hold the policy's approvers may lift opens an
        approval request, or reuses the one the evaluation found. When
        sealing fails, an allowed call gives its budget charge back, because
        the tool will not run.
        """
        try:
            return self._seal(evaluation)
        except BaseException:
            if evaluation.charged:
                self.gate._budgets.refund(evaluation.charged)
            raise

    def _seal(self, evaluation: Evaluation) -> Decision:
        gate = self.gate
        desk = gate._desk
        resolution = evaluation.resolution
        chain = evaluation.chain
        with self._lock:
            if desk is not None:
                desk.cite(resolution, evaluation.now)
            # 6. seal the decision
            record_id = new_id("decision")
            commitments = gate._vault.commit_values(record_id, evaluation.arguments)
            thresholds = gate.policy.alignment
            record = decision_record(
                record_id=record_id,
                now=evaluation.now,
                agent=chain.agent,
                session=self.id,
                tool=evaluation.tool,
                commitments=commitments,
                chain_hashes=list(chain.hashes),
                root=chain.root,
                scope=copy.deepcopy(chain.scope),
                alignment=evaluation.alignment.to_json(thresholds.hold_below,
                                                       thresholds.deny_below),
                sequence={"previous": self._previous, **evaluation.sequence},
                policy_hash=gate.policy_hash,
                verdict=evaluation.verdict,
                reasons=list(evaluation.reasons),
                approval=resolution.member(),
            )
            # 7. the receipt is verified inside seal_record
            sealed = gate.seal_record(record)
            self._previous = sealed.leaf_hash

            request = None
            if evaluation.verdict == "hold" and desk is not None:
                if resolution.reusable:
                    request = resolution.request.id
                elif desk.policy.covers(evaluation.hold_rules):
                    request = desk.open_request(
                        decision_id=record_id, decision_index=sealed.index,
                        session=self.id, agent=chain.agent, tool=evaluation.tool,
                        arguments=evaluation.arguments,
                        rules=set(evaluation.hold_rules), now=evaluation.now,
                    ).id

        decision = Decision(
            id=record_id, tool=evaluation.tool, verdict=evaluation.verdict,
            reasons=evaluation.reasons, record=record, entry=sealed.entry,
            receipt=sealed.receipt, index=sealed.index, leaf_hash=sealed.leaf_hash,
            alignment=evaluation.alignment, request=request,
        )
        self.decisions.append(decision)
        logger.debug("%s %s -> %s (leaf %d)", self.id, evaluation.tool,
                     evaluation.verdict, sealed.index)
        return decision

    def _seal_failure(self, decision: Decision, started: float,
                      error: BaseException) -> None:
        try:
            self._seal_outcome(decision, started, error=error)
        except Exception as seal_error:  # noqa: BLE001 - the tool's error wins
            logger.error("session %s: outcome of decision %s not sealed: %s",
                         self.id, decision.id, seal_error)

    def _seal_outcome(self, decision: Decision, started: float, *,
                      result: Any = None, error: BaseException | None = None) -> None:
        self.seal_outcome(
            decision,
            duration_ms=(time.perf_counter() - started) * 1000.0,
            result=_plain_result(result) if error is None else None,
            error_name=type(error).__name__ if error is not None else None,
        )

    def seal_outcome(self, decision: Decision, *, duration_ms: float,
                     result: Any = None, error_name: str | None = None) -> Sealed:
        """Seal the outcome record of ``decision`` and return it, verified.

        ``result`` must be plain JSON (it is committed, never stored in the
        log); ``error_name`` marks a tool that raised, and its outcome commits
        to ``{"error": name}`` instead.
        """
        gate = self.gate
        value: Any = {"error": error_name} if error_name is not None else result
        with self._lock:
            record_id = new_id("outcome")
            commitment = gate._vault.commit_values(record_id, {"result": value})[
                "result"
            ]
            record = outcome_record(
                record_id=record_id,
                now=gate._clock(),
                session=self.id,
                decision_id=decision.id,
                decision_index=decision.index,
                status="error" if error_name is not None else "ok",
                error=error_name,
                duration_ms=duration_ms,
                result_commitment=commitment,
                previous=self._previous or "",
            )
            sealed = gate.seal_record(record)
            self._previous = sealed.leaf_hash
        return sealed


def _raise_unless_allowed(decision: Decision) -> None:
    if decision.verdict == "allow":
        return
    if decision.verdict == "hold":
        if decision.request is not None:
            raise ApprovalRequired(decision, decision.request)
        raise Held(decision)
    raise Denied(decision)


def _plain_result(result: Any) -> Any:
    """Return a tool result as plain JSON, or its ``repr`` when it is not JSON."""
    value = to_plain(result)
    try:
        jcs.check_json_value(value)
    except InvalidRequest:
        return repr(result)
    return value
