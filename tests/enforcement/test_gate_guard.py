"""The guard decorator: sync and async tools, sessions, argument binding,
commitments that open, and tools that raise."""

from __future__ import annotations

import asyncio
import hashlib
import threading

import pytest
import rfc8785

from enforcement.errors import Denied, InvalidRequest, NoSession
from enforcement.vault import check_opening
from tests.enforcement.conftest import LOG_KEY, issue, seeded_identity


class ToolFailed(Exception):
    pass


def test_sync_tool_runs(harness):
    runs = []

    @harness.gate.guard
    def get_balance(account: str) -> dict:
        runs.append(account)
        return {"balance": 10}

    with harness.gate.session("check my balance"):
        assert get_balance("main") == {"balance": 10}

    assert runs == ["main"]
    assert get_balance.__name__ == "get_balance"


def test_async_tool_runs(harness):
    runs = []

    @harness.gate.guard
    async def get_balance(account: str) -> dict:
        await asyncio.sleep(0)
        runs.append(account)
        return {"balance": 10}

    async def agent_run():
        async with harness.gate.session("check my balance"):
            return await get_balance("main")

    assert asyncio.run(agent_run()) == {"balance": 10}
    assert runs == ["main"]
    assert [r["type"] for r in harness.records()[-2:]] == ["decision", "outcome"]


def test_outside_session_raises_no_session(harness):
    runs = []
    before = harness.ledger.size

    @harness.gate.guard
    def send_money(recipient: str, amount: float) -> None:
        runs.append(1)

    with pytest.raises(NoSession, match=r"^send_money was called outside a session "
                       r"of this gate; wrap the agent's run in `with "
                       r"gate.session\(purpose=...\):`$"):
        send_money("GB29", 10)

    assert runs == []
    assert harness.ledger.size == before


def test_async_outside_session_raises_no_session(harness):
    runs = []

    @harness.gate.guard
    async def send_money(recipient: str, amount: float) -> None:
        runs.append(1)

    with pytest.raises(NoSession, match="send_money was called outside a session"):
        asyncio.run(send_money("GB29", 10))

    assert runs == []


def test_session_of_other_gate_raises_no_session(make_harness):
    first, second = make_harness(), make_harness()
    runs = []

    @first.gate.guard
    def get_balance() -> int:
        runs.append(1)
        return 1

    with second.gate.session("check my balance"):
        with pytest.raises(NoSession, match="outside a session of this gate"):
            get_balance()

    assert runs == []


def test_session_ends_with_block(harness):
    @harness.gate.guard
    def get_balance() -> int:
        return 1

    with harness.gate.session("check my balance"):
        get_balance()
    with pytest.raises(NoSession):
        get_balance()


def test_nested_sessions_restore_outer(harness):
    @harness.gate.guard
    def get_balance() -> int:
        return 1

    outer = harness.gate.session("outer run")
    inner = harness.gate.session("inner run")
    with outer:
        with inner:
            get_balance()
        get_balance()

    assert [len(outer.decisions), len(inner.decisions)] == [1, 1]


def test_binding_commits_every_argument(harness):
    @harness.gate.guard
    def send_email(recipient: str, subject: str, body: str = "(empty)", *,
                   cc: list | None = None, **headers) -> str:
        return "sent"

    with harness.gate.session("email alice@example.com about lunch"):
        send_email("alice@example.com", subject="lunch", priority="low")

    decision = harness.records_of("decision")[-1]
    expected = {"recipient": "alice@example.com", "subject": "lunch",
                "body": "(empty)", "cc": None, "priority": "low"}
    assert sorted(decision["arguments"]) == sorted(expected)
    for name, commitment in decision["arguments"].items():
        stored_name, salt, value = harness.vault.open(commitment)
        assert stored_name == name
        assert value == expected[name]
        assert len(salt) == 32
        assert check_opening(commitment, salt, value)
        assert commitment == hashlib.sha256(salt + rfc8785.dumps(value)).hexdigest()


def test_commitment_salts_are_fresh(harness):
    @harness.gate.guard
    def get_weather(city: str) -> str:
        return "sunny"

    with harness.gate.session("weather in Paris"):
        get_weather("Paris")
        get_weather("Paris")

    first, second = (d["arguments"]["city"] for d in harness.records_of("decision"))
    assert first != second


def test_commitment_rejects_wrong_value(harness):
    @harness.gate.guard
    def get_weather(city: str) -> str:
        return "sunny"

    with harness.gate.session("weather in Paris"):
        get_weather("Paris")

    commitment = harness.records_of("decision")[-1]["arguments"]["city"]
    _, salt, _ = harness.vault.open(commitment)
    assert not check_opening(commitment, salt, "London")
    assert not check_opening(commitment, bytes(32), "Paris")


def test_var_positional_bound_as_list(harness):
    @harness.gate.guard
    def add_tags(item_id: str, *tags: str) -> None:
        return None

    with harness.gate.session("tag the report"):
        add_tags("r1", "urgent", "q3")

    commitment = harness.records_of("decision")[-1]["arguments"]["tags"]
    assert harness.vault.open(commitment)[2] == ["urgent", "q3"]


def test_signature_mismatch_rejected(harness):
    runs = []
    before = harness.ledger.size

    @harness.gate.guard
    def get_weather(city: str) -> str:
        runs.append(city)
        return "sunny"

    with harness.gate.session("weather in Paris"):
        with pytest.raises(InvalidRequest, match="arguments do not match the tool's "
                           "signature: missing a required argument: 'city'") as caught:
            get_weather()

    assert runs == []
    assert isinstance(caught.value.__cause__, TypeError)
    assert harness.ledger.size == before


