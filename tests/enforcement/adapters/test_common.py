"""What the adapters share: session lookup, refusal text, tool profiles, the
call memory, and running a tool under an earlier decision."""

from __future__ import annotations

import asyncio
import subprocess
import sys

import pytest

from enforcement.adapters import (
    CallMemory,
    ProfileRegistry,
    find_session,
    refusal_data,
    refusal_text,
)
from enforcement.adapters._common import run_decided
from enforcement.errors import (
    ApprovalRequired,
    ConfigError,
    Denied,
    Held,
    InvalidRequest,
    NoSession,
    SealError,
)
from enforcement.profiles import ToolProfile
from tests.enforcement.adapters.conftest import LARGE, PURPOSE, RENT

FRAMEWORKS = ("langchain", "langchain_core", "langgraph", "agents", "pydantic_ai")


def test_package_imports_no_framework():
    probe = ("import sys, enforcement.adapters; print(sorted(m for m in sys.modules "
             f"if m.split('.')[0] in {FRAMEWORKS!r}))")
    completed = subprocess.run([sys.executable, "-c", probe], capture_output=True,
                               text=True, check=True)
    assert completed.stdout.strip() == "[]"


# -- sessions ------------------------------------------------------------------------


def test_find_session_uses_entered_session(payments):
    with payments.gate.session(PURPOSE) as session:
        assert find_session(payments.gate) is session


def test_find_session_prefers_pinned_session(payments):
    pinned = payments.gate.session(PURPOSE)
    with payments.gate.session(PURPOSE):
        assert find_session(payments.gate, pinned) is pinned


def test_find_session_without_session_raises(payments):
    with pytest.raises(NoSession, match=r"`with gate.session\(purpose=...\):`"):
        find_session(payments.gate)


def test_find_session_ignores_other_gates_session(payments, approving):
    with approving.gate.session(PURPOSE):
        with pytest.raises(NoSession, match="outside a session of its gate"):
            find_session(payments.gate)


def test_find_session_rejects_foreign_pinned(payments, approving):
    foreign = approving.gate.session(PURPOSE)
    with pytest.raises(ConfigError, match=f"session {foreign.id} belongs to another"):
        find_session(payments.gate, foreign)


# -- refusal text --------------------------------------------------------------------


def refusal_of(harness, tool, arguments):
    with harness.gate.session(PURPOSE) as session:
        with pytest.raises((Denied, Held)) as caught:
            session.call(tool, arguments, lambda: None)
    return caught.value


def test_denial_text_lists_reasons_and_index(payments):
    denied = refusal_of(payments, "delete_file", {"path": "/etc/hosts"})

    lines = refusal_text(denied, "delete_file").split("\n")
    assert lines[0] == ("AgentGate denied this call to delete_file, so the tool did "
                        "not run.")
    assert lines[1].startswith("- delegation.scope: ")
    assert lines[-1] == (f"The decision is sealed at index {denied.decision.index} "
                         "of the log.")
    assert refusal_data(denied)["verdict"] == "deny"


def test_approval_hold_text_names_request(approving):
    held = refusal_of(approving, "send_money", LARGE)

    assert isinstance(held, ApprovalRequired)
    text = refusal_text(held, "send_money")
    assert text.startswith(
        "AgentGate is holding this call to send_money until the approvers sign "
        f"approval request {held.request}, so the tool did not run.\n")
    assert "- value.large-amount: amount 9000 exceeds the limit of 5000" in text
    assert refusal_data(held)["request"] == held.request


def test_plain_hold_text_says_no_request(payments):
    held = refusal_of(payments, "send_money", LARGE)

    assert type(held) is Held
    assert refusal_text(held, "send_money").startswith(
        "AgentGate held this call to send_money for human review, and no approval "
        "request was opened, so the tool did not run.")


