"""Sequence rules: exact rate limits under concurrency, sensitive reads then
egress, amount thresholds and totals, and the session state digest chain."""

from __future__ import annotations

import hashlib
import threading
import time
from datetime import UTC, datetime

import pytest
import rfc8785

from enforcement.alignment import AlignmentResult
from enforcement.errors import Denied, Held, InvalidRequest, Reason
from enforcement.profiles import derive_profile
from enforcement.sequence import (
    CallFacts,
    SequenceEngine,
    SessionState,
    read_amount,
    step_bytes,
)
from tests.enforcement.conftest import policy_with

IBAN = "GB29NWBK60161331926819"
RENT = f"pay the rent to {IBAN}"
THREADS = 32
LIMIT = 5


class AlignedScorer:
    """A scorer that finds every call aligned, so that only rules decide."""

    name = "aligned"
    version = "1"

    def score(self, context):
        return AlignmentResult("aligned", "1", 1.0, "aligned", ())


@pytest.fixture
def harness(make_harness):
    """A gate under the default policy whose alignment check never fires."""
    return make_harness(scorer=AlignedScorer())


def rate_limited(make_harness, per: str):
    return make_harness(policy=policy_with(rules=[{
        "id": "limit.test", "kind": "rate_limit", "per": per, "limit": LIMIT,
        "window_seconds": 60,
    }]))


def call_at_once(gate, tool, sessions) -> list:
    """Call ``tool`` from one thread per session, all released together."""
    start = threading.Barrier(len(sessions))
    results: list = []
    lock = threading.Lock()

    def worker(session) -> None:
        with session:
            start.wait(timeout=30)
            try:
                tool()
                outcome: object = "allow"
            except Denied as err:
                outcome = err.reasons
            with lock:
                results.append(outcome)

    threads = [threading.Thread(target=worker, args=(s,)) for s in sessions]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return results


@pytest.fixture
def slow_evaluation(monkeypatch):
    """Widen the gap between evaluating the rules and committing the state.

    Without it the check-then-update race is too short to show under the GIL,
    and the test would pass even if the engine's lock were missing.
    """
    evaluate = SequenceEngine.evaluate

    def slow(self, state, facts):
        firings = evaluate(self, state, facts)
        time.sleep(0.002)
        return firings

    monkeypatch.setattr(SequenceEngine, "evaluate", slow)


@pytest.mark.parametrize("per", ["agent", "session", "tool"])
def test_rate_limit_exact_under_threads(make_harness, slow_evaluation, per):
    harness = rate_limited(make_harness, per)
    gate = harness.gate
    runs = []

    @gate.guard
    def get_weather() -> str:
        runs.append(1)
        return "sunny"

    shared = gate.session("weather")
    sessions = [shared if per == "session" else gate.session("weather")
                for _ in range(THREADS)]

    results = call_at_once(gate, get_weather, sessions)

    refusal = [Reason("limit.test",
                      f"{per} made {LIMIT} calls in the last 60 s; the limit is 5")]
    assert results.count("allow") == LIMIT
    assert results.count(refusal) == THREADS - LIMIT
    assert len(runs) == LIMIT
    verdicts = [d["verdict"] for d in harness.records_of("decision")]
    assert verdicts.count("allow") == LIMIT
    assert verdicts.count("deny") == THREADS - LIMIT


def test_rate_limit_window_slides(make_harness):
    harness = rate_limited(make_harness, "agent")

    @harness.gate.guard
    def get_weather() -> str:
        return "sunny"

    with harness.gate.session("weather"):
        for _ in range(LIMIT):
            get_weather()
        with pytest.raises(Denied):
            get_weather()
        harness.clock.advance(59.999)
        with pytest.raises(Denied):
            get_weather()
        harness.clock.advance(0.001)
        assert get_weather() == "sunny"


def test_rate_limit_per_tool_counts_each_tool(make_harness):
    harness = rate_limited(make_harness, "tool")

    @harness.gate.guard
    def get_weather() -> str:
        return "sunny"

    @harness.gate.guard
    def get_time() -> str:
        return "noon"

    with harness.gate.session("weather and time"):
        for _ in range(LIMIT):
            get_weather()
        with pytest.raises(Denied):
            get_weather()
        assert get_time() == "noon"


