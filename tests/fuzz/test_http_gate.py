"""Request bodies of the gate's HTTP API and its approval routes, fuzzed.

The real app (``enforcement.gate_http.create_app``) over a real gate and
SQLite log is driven through httpx's ASGI transport. No request may get a
500 or a status outside specs/gate-api.md, and a decision is returned only
for a valid request, with a receipt that the verifier accepts and that
seals a decision on the requested tool in the requested session.
"""

import functools
import json
import re
from urllib.parse import quote
from dataclasses import dataclass

import pytest
from hypothesis import given
from hypothesis import strategies as st

from enforcement.approvals import sign_approval
from enforcement.evaluation.embedded import create_deployment
from enforcement.gate_http import create_app
from enforcement.gate_service import GateService
from enforcement.policy import load_policy, parse_policy
from enforcement.timeutil import utc_now
from tests.fuzz.asgi import AsgiClient, error_document
from tests.fuzz.mutations import FAST, SLOW, json_values, mutated, mutated_json
from tests.fuzz.samples import APPROVER, scratch_directory
from verifier import verify_receipt

ORIGIN = "agentgate.example/fuzz-gate"
TOKEN = "fuzz-agent-token-0123456789abcdef"
APPROVERS = "fuzz-approver-token-0123456789abcdef"
IBAN = "GB29NWBK60161331926819"
GATE_STATUSES = {200, 201, 400, 404, 409, 413, 429}
# 400 is the gate app's answer to a body that is not a JSON object at all.
APPROVAL_STATUSES = {200, 400, 404, 409, 422}
VISIBLE = re.compile(r"[\x21-\x7e]{1,256}")


@dataclass
class Served:
    agents: AsgiClient
    approvers: AsgiClient
    log_key: str
    session: str
    allowed: str
    request: str
    certificate: dict
    store: object


@functools.cache
def served() -> Served:
    document = load_policy().document()
    document["approvals"] = {
        "approvers": [APPROVER.verifier_key],
        "quorum": 1,
        "rules": ["value.large-amount"],
    }
    deployment = create_deployment(
        scratch_directory() / "gate",
        origin=ORIGIN,
        policy=parse_policy(document),
        purpose=f"pay the rent to {IBAN} and read balances",
    )
    app = create_app(GateService(deployment.gate), TOKEN, approvals_token=APPROVERS)
    agents = AsgiClient(app, {"Authorization": f"Bearer {TOKEN}"})
    approvers = AsgiClient(app, {"Authorization": f"Bearer {APPROVERS}"})

    session = agents.request(
        "POST", "/v1/sessions", json={"purpose": f"pay the rent to {IBAN}"}
    ).json()["session"]
    allowed = decide(agents, session, "setup-1", "read_balance", {})
    assert allowed["verdict"] == "allow", allowed
    held = decide(
        agents, session, "setup-2", "send_money", {"recipient": IBAN, "amount": 9000}
    )
    assert held["verdict"] == "hold", held
    return Served(
        agents,
        approvers,
        deployment.log_key,
        session,
        allowed["decision"],
        held["request"],
        deployment.certificate.to_json(),
        deployment.gate.approval_store,
    )


def decide(client, session, call_id, tool, arguments):
    body = {"call_id": call_id, "tool": tool, "arguments": arguments}
    response = client.request("POST", f"/v1/sessions/{session}/decisions", json=body)
    assert response.status_code == 200, response.text
    return response.json()


def post(client, path, document) -> object:
    content = document if isinstance(document, bytes) else json.dumps(document)
    response = client.request(
        "POST", path, content=content, headers={"Content-Type": "application/json"}
    )
    return response


def session_bodies():
    valid = {
        "purpose": "read the balance",
        "principal_values": [IBAN],
        "chain": [served().certificate],
    }
    return mutated_json(valid) | json_values


@SLOW
@given(st.deferred(session_bodies))
def test_session_bodies(document):
    response = post(served().agents, "/v1/sessions", document)

    assert response.status_code in GATE_STATUSES, response.text
    if response.status_code != 201:
        error_document(response)
        return
    assert isinstance(document, dict)
    assert 1 <= len(document["purpose"]) <= 10_000
    assert response.json()["session"].startswith("s-")


def decision_bodies():
    valid = {"call_id": "c-1", "tool": "read_balance", "arguments": {"account": "x"}}
    return mutated_json(valid) | json_values