def test_seal_error_text_keeps_cause():
    text = refusal_text(SealError("the ledger did not seal decision record d-1"), "pay")

    assert text == ("AgentGate could not seal its decision on this call to pay, so "
                    "the tool did not run: the ledger did not seal decision record d-1")
    assert refusal_data(SealError("x")) == {
        "verdict": "error", "error": "SealError", "message": "x"}


def test_invalid_request_text_keeps_cause():
    text = refusal_text(InvalidRequest("argument 'amount' is NaN"), "pay")

    assert text == ("AgentGate could not judge the arguments of this call to pay, so "
                    "the tool did not run: argument 'amount' is NaN")


# -- profiles ------------------------------------------------------------------------


def test_profile_registry_uses_description(payments):
    registry = ProfileRegistry(payments.gate)

    registry.register("fetch_statement", ["month"], "Read the user's bank statement.")

    profile = payments.gate.profile_for("fetch_statement", {})
    assert profile.description == "Read the user's bank statement."
    assert "financial" in profile.data_classes
    assert profile.roles.keys() == {"month"}


def test_profile_registry_keeps_registered_profile(payments):
    own = ToolProfile(name="fetch_statement", labels=frozenset({"read"}),
                      data_classes=frozenset(), roles={}, description="mine")
    payments.gate.register_tool("fetch_statement", profile=own)

    ProfileRegistry(payments.gate).register("fetch_statement", ["month"], "other")

    assert payments.gate.profile_for("fetch_statement", {}).description == "mine"


# -- the call memory -----------------------------------------------------------------


def test_call_memory_keys_by_session_and_call(payments):
    memory = CallMemory(4)
    first = payments.gate.session(PURPOSE)
    second = payments.gate.session(PURPOSE)

    memory.put(first, "c1", "a")
    memory.put(second, "c1", "b")

    assert memory.get(first, "c1") == "a"
    assert memory.get(second, "c1") == "b"
    assert memory.pop(first, "c1") == "a"
    assert memory.get(first, "c1") is None


def test_call_memory_drops_oldest_past_size(payments):
    memory = CallMemory(2)
    session = payments.gate.session(PURPOSE)

    for call_id in ("c1", "c2", "c3"):
        memory.put(session, call_id, call_id)

    assert memory.get(session, "c1") is None
    assert memory.get(session, "c3") == "c3"


def test_call_memory_skips_calls_without_id(payments):
    memory = CallMemory()
    session = payments.gate.session(PURPOSE)

    memory.put(session, None, "x")

    assert memory.get(session, None) is None


def test_call_memory_rejects_size_zero():
    with pytest.raises(ConfigError, match="at least 1, got 0"):
        CallMemory(0)


# -- running under an earlier decision -----------------------------------------------


def test_run_decided_seals_outcome(payments):
    with payments.gate.session(PURPOSE) as session:
        decision = session.decide("send_money", RENT)

        async def tool():
            return {"sent": 900}

        assert asyncio.run(run_decided(session, decision, tool)) == {"sent": 900}

    (outcome,) = payments.records_of("outcome")
    assert outcome["decision"] == decision.id
    assert outcome["status"] == "ok"


def test_run_decided_refuses_non_allow(payments):
    ran = []
    with payments.gate.session(PURPOSE) as session:
        decision = session.decide("delete_file", {"path": "/etc/hosts"})

        async def tool():
            ran.append(1)

        with pytest.raises(ConfigError,
                           match=rf"decision {decision.id} \(deny\) is not"):
            asyncio.run(run_decided(session, decision, tool))
    assert ran == []


def test_run_decided_refuses_other_session(payments):
    ran = []
    with payments.gate.session(PURPOSE) as first:
        decision = first.decide("send_money", RENT)
    other = payments.gate.session(PURPOSE)

    async def tool():
        ran.append(1)

    with pytest.raises(ConfigError, match=f"not an allow sealed by session {other.id}"):
        asyncio.run(run_decided(other, decision, tool))
    assert ran == []
