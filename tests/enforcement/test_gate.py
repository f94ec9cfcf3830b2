"""The gate pipeline: allow, deny and hold, the session hash chain, failing
scorers and rules, and requests that cannot be judged."""

from __future__ import annotations

import hashlib
import re

import pytest

from enforcement.alignment import AlignmentResult
from enforcement.errors import ConfigError, Denied, Held, InvalidRequest, Reason
from enforcement.gate import Gate
from enforcement.policy import load_policy
from enforcement.sequence import SequenceEngine
from enforcement.vault import check_opening
from ledger.receipt import Receipt
from tests.enforcement.conftest import (
    LOG_KEY,
    issue,
    policy_with,
    seeded_identity,
    verify,
)

IBAN = "GB29NWBK60161331926819"
RENT = f"pay the rent of 900 to {IBAN}"


def leaf_hash(entry: bytes) -> str:
    return hashlib.sha256(b"\x00" + entry).hexdigest()


class Counter:
    """A tool body that counts its runs."""

    def __init__(self, result=None) -> None:
        self.runs = 0
        self.result = result

    def __call__(self):
        self.runs += 1
        return self.result


class FixedScorer:
    name = "fixed"
    version = "1"

    def __init__(self, result) -> None:
        self.result = result

    def score(self, context):
        if isinstance(self.result, Exception):
            raise self.result
        return self.result


def fixed(score, reasons=("fixed score",)) -> AlignmentResult:
    return AlignmentResult("fixed", "1", score, "aligned", tuple(reasons))


def verify_entry(harness, entry: bytes) -> dict:
    """Prove an entry with a fresh receipt from the log and return its record."""
    index = harness.ledger.entries(0, harness.ledger.size).index(entry)
    proof = harness.ledger.inclusion_proof(index, harness.ledger.size)
    receipt = Receipt.build(entry, index, proof, harness.ledger.latest_checkpoint())
    return verify(receipt).record


# -- allow ----------------------------------------------------------------------


def test_allow_runs_tool_once(harness):
    tool = Counter({"balance": 10})

    with harness.gate.session("check my balance") as session:
        result = session.call("get_balance", {}, tool)

    assert result == {"balance": 10}
    assert tool.runs == 1


def test_allow_seals_decision_then_outcome(harness):
    before = harness.ledger.size
    tool = Counter({"balance": 10})

    with harness.gate.session("check my balance") as session:
        session.call("get_balance", {}, tool)

    entries = harness.ledger.entries(before, harness.ledger.size)
    decision, outcome = (verify_entry(harness, e) for e in entries)
    assert decision["type"] == "decision"
    assert decision["verdict"] == "allow"
    assert decision["reasons"] == []
    assert outcome["type"] == "outcome"
    assert outcome["decision"] == decision["id"]
    assert outcome["decision_index"] == before
    assert outcome["status"] == "ok"
    assert "error" not in outcome
    assert outcome["session"] == decision["session"] == session.id
    assert verify(session.decisions[0].receipt).index == before


def test_records_have_spec_fields(harness):
    with harness.gate.session("check my balance") as session:
        session.call("get_balance", {"account": "main"}, Counter(10))

    decision, outcome = harness.records()[-2:]
    assert set(decision) == {
        "type", "version", "id", "time", "agent", "session", "tool", "arguments",
        "delegation", "alignment", "sequence", "policy", "verdict", "reasons",
    }
    assert set(outcome) == {
        "type", "version", "id", "time", "session", "decision", "decision_index",
        "status", "duration_ms", "result", "previous",
    }
    assert re.fullmatch(r"d-[0-9a-f]{32}", decision["id"])
    assert re.fullmatch(r"o-[0-9a-f]{32}", outcome["id"])
    assert decision["time"] == "2026-12-04T10:00:00.000000Z"
    assert decision["version"] == outcome["version"] == 1
    assert decision["agent"] == harness.agent.key_id
    assert set(decision["sequence"]) == {"previous", "before", "after", "fired",
                                         "counters"}
    assert set(decision["alignment"]) == {"scorer", "version", "score", "label",
                                          "thresholds", "reasons"}
    assert re.fullmatch(r"[0-9a-f]{64}", decision["arguments"]["account"])


def test_outcome_result_commitment_opens(harness):
    with harness.gate.session("check my balance") as session:
        session.call("get_balance", {}, Counter({"balance": 10}))

    outcome = harness.records_of("outcome")[-1]
    name, salt, value = harness.vault.open(outcome["result"])
    assert name == "result"
    assert value == {"balance": 10}
    assert check_opening(outcome["result"], salt, value)


def test_set_result_committed_as_list(harness):
    with harness.gate.session("check my balance") as session:
        session.call("get_balance", {}, Counter({1, 2}))

    _, _, value = harness.vault.open(harness.records_of("outcome")[-1]["result"])
    assert value == [1, 2]