@SLOW
@given(st.deferred(decision_bodies))
def test_decision_bodies(document):
    state = served()
    path = f"/v1/sessions/{state.session}/decisions"
    response = post(state.agents, path, document)

    assert response.status_code in GATE_STATUSES, response.text
    if response.status_code != 200:
        error_document(response)
        return
    assert VISIBLE.fullmatch(document["call_id"])
    body = response.json()
    record = verify_receipt(body["receipt"], [state.log_key], ORIGIN).record
    assert record["type"] == "decision"
    assert record["id"] == body["decision"]
    assert record["tool"] == document["tool"]
    assert record["session"] == state.session
    assert record["verdict"] == body["verdict"]


def outcome_bodies():
    valid = {
        "decision": served().allowed,
        "status": "ok",
        "result": {"balance": 12},
        "duration_ms": 1.5,
    }
    return mutated_json(valid) | json_values


@SLOW
@given(st.deferred(outcome_bodies))
def test_outcome_bodies(document):
    state = served()
    path = f"/v1/sessions/{state.session}/outcomes"
    response = post(state.agents, path, document)

    assert response.status_code in GATE_STATUSES, response.text
    if response.status_code != 200:
        error_document(response)
        return
    record = verify_receipt(response.json()["receipt"], [state.log_key], ORIGIN).record
    assert record["type"] == "outcome"
    assert record["decision"] == state.allowed


@FAST
@given(
    st.sampled_from(["/v1/sessions", "/decisions", "/outcomes"]),
    mutated(b'{"purpose":"x","call_id":"c","tool":"t","arguments":{}}')
    | st.binary(max_size=200),
)
def test_raw_bodies_never_fail_with_500(route, content):
    state = served()
    path = route if route == "/v1/sessions" else f"/v1/sessions/{state.session}{route}"
    response = post(state.agents, path, content)

    assert response.status_code in GATE_STATUSES, response.text
    if response.status_code >= 400:
        error_document(response)


@pytest.mark.parametrize(
    ("method", "path", "content", "status", "code"),
    [
        ("GET", "/v1/nowhere", None, 404, "not_found"),
        ("PUT", "/v1/sessions", None, 405, "method_not_allowed"),
        # Found by fuzzing: bodies the router cannot parse got FastAPI's
        # {"detail"} alone, because the handler was on the subclass.
        ("POST", "/v1/sessions", b"\x00" * 9, 400, "invalid_request"),
    ],
)
def test_router_errors_use_error_form(method, path, content, status, code):
    response = served().agents.request(
        method, path, content=content, headers={"Content-Type": "application/json"}
    )
    assert response.status_code == status
    assert error_document(response)["error"] == code


@pytest.mark.parametrize(
    ("route", "document"),
    [
        # Found by fuzzing: the strict parser read 2^53 as the double it
        # denotes, FastAPI as an int that the gate cannot seal, so the gate
        # answered 500.
        ("/decisions", {"call_id": "c-big", "tool": "read_balance",
                        "arguments": {"account": 2**53}}),
        ("/outcomes", {"decision": "d-" + "0" * 32, "status": "ok",
                       "result": {"balance": 2**53}}),
        ("", {"purpose": "x", "principal_values": [2**53]}),
    ],
)
def test_integer_beyond_2_53_is_400(route, document):
    state = served()
    path = f"/v1/sessions/{state.session}{route}" if route else "/v1/sessions"
    response = post(state.agents, path, document)

    assert response.status_code == 400, response.text
    assert error_document(response)["error"] == "invalid_request"


def approval_bodies():
    state = served()
    request = state.store.request(state.request)
    valid = sign_approval(APPROVER, request, "approve", utc_now()).to_json()
    return mutated_json(valid) | json_values


@SLOW
@given(st.deferred(approval_bodies))
def test_signed_approval_bodies(document):
    state = served()
    response = post(state.approvers, f"/v1/approvals/{state.request}", document)

    assert response.status_code in APPROVAL_STATUSES, response.text
    if response.status_code == 200:
        assert response.json() == document


@FAST
@given(st.text(min_size=1, max_size=20), st.sampled_from(["", "/approve", "/deny"]))
def test_approval_routes_never_fail_with_500(text, suffix):
    state = served()
    listed = state.approvers.request("GET", "/v1/approvals", params={"status": text})
    signed = state.approvers.request(
        "POST", f"/v1/approvals/{quote(text, safe='')}{suffix}"
    )

    assert listed.status_code in APPROVAL_STATUSES, listed.text
    # A request id of "/" makes the path end in "//", which the router
    # redirects (307) to the path without the trailing slash.
    assert signed.status_code in APPROVAL_STATUSES | {307, 405}, signed.text