def test_refused_calls_not_counted(make_harness):
    harness = rate_limited(make_harness, "session")

    @harness.gate.guard
    def get_weather() -> str:
        return "sunny"

    with harness.gate.session("weather"):
        for _ in range(LIMIT):
            get_weather()
        for _ in range(3):
            with pytest.raises(Denied):
                get_weather()
        harness.clock.advance(60)
        for _ in range(LIMIT):
            get_weather()


# -- sensitive read, then egress --------------------------------------------------


@pytest.fixture
def mail_tools(harness):
    gate = harness.gate

    @gate.guard
    def get_transactions() -> list:
        return [{"id": 1, "amount": 12.5, "recipient": "DE89370400440532013000"}]

    @gate.guard
    def send_email(recipient: str, subject: str, body: str) -> str:
        return "sent"

    return get_transactions, send_email


SUMMARY = "Email the summary of my transactions to alice@example.com"


def test_sensitive_read_then_untrusted_egress_holds(harness, mail_tools):
    get_transactions, send_email = mail_tools

    with harness.gate.session(SUMMARY):
        get_transactions()
        with pytest.raises(Held) as caught:
            send_email("eve@evil.example", "summary", "12.50 spent")

    assert caught.value.reasons == [Reason(
        "sequence.exfiltration",
        "1 read(s) of financial data, then send_email sends to recipient that the "
        "purpose did not name",
    )]


def test_sensitive_read_then_named_egress_allowed(harness, mail_tools):
    get_transactions, send_email = mail_tools

    with harness.gate.session(SUMMARY):
        get_transactions()
        assert send_email("alice@example.com", "summary", "12.50 spent") == "sent"


def test_egress_without_sensitive_read_allowed(harness, mail_tools):
    _, send_email = mail_tools

    with harness.gate.session(SUMMARY):
        assert send_email("eve@evil.example", "summary", "hello") == "sent"


def test_sensitive_read_expires_after_window(harness, mail_tools):
    get_transactions, send_email = mail_tools

    with harness.gate.session(SUMMARY):
        get_transactions()
        harness.clock.advance(3601)
        assert send_email("eve@evil.example", "summary", "hello") == "sent"


def test_recipient_in_list_checked(harness, mail_tools):
    get_transactions, _ = mail_tools

    @harness.gate.guard
    def send_message(recipients: list, body: str) -> str:
        return "sent"

    with harness.gate.session(SUMMARY):
        get_transactions()
        with pytest.raises(Held) as caught:
            send_message(["alice@example.com", "eve@evil.example"], "hi")

    assert caught.value.reasons[0].rule == "sequence.exfiltration"


# -- amounts ----------------------------------------------------------------------


@pytest.fixture
def send_money(harness):
    @harness.gate.guard
    def send_money(recipient: str, amount: float) -> str:
        return "paid"

    return send_money


def test_amount_at_threshold_allowed(harness, send_money):
    with harness.gate.session(RENT):
        assert send_money(IBAN, 5000) == "paid"


def test_amount_over_threshold_holds(harness, send_money):
    with harness.gate.session(RENT):
        with pytest.raises(Held) as caught:
            send_money(IBAN, 5000.01)

    assert caught.value.reasons == [
        Reason("value.large-amount", "amount 5000.01 exceeds the limit of 5000")
    ]


def test_session_total_holds(harness, send_money):
    with harness.gate.session(RENT):
        send_money(IBAN, 4000)
        send_money(IBAN, 4000)
        with pytest.raises(Held) as caught:
            send_money(IBAN, 4000)
        # The held payment did not count: 2000 more reaches exactly the limit.
        assert send_money(IBAN, 2000) == "paid"

    assert caught.value.reasons == [Reason(
        "value.session-total",
        "amounts in this session would reach 12000; the limit is 10000",
    )]


def test_session_total_is_per_session(harness, send_money):
    with harness.gate.session(RENT):
        send_money(IBAN, 4000)
        send_money(IBAN, 4000)
    with harness.gate.session(RENT):
        assert send_money(IBAN, 4000) == "paid"


def test_numeric_string_amount_checked(harness, send_money):
    with harness.gate.session(RENT):
        with pytest.raises(Held) as caught:
            send_money(IBAN, "9000")

    assert caught.value.reasons[0] == Reason(
        "value.large-amount", "amount 9000 exceeds the limit of 5000")


