"""Request bodies of ``agentgate approvals serve``, the approval routes alone.

The app of ``enforcement.approvals_http.create_app`` runs over the approval
store of the fuzzed gate in ``test_http_gate``, which contains one request.
Every body gets a 4xx status with a JSON body, never a 500, and a signed
approval is stored only when it is one the approver signed.
"""

import functools
import json

from hypothesis import given
from hypothesis import strategies as st

from enforcement.approvals import sign_approval
from enforcement.approvals_http import create_app
from enforcement.timeutil import utc_now
from tests.fuzz.asgi import AsgiClient
from tests.fuzz.mutations import FAST, SLOW, json_values, mutated, mutated_json
from tests.fuzz.samples import APPROVER
from tests.fuzz.test_http_gate import served

TOKEN = "fuzz-approvals-token-0123456789abcdef"
STATUSES = {200, 400, 404, 405, 409, 413, 422}


@functools.cache
def client() -> AsgiClient:
    app = create_app(served().store, TOKEN)
    return AsgiClient(app, {"Authorization": f"Bearer {TOKEN}"})


def check_error(response) -> None:
    assert response.status_code in STATUSES - {200}, response.text
    document = response.json()
    assert isinstance(document, dict), document
    assert "detail" in document, document


def signed_approvals():
    request = served().store.request(served().request)
    valid = sign_approval(APPROVER, request, "approve", utc_now()).to_json()
    return mutated_json(valid) | json_values


@SLOW
@given(st.deferred(signed_approvals))
def test_signed_approval_bodies(document):
    response = client().request(
        "POST", f"/approvals/{served().request}", content=json.dumps(document),
        headers={"Content-Type": "application/json"},
    )

    if response.status_code == 200:
        assert response.json() == document
    else:
        check_error(response)


@FAST
@given(
    st.sampled_from(["", "/approve", "/deny"]),
    mutated(b'{"expiry_seconds": 60}') | st.binary(max_size=200),
)
def test_raw_bodies_never_fail_with_500(suffix, content):
    response = client().request(
        "POST", f"/approvals/{served().request}{suffix}", content=content,
        headers={"Content-Type": "application/json"},
    )

    # This server has no approver key, so it signs nothing itself.
    assert response.status_code != 200 or suffix == ""
    if response.status_code != 200:
        check_error(response)