def test_non_json_result_committed_as_repr(harness):
    with harness.gate.session("check my balance") as session:
        session.call("get_balance", {}, Counter({"x": float("nan")}))

    _, _, value = harness.vault.open(harness.records_of("outcome")[-1]["result"])
    assert value == "{'x': nan}"


def test_session_hash_chain(harness):
    gate = harness.gate
    with gate.session(RENT) as session:
        session.call("get_balance", {}, Counter(10))
        with pytest.raises(Held):
            session.call("send_money", {"recipient": IBAN, "amount": 9000}, Counter())
        session.call("send_money", {"recipient": IBAN, "amount": 900}, Counter())
    with gate.session("another run") as other:
        other.call("get_balance", {}, Counter(10))

    entries = harness.ledger.entries(0, harness.ledger.size)
    records = [verify_entry(harness, e) for e in entries]
    ours = [(r, e) for r, e in zip(records, entries)
            if r.get("session") == session.id]
    kinds = [r["type"] for r, _ in ours]
    assert kinds == ["decision", "outcome", "decision", "decision", "outcome"]
    assert ours[0][0]["sequence"]["previous"] is None
    for (record, _), (_, previous_entry) in zip(ours[1:], ours):
        previous = (record["sequence"]["previous"] if record["type"] == "decision"
                    else record["previous"])
        assert previous == leaf_hash(previous_entry)
    theirs = [r for r in records if r.get("session") == other.id]
    assert theirs[0]["sequence"]["previous"] is None


# -- deny and hold --------------------------------------------------------------


def test_deny_raises_with_verified_receipt(harness, agent):
    tool = Counter()
    chain = [issue(seeded_identity("mallory.test"), agent)]
    before = harness.ledger.size

    with harness.gate.session("check my balance", chain=chain) as session:
        with pytest.raises(Denied) as caught:
            session.call("get_balance", {}, tool)

    refusal = caught.value
    assert tool.runs == 0
    assert refusal.verdict == "deny"
    assert all(isinstance(reason, Reason) for reason in refusal.reasons)
    assert [r.rule for r in refusal.reasons] == ["chain.anchor"]
    verified = verify(refusal.receipt)
    assert verified.index == before
    assert verified.record["verdict"] == "deny"
    assert verified.record["reasons"] == [r.to_json() for r in refusal.reasons]
    assert refusal.to_json() == {
        "verdict": "deny", "tool": "get_balance",
        "reasons": [r.to_json() for r in refusal.reasons], "index": before,
    }
    # No outcome: the tool never ran.
    assert harness.ledger.size == before + 1


def test_hold_raises_with_verified_receipt(harness):
    tool = Counter()

    with harness.gate.session(RENT) as session:
        with pytest.raises(Held) as caught:
            session.call("send_money", {"recipient": IBAN, "amount": 9000}, tool)

    assert tool.runs == 0
    assert caught.value.reasons == [Reason(
        "value.large-amount", "amount 9000 exceeds the limit of 5000")]
    assert str(caught.value) == (
        "send_money: hold (value.large-amount: amount 9000 exceeds the limit of "
        "5000)")
    record = verify(caught.value.receipt).record
    assert record["verdict"] == "hold"
    assert record["sequence"]["fired"] == ["value.large-amount"]


def test_deny_outranks_hold(make_harness):
    harness = make_harness(policy=policy_with(rules=[
        {"id": "value.large", "kind": "amount_threshold", "max_amount": 10},
        {"id": "value.never", "kind": "amount_threshold", "max_amount": 5,
         "verdict": "deny"},
    ]))

    with harness.gate.session(RENT) as session:
        with pytest.raises(Denied) as caught:
            session.call("send_money", {"recipient": IBAN, "amount": 20}, Counter())

    assert [r.rule for r in caught.value.reasons] == ["value.large", "value.never"]
    assert verify(caught.value.receipt).record["verdict"] == "deny"


# -- failing scorers and rules --------------------------------------------------


@pytest.mark.parametrize(("result", "text"), [
    (RuntimeError("model offline"), "scorer raised RuntimeError: model offline"),
    (fixed(1.5), r"scorer raised ValueError: score 1\.5 is outside \[0, 1\]"),
    (fixed(-0.1), r"score -0\.1 is outside \[0, 1\]"),
    (fixed(float("nan")), r"score nan is outside \[0, 1\]"),
    ({"score": 0.9}, r"score\(\) returned a dict, expected an AlignmentResult"),
    (fixed(0.9, reasons=(7,)), r"reasons must be strings, got \(7,\)"),
    (fixed(0.9, reasons=("\ud800",)), r"lone surrogate"),
])
def test_failing_scorer_denies(make_harness, result, text):
    harness = make_harness(scorer=FixedScorer(result))
    tool = Counter()

    with harness.gate.session("check my balance") as session:
        with pytest.raises(Denied) as caught:
            session.call("get_balance", {}, tool)

    assert tool.runs == 0
    (reason,) = caught.value.reasons
    assert reason.rule == "alignment"
    assert reason.text.startswith("score 0.00 is below the deny threshold 0.15: ")
    assert re.search(text, reason.text), reason.text
    record = verify(caught.value.receipt).record
    assert record["alignment"]["label"] == "error"
    assert record["alignment"]["score"] == 0.0
    assert record["alignment"]["scorer"] == "fixed"