@pytest.mark.parametrize("call", [
    lambda tool: tool("DE89", recipient="GB29"),
    lambda tool: tool("GB29", "x", options=["y"]),
])
def test_kwargs_name_collision_rejected(make_harness, call):
    """The tool must receive the very values the gate judged."""
    harness = make_harness(scope={"capabilities": [{
        "tool": "send_money",
        "constraints": {"recipient": {"one_of": ["GB29"]}},
    }]})
    received = []

    @harness.gate.guard
    def send_money(recipient, /, *options, **extra) -> None:
        received.append((recipient, options, extra))

    with harness.gate.session("pay GB29"):
        with pytest.raises(InvalidRequest, match=r"argument '(recipient|options)' is "
                           r"passed twice \(once to a parameter, once through "
                           r"\*\*kwargs\); rename one of them"):
            call(send_money)

    assert received == []


def test_positional_only_binding_checked(make_harness):
    harness = make_harness(scope={"capabilities": [{
        "tool": "send_money",
        "constraints": {"recipient": {"one_of": ["GB29"]}},
    }]})

    @harness.gate.guard
    def send_money(recipient, /, **extra) -> str:
        return "paid"

    with harness.gate.session("pay GB29"):
        assert send_money("GB29", amount=1) == "paid"
        with pytest.raises(Denied) as caught:
            send_money("DE89", amount=1)

    assert caught.value.reasons[0].rule == "delegation.scope"


def test_tool_exception_reraised_and_sealed(harness):
    @harness.gate.guard
    def delete_file(path: str) -> None:
        raise ToolFailed("read-only file system")

    with harness.gate.session("delete report.txt"):
        with pytest.raises(ToolFailed, match="read-only file system"):
            delete_file("report.txt")

    decision, outcome = harness.records()[-2:]
    assert decision["verdict"] == "allow"
    assert outcome["status"] == "error"
    assert outcome["error"] == "ToolFailed"
    assert outcome["decision"] == decision["id"]
    _, _, value = harness.vault.open(outcome["result"])
    assert value == {"error": "ToolFailed"}


def test_async_tool_exception_reraised_and_sealed(harness):
    @harness.gate.guard
    async def delete_file(path: str) -> None:
        await asyncio.sleep(0)
        raise ToolFailed("read-only file system")

    async def agent_run():
        with harness.gate.session("delete report.txt"):
            await delete_file("report.txt")

    with pytest.raises(ToolFailed):
        asyncio.run(agent_run())

    outcome = harness.records()[-1]
    assert outcome["status"] == "error"
    assert outcome["error"] == "ToolFailed"


def test_async_refusal_never_creates_coroutine(harness, agent):
    started = []

    @harness.gate.guard
    async def get_balance() -> int:
        started.append(1)
        return 1

    chain = [issue(seeded_identity("mallory.test"), agent)]

    async def agent_run():
        with harness.gate.session("check my balance", chain=chain):
            await get_balance()

    with pytest.raises(Denied):
        asyncio.run(agent_run())

    assert started == []


def test_guard_name_overrides_function_name(harness):
    @harness.gate.guard(name="send_money")
    def pay(recipient: str, amount: float) -> None:
        return None

    with harness.gate.session("pay the rent of 900 to GB29"):
        pay("GB29", 900)

    assert harness.records_of("decision")[-1]["tool"] == "send_money"


def test_threads_share_one_session(harness):
    """Workers that enter the same session at once each see it and leave it."""
    @harness.gate.guard
    def get_weather(city: str) -> str:
        return "sunny"

    session = harness.gate.session("weather in eight cities")
    inside = threading.Barrier(8)
    errors = []

    def worker(city: str) -> None:
        try:
            with session:
                inside.wait(timeout=10)
                get_weather(city)
        except Exception as err:  # noqa: BLE001 - reported by the assert below
            errors.append(repr(err))

    threads = [threading.Thread(target=worker, args=(f"city{i}",)) for i in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert errors == []
    assert len(session.decisions) == 8


def test_tasks_share_one_session(harness):
    @harness.gate.guard
    async def get_weather(city: str) -> str:
        await asyncio.sleep(0.001)
        return "sunny"

    session = harness.gate.session("weather in four cities")

    async def task(city: str) -> str:
        async with session:
            await asyncio.sleep(0.001)
            return await get_weather(city)

    async def agent_run():
        return await asyncio.gather(*(task(f"city{i}") for i in range(4)))

    assert asyncio.run(agent_run()) == ["sunny"] * 4
    assert len(session.decisions) == 4


def test_interrupted_tool_still_seals_outcome(harness):
    session = harness.gate.session("Read my balance")

    def interrupted():
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        session.call("get_balance", {}, interrupted)

    outcomes = harness.records_of("outcome")
    assert len(outcomes) == 1
    assert outcomes[0]["status"] == "error"
    assert outcomes[0]["error"] == "KeyboardInterrupt"


def test_cancelled_async_tool_still_seals_outcome(harness):
    session = harness.gate.session("Read my balance")

    async def slow():
        await asyncio.sleep(10)

    async def main():
        task = asyncio.create_task(session.acall("get_balance", {}, slow))
        await asyncio.sleep(0.2)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task

    asyncio.run(main())

    outcomes = harness.records_of("outcome")
    assert [o["error"] for o in outcomes] == ["CancelledError"]


def test_naive_clock_is_a_config_error(make_harness, monkeypatch):
    from datetime import datetime

    from enforcement import ConfigError, Gate

    harness = make_harness()
    with pytest.raises(ConfigError, match="without a time zone"):
        Gate(harness.client, LOG_KEY, harness.gate.policy,
             [harness.principal.verifier_key], clock=datetime.now)
