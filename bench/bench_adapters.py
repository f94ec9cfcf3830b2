"""Time what each framework adapter adds to a tool call.

The set-up is an embedded deployment (``create_deployment``): a real gate on
a real, durable SQLite log (WAL, ``synchronous=FULL``) and vault in a
temporary directory, the default policy and a one-link delegation of every
tool. The clock advances ``--step`` seconds per reading, so the policy's
rate limits see an agent working at a human pace.

For each framework, one run is one agent turn: a fake model emits one call
of the tool ``get_balance`` (a new call id each time), the tool runs, and
the model answers. The script times ``--runs`` such runs through the
framework without the adapter ("plain") and as many with it ("gated"),
alternating the two, after ``--warmup`` runs of each. The overhead of an
adapter is the gated p50 minus the plain p50. For reference it also times
the tool called directly, and ``Session.call`` around the tool without any
framework, which is the gate's own cost: deciding, sealing and verifying
the decision, then sealing the outcome.

Run it from the repository root::

    .venv/bin/python bench/bench_adapters.py
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import logging
import os
import platform
import statistics
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any

from enforcement.evaluation.embedded import SteppingClock, create_deployment
from enforcement.timeutil import utc_now

PURPOSE = "tell me the balance of my bank account"
TOOL = "get_balance"


def get_balance() -> str:
    """Return the balance of the user's bank account."""
    return "balance: 1200"


# -- the frameworks, each with and without its adapter ------------------------------


def langchain_runs(gate: Any) -> tuple[Callable[[], Any], Callable[[], Any]]:
    from langchain.agents import create_agent
    from langchain_core.tools import tool

    from enforcement.adapters.langchain import GateMiddleware

    balance = tool(get_balance)
    plain = create_agent(_langchain_model(), [balance])
    gated = create_agent(_langchain_model(), [balance],
                         middleware=[GateMiddleware(gate)])
    start = {"messages": [("user", PURPOSE)]}
    return (lambda: plain.invoke(start)), (lambda: gated.invoke(start))


def langgraph_runs(gate: Any) -> tuple[Callable[[], Any], Callable[[], Any]]:
    from langchain_core.tools import tool
    from langgraph.graph import START, MessagesState, StateGraph
    from langgraph.prebuilt import ToolNode, tools_condition

    from enforcement.adapters.langgraph import gated_tool_node

    balance = tool(get_balance)

    def build(tool_node: Any) -> Any:
        model = _langchain_model()
        graph = StateGraph(MessagesState)
        graph.add_node("model", lambda state: {
            "messages": [model.invoke(state["messages"])]})
        graph.add_node("tools", tool_node)
        graph.add_edge(START, "model")
        graph.add_conditional_edges("model", tools_condition)
        graph.add_edge("tools", "model")
        return graph.compile()

    plain = build(ToolNode([balance]))
    gated = build(gated_tool_node(gate, [balance]))
    start = {"messages": [("user", PURPOSE)]}
    return (lambda: plain.invoke(start)), (lambda: gated.invoke(start))


def openai_agents_runs(gate: Any) -> tuple[Callable[[], Awaitable[Any]],
                                           Callable[[], Awaitable[Any]]]:
    from agents import Agent, Runner, function_tool, set_tracing_disabled
    from agents.testing import ScriptedModel, assistant_message, function_call

    from enforcement.adapters.openai_agents import gate_tools

    set_tracing_disabled(True)
    ids = itertools.count()
    balance = function_tool(get_balance)

    def agent_with(tools: list[Any]) -> Any:
        return Agent(name="bench", model=ScriptedModel(), tools=tools)

    plain = agent_with([balance])
    gated = agent_with(gate_tools(gate, [balance]))

    async def run(agent: Any) -> Any:
        agent.model.extend([
            [function_call(TOOL, {}, call_id=f"call-{next(ids)}")],
            [assistant_message("done")],
        ])
        return await Runner.run(agent, PURPOSE)

    return (lambda: run(plain)), (lambda: run(gated))


def pydantic_ai_runs(gate: Any) -> tuple[Callable[[], Awaitable[Any]],
                                         Callable[[], Awaitable[Any]]]:
    from pydantic_ai import Agent
    from pydantic_ai.messages import (
        ModelResponse,
        TextPart,
        ToolCallPart,
        ToolReturnPart,
    )
    from pydantic_ai.models.function import FunctionModel

    from enforcement.adapters.pydantic_ai import GateCapability

    ids = itertools.count()

    def respond(messages: list[Any], info: Any) -> ModelResponse:
        if any(isinstance(part, ToolReturnPart) for part in messages[-1].parts):
            return ModelResponse(parts=[TextPart("done")])
        return ModelResponse(parts=[ToolCallPart(TOOL, {}, f"call-{next(ids)}")])

    plain = Agent(FunctionModel(respond), tools=[get_balance])
    gated = Agent(FunctionModel(respond), tools=[get_balance],
                  capabilities=[GateCapability(gate)])
    return (lambda: plain.run(PURPOSE)), (lambda: gated.run(PURPOSE))


