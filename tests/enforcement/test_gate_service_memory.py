"""A long-running gate keeps no state of sessions that have ended."""

from __future__ import annotations

import gc
import weakref

import pytest

pytest.importorskip("fastapi", reason="install the server extra")

from enforcement.gate_service import (  # noqa: E402
    DecisionRequest,
    GateService,
    OutcomeRequest,
    SessionRequest,
)

IBAN = "GB29NWBK60161331926819"
PURPOSE = f"check my balance and pay the March rent of 900 to {IBAN}"
CALLS = [
    ("get_balance", {}),
    ("send_money", {"recipient": IBAN, "amount": 900, "subject": "March rent"}),
]


def run_session(service: GateService, number: int) -> str:
    """Start a session, decide and report its calls, and end it. Return its id."""
    session = service.start_session(SessionRequest(purpose=PURPOSE))["session"]
    for position, (tool, arguments) in enumerate(CALLS):
        decision = service.decide(session, DecisionRequest(
            call_id=f"s{number}-{position}", tool=tool, arguments=arguments))
        assert decision["verdict"] == "allow", decision["reasons"]
        service.report(session, OutcomeRequest(
            decision=decision["decision"], status="ok", result={"ok": True}))
    service.end_session(session)
    return session


def test_ended_sessions_leave_no_window_keys(harness):
    service = GateService(harness.gate)
    windows = harness.gate._engine._windows
    run_session(service, 0)
    keys_after_first = len(windows)

    for number in range(1, 21):
        run_session(service, number)

    # Only the agent's and its tools' keys remain, as after the first session.
    assert len(windows) == keys_after_first


def test_ended_sessions_are_released(harness):
    service = GateService(harness.gate)
    session = service.start_session(SessionRequest(purpose=PURPOSE))["session"]
    released = weakref.ref(service._sessions[session].session)
    service.decide(session, DecisionRequest(call_id="c-0", tool="get_balance"))

    service.end_session(session)
    gc.collect()

    assert service._sessions == {}
    assert released() is None