@pytest.mark.parametrize("amount", ["nine thousand", "9,000", "inf", True, [9000]])
def test_unreadable_amount_holds(harness, send_money, amount):
    with harness.gate.session(RENT):
        with pytest.raises(Held) as caught:
            send_money(IBAN, amount)

    assert [r.rule for r in caught.value.reasons] == [
        "value.large-amount", "value.session-total"]
    assert caught.value.reasons[0].text == (
        f"amount argument amount={amount!r} is not a number; the limit of 5000 "
        "cannot be checked")


def test_missing_amount_not_checked(harness):
    @harness.gate.guard
    def update_scheduled_transaction(id: int, recipient: str | None = None,
                                     amount: float | None = None) -> str:
        return "updated"

    with harness.gate.session(f"update scheduled transaction 7 to pay {IBAN}"):
        assert update_scheduled_transaction(7, recipient=IBAN) == "updated"


@pytest.mark.parametrize(("value", "expected"), [
    (12, 12.0), (12.5, 12.5), ("12.5", 12.5), (" 7 ", 7.0), ("1e3", 1000.0),
    ("nan", None), ("-inf", None), ("12 EUR", None), (False, None), (None, None),
    ({"value": 1}, None),
])
def test_read_amount(value, expected):
    assert read_amount(value) == expected


# -- state digest -----------------------------------------------------------------


def test_state_digest_chain_advances(harness, send_money):
    @harness.gate.guard
    def get_balance() -> float:
        return 100.0

    with harness.gate.session(RENT) as session:
        get_balance()
        with pytest.raises(Held):
            send_money(IBAN, 9000)
        send_money(IBAN, 900)

    decisions = [d for d in harness.records_of("decision")
                 if d["session"] == session.id]
    first = hashlib.sha256(rfc8785.dumps({"session": session.id})).hexdigest()
    assert decisions[0]["sequence"]["before"] == first
    for earlier, later in zip(decisions, decisions[1:]):
        assert later["sequence"]["before"] == earlier["sequence"]["after"]
    for decision in decisions:
        step = {"tool": decision["tool"], "time": decision["time"],
                "verdict": decision["verdict"]}
        before = decision["sequence"]["before"]
        assert decision["sequence"]["after"] == hashlib.sha256(
            before.encode() + rfc8785.dumps(step)).hexdigest()
    assert len({d["sequence"]["after"] for d in decisions}) == 3
    assert decisions[-1]["sequence"]["counters"] == {
        "calls": 2, "reads": 1, "sensitive_reads": 1, "egress": 1,
    }


# -- the step digested into the state -------------------------------------------------


@pytest.mark.parametrize("tool", [
    "send_money",
    'quote " and backslash \\',
    "controls \n\t\b\f\r \x01 \x1f \x7f",
    "non-ASCII é € 😀 \u2028",
    "",
])
def test_step_bytes_equal_jcs(tool):
    time_text = "2026-12-04T10:00:00.000000Z"

    expected = rfc8785.dumps({"tool": tool, "time": time_text, "verdict": "hold"})

    assert step_bytes(tool, time_text, "hold") == expected


def test_step_bytes_rejects_lone_surrogate():
    with pytest.raises(InvalidRequest, match="contains a lone surrogate"):
        step_bytes("tool\ud800", "2026-12-04T10:00:00.000000Z", "allow")


# -- history scans when the clock goes backwards ---------------------------------------


def _facts(tool: str, second: float) -> CallFacts:
    profile = derive_profile(tool, ["recipient"] if tool == "send_email" else [])
    return CallFacts(
        agent="agent", session="s", profile=profile, arguments={},
        destination_sources={}, now=datetime.fromtimestamp(second, UTC),
    )


def test_sequence_counts_steps_after_clock_went_back():
    rule = policy_with(rules=[{
        "id": "reads-then-send", "kind": "sequence", "window_seconds": 60,
        "steps": [{"labels": ["read"], "min_count": 2}, {"labels": ["egress"]}],
    }]).rules[0]
    engine = SequenceEngine([rule])
    state = SessionState("s")
    # Reads at 100 s, then at 10 s (the clock went back), then at 95 s.
    for second in (100.0, 10.0, 95.0):
        engine.commit(state, _facts("read_inbox", second), "allow")

    firings = engine.evaluate(state, _facts("send_email", 150.0))

    assert state.ordered is False
    assert [firing.rule for firing in firings] == ["reads-then-send"]