def _langchain_model() -> Any:
    """langchain-core's GenericFakeChatModel, replaying one tool call with a
    new id, then an answer, forever."""
    from langchain_core.language_models.fake_chat_models import GenericFakeChatModel
    from langchain_core.messages import AIMessage

    class ToolCallingFake(GenericFakeChatModel):
        def bind_tools(self, tools: Any, **kwargs: Any) -> Any:
            return self

    def replies() -> Iterator[AIMessage]:
        for number in itertools.count():
            call = {"name": TOOL, "args": {}, "id": f"call-{number}",
                    "type": "tool_call"}
            yield AIMessage(content="", tool_calls=[call])
            yield AIMessage(content="done")

    return ToolCallingFake(messages=replies())


FRAMEWORKS = {
    "langchain": (langchain_runs, False),
    "langgraph": (langgraph_runs, False),
    "openai-agents": (openai_agents_runs, True),
    "pydantic-ai": (pydantic_ai_runs, True),
}


# -- timing ---------------------------------------------------------------------------


def time_pair(plain: Callable[[], Any], gated: Callable[[], Any], is_async: bool,
              runs: int, warmup: int) -> tuple[list[float], list[float]]:
    """Time ``runs`` plain and gated runs, alternating, after the warm-up."""

    async def timed_async() -> tuple[list[float], list[float]]:
        times: tuple[list[float], list[float]] = ([], [])
        for number in range(warmup + runs):
            for side, run in enumerate((plain, gated)):
                started = time.perf_counter()
                await run()
                if number >= warmup:
                    times[side].append(time.perf_counter() - started)
        return times

    if is_async:
        return asyncio.run(timed_async())
    times: tuple[list[float], list[float]] = ([], [])
    for number in range(warmup + runs):
        for side, run in enumerate((plain, gated)):
            started = time.perf_counter()
            run()
            if number >= warmup:
                times[side].append(time.perf_counter() - started)
    return times


def time_calls(call: Callable[[], Any], runs: int) -> list[float]:
    times = []
    for _ in range(runs):
        started = time.perf_counter()
        call()
        times.append(time.perf_counter() - started)
    return times


def quantile(times: list[float], fraction: float) -> float:
    ordered = sorted(times)
    return ordered[min(len(ordered) - 1, int(fraction * len(ordered)))]


def milliseconds(seconds: float) -> str:
    return f"{seconds * 1e3:8.3f} ms"


def machine() -> str:
    """Describe the CPU model, the core count and the Python build."""
    model = platform.processor() or "unknown CPU"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return (f"{model}, {os.cpu_count()} logical CPUs, Python "
            f"{platform.python_version()}, {platform.system()} {platform.release()}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=200,
                        help="timed runs per framework and side (default 200)")
    parser.add_argument("--warmup", type=int, default=20,
                        help="runs per side before timing (default 20)")
    parser.add_argument("--step", type=float, default=1.0,
                        help="seconds the clock advances per reading (default 1)")
    parser.add_argument("--framework", action="append", choices=sorted(FRAMEWORKS),
                        help="time only this framework (repeatable; default all)")
    options = parser.parse_args(argv)
    if options.runs < 1 or options.warmup < 0:
        parser.error(f"--runs must be at least 1 and --warmup not negative, got "
                     f"{options.runs} and {options.warmup}")
    if options.step <= 0:
        parser.error(f"--step must be a positive number of seconds, got {options.step}")
    logging.basicConfig(level=logging.WARNING)

    print(f"machine: {machine()}")
    with tempfile.TemporaryDirectory(prefix="agentgate-bench-") as directory:
        deployment = create_deployment(Path(directory),
                                       clock=SteppingClock(utc_now(), options.step))
        gate = deployment.gate
        try:
            direct = time_calls(get_balance, 10_000)
            with gate.session(PURPOSE) as session:
                guarded = time_calls(
                    lambda: session.call(TOOL, {}, get_balance), options.runs)
            direct_p50 = quantile(direct, .5) * 1e6
            print(f"{'tool called directly':28s} p50 {direct_p50:8.3f} us")
            print(f"{'Session.call, no framework':28s} p50 "
                  f"{milliseconds(quantile(guarded, .5))}  p90 "
                  f"{milliseconds(quantile(guarded, .9))}")
            for name in options.framework or list(FRAMEWORKS):
                build, is_async = FRAMEWORKS[name]
                with gate.session(PURPOSE) as session:
                    plain, gated = build(gate)
                    plain_times, gated_times = time_pair(
                        plain, gated, is_async, options.runs, options.warmup)
                verdicts = Counter(decision.verdict for decision in session.decisions)
                overhead = quantile(gated_times, .5) - quantile(plain_times, .5)
                print(f"{name:14s} plain p50 {milliseconds(quantile(plain_times, .5))}"
                      f"  gated p50 {milliseconds(quantile(gated_times, .5))}"
                      f"  p90 {milliseconds(quantile(gated_times, .9))}"
                      f"  overhead p50 {milliseconds(overhead)}"
                      f"  (mean {milliseconds(statistics.fmean(gated_times))})"
                      f"  verdicts {dict(verdicts)}")
        finally:
            deployment.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