def test_low_score_holds_with_thresholds(make_harness):
    harness = make_harness(scorer=FixedScorer(fixed(0.3, ["looks odd"])))

    with harness.gate.session("check my balance") as session:
        with pytest.raises(Held) as caught:
            session.call("get_balance", {}, Counter())

    assert caught.value.reasons == [
        Reason("alignment", "score 0.30 is below the hold threshold 0.5: looks odd")
    ]
    alignment = verify(caught.value.receipt).record["alignment"]
    assert alignment == {"scorer": "fixed", "version": "1", "score": 0.3,
                         "label": "aligned", "thresholds": {"hold": 0.5, "deny": 0.15},
                         "reasons": ["looks odd"]}


def test_raising_rule_denies_with_its_id(harness, monkeypatch):
    def broken(rule, facts):
        raise RuntimeError("threshold table unreadable")

    monkeypatch.setattr(SequenceEngine, "_amount_threshold", staticmethod(broken))
    tool = Counter()

    with harness.gate.session("check my balance") as session:
        with pytest.raises(Denied) as caught:
            session.call("get_balance", {}, tool)

    assert tool.runs == 0
    assert caught.value.reasons == [Reason(
        "value.large-amount",
        "rule raised RuntimeError: threshold table unreadable; the call is denied",
    )]
    record = verify(caught.value.receipt).record
    assert record["sequence"]["fired"] == ["value.large-amount"]
    assert record["verdict"] == "deny"


# -- requests that cannot be judged ---------------------------------------------


@pytest.mark.parametrize(("arguments", "message"), [
    ({"amount": float("nan")}, r"arguments\.amount: nan is not a finite number"),
    ({"amount": float("inf")}, r"arguments\.amount: inf is not a finite number"),
    ({"note": "\ud800"}, r"arguments\.note: string holds a lone surrogate at "
                          r"position 0"),
    ({"tags": {"a", "b"}}, r"arguments\.tags: a set is not a JSON value"),
    ({"amount": 2**60}, r"arguments\.amount: integer 1152921504606846976 is outside "
                        r"\+-\(2\^53 - 1\); send it as a string"),
    ({"map": {1: "x"}}, r"arguments\.map: object key 1 is a int, expected a string"),
    ({"blob": b"\x00"}, r"arguments\.blob: a bytes is not a JSON value"),
    ({"deep": [[{"x": float("nan")}]]},
     r"arguments\.deep\[0\]\[0\]\.x: nan is not a finite number"),
    ({"\udc80": 1}, r"arguments key: string holds a lone surrogate"),
])
def test_non_json_arguments_rejected(harness, arguments, message):
    tool = Counter()
    before = harness.ledger.size

    with harness.gate.session("check my balance") as session:
        with pytest.raises(InvalidRequest, match=message):
            session.call("get_balance", arguments, tool)

    assert tool.runs == 0
    assert harness.ledger.size == before
    assert session.decisions == []


@pytest.mark.parametrize(("tool_name", "arguments", "message"), [
    ("", {}, "tool name must be a non-empty string, got ''"),
    (None, {}, "tool name must be a non-empty string, got None"),
    ("t" * 257, {}, "tool name must be a non-empty string"),
    ("get_\ud800", {}, "tool: string holds a lone surrogate at position 4"),
    ("get_balance", ["a"], "arguments must be a mapping of names to values, got list"),
])
def test_malformed_request_rejected(harness, tool_name, arguments, message):
    before = harness.ledger.size

    with harness.gate.session("check my balance") as session:
        with pytest.raises(InvalidRequest, match=re.escape(message)):
            session.call(tool_name, arguments, Counter())

    assert harness.ledger.size == before


# -- configuration --------------------------------------------------------------


def test_gate_needs_log_key(harness, principal):
    with pytest.raises(ConfigError, match="pin at least one log verifier key"):
        Gate(harness.client, [], load_policy(), [principal.verifier_key])


def test_gate_rejects_bad_log_key(harness, principal):
    with pytest.raises(ConfigError, match="expected 'name\\+hex8\\+base64'"):
        Gate(harness.client, "not-a-key", load_policy(), [principal.verifier_key])


def test_gate_rejects_incomplete_scorer(harness, principal):
    class Nameless:
        def score(self, context):
            return fixed(1.0)

    with pytest.raises(ConfigError, match="lacks name, version or score"):
        Gate(harness.client, LOG_KEY, load_policy(), [principal.verifier_key],
             scorer=Nameless())


def test_gate_needs_origin(principal):
    class NoOrigin:
        pass

    with pytest.raises(ConfigError, match="the log origin is unknown; pass origin="):
        Gate(NoOrigin(), LOG_KEY, load_policy(), [principal.verifier_key])
