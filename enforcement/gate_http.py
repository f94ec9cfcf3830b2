"""The gate over HTTP: the FastAPI application of ``agentgate gate serve``.

specs/gate-api.md describes the API. An agent (in any language) starts a
session, asks for a decision before each tool call, runs the tool only after
a verified allow, and reports the outcome. The gate seals every decision and
outcome into the log and returns their receipts, which the client verifies
against the log key it pinned, so it need not trust this server's word.
``enforcement.gate_service`` keeps the sessions.

Every ``/v1`` route needs ``Authorization: Bearer <agent token>``. The
approval routes of ``enforcement.approvals_http`` are mounted under
``/v1/approvals`` behind the approvers' own token, because they show the raw
arguments of held calls and can sign approvals: an agent must not reach them.
"""

from __future__ import annotations

import hmac
import json
import logging
from collections.abc import Callable
from datetime import datetime
from typing import Any

from fastapi import APIRouter, Depends, FastAPI, Request, Response
from fastapi.exceptions import RequestValidationError
from starlette.exceptions import HTTPException as StarletteHTTPException

from enforcement import jcs
from enforcement.errors import ConfigError, InvalidRequest
from enforcement.gate_service import (
    ApiError,
    DecisionRequest,
    DecisionResponse,
    ErrorResponse,
    GateService,
    OutcomeRequest,
    OutcomeResponse,
    SessionRequest,
    SessionResponse,
)
from enforcement.identity import Identity
from enforcement.timeutil import utc_now

__all__ = ["API_VERSION", "MAX_BODY_BYTES", "create_app", "install_error_handlers",
           "limit_request_bodies", "openapi_document"]

logger = logging.getLogger(__name__)

API_VERSION = "1"
MAX_BODY_BYTES = 1 << 20
_STATUS_CODES = {400: "invalid_request", 401: "unauthorized", 404: "not_found",
                 405: "method_not_allowed", 409: "conflict",
                 413: "payload_too_large", 422: "invalid_request"}


class _PayloadTooLarge(Exception):
    """Raised into the application when a streamed body passes the limit."""


class _BodyLimit:
    """Reject request bodies over ``limit`` bytes, declared or streamed.

    A declared Content-Length over the limit is answered before the body is
    read. A streamed (chunked) body is counted as it arrives. Once it passes
    the limit, the middleware sends 413 itself and raises into the
    application, which stops reading. FastAPI turns errors raised while it
    reads a body into 400, so that answer, and any other the application
    tries to send for the aborted request, is dropped.
    """

    def __init__(self, app: Any, limit: int) -> None:
        self.app = app
        self.limit = limit

    async def __call__(self, scope: dict, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        for name, value in scope.get("headers", ()):
            if name == b"content-length" and value.isdigit() and (
                    int(value) > self.limit):
                await self._reject(scope, receive, send)
                return
        seen = 0
        rejected = False

        async def limited() -> dict:
            nonlocal seen, rejected
            message = await receive()
            if message["type"] == "http.request" and not rejected:
                seen += len(message.get("body", b""))
                if seen > self.limit:
                    rejected = True
                    await self._reject(scope, receive, send)
                    raise _PayloadTooLarge()
            return message

        async def guarded_send(message: dict) -> None:
            if not rejected:
                await send(message)

        try:
            await self.app(scope, limited, guarded_send)
        except _PayloadTooLarge:
            if not rejected:
                raise

    async def _reject(self, scope: dict, receive: Any, send: Any) -> None:
        detail = f"the request body is larger than {self.limit} bytes"
        # The rest of the body is never read, so the connection cannot be reused.
        response = _error(413, "payload_too_large", detail, {"Connection": "close"})
        await response(scope, receive, send)


def limit_request_bodies(app: FastAPI, limit: int) -> None:
    """Return 413 ``payload_too_large`` for any request body over ``limit`` bytes."""
    app.add_middleware(_BodyLimit, limit=limit)


def _error(status: int, code: str, detail: str,
           headers: dict[str, str] | None = None) -> Response:
    body = jcs.canonical({"error": code, "detail": detail})
    return Response(body, status, headers, media_type="application/json")


def _bearer(token: str, what: str):
    """Return a dependency that requires ``Authorization: Bearer <token>``."""
    if len(token) < 16:
        raise ConfigError(f"the {what} has {len(token)} characters; use at "
                          "least 16 random characters")
    expected = f"Bearer {token}".encode()

    def authorized(request: Request) -> None:
        given = request.headers.get("authorization")
        if given is None or not given.startswith("Bearer "):
            raise ApiError(401, "unauthorized",
                           f"missing bearer token; send Authorization: Bearer "
                           f"<{what}>",
                           {"WWW-Authenticate": 'Bearer realm="agentgate"'})
        if not hmac.compare_digest(given.encode(), expected):
            raise ApiError(401, "unauthorized", f"the bearer token is not the {what}",
                           {"WWW-Authenticate":
                            'Bearer realm="agentgate", error="invalid_token"'})

    return authorized


async def _strict_json(request: Request) -> None:
    """Reject bodies with duplicate names, lone surrogates or non-finite numbers.

    FastAPI's own parser keeps the last of duplicate names, so the gate could
    judge another value than the client holds.
    """
    body = await request.body()
    if not body:
        return
    try:
        jcs.parse_strict(body)
        # FastAPI parses the body again, and the gate judges and seals its
        # value. It keeps an integer beyond 2^53 as an int where the strict
        # parser returns the double it denotes, so check that value too.
        jcs.check_json_value(json.loads(body))
    except InvalidRequest as err:
        raise ApiError(400, "invalid_request",
                       f"the body is not strict JSON: {err}") from err


def create_app(
    service: GateService,
    token: str,
    *,
    approvals_token: str | None = None,
    approver: Identity | None = None,
    max_body_bytes: int = MAX_BODY_BYTES,
    clock: Callable[[], datetime] = utc_now,
) -> FastAPI:
    """Return the application: the gate's routes behind ``token``.

    With ``approvals_token``, the approval routes are mounted under
    ``/v1/approvals`` behind that token. ``approver`` is the identity that
    signs for ``POST .../approve`` and ``.../deny``, as of ``clock``. The
    token must differ from the agents' token, or an agent could approve its
    own held calls.
    """
    app = FastAPI(title="AgentGate gate", version=API_VERSION,
                  summary="Decide, seal and prove agent tool calls.",
                  docs_url=None, redoc_url=None, openapi_url="/v1/openapi.json",
                  generate_unique_id_function=lambda route: route.name)
    install_error_handlers(app)
    agents = APIRouter(prefix="/v1",
                       dependencies=[Depends(_bearer(token, "agent token"))])
    errors = {status: {"model": ErrorResponse}
              for status in (400, 401, 404, 409, 413, 429, 503)}

    @agents.post("/sessions", status_code=201, response_model=SessionResponse,
                 responses=errors, dependencies=[Depends(_strict_json)])
    def start_session(body: SessionRequest) -> dict[str, Any]:
        """Start a session for a declared purpose."""
        return service.start_session(body)

    @agents.delete("/sessions/{session}", status_code=204, responses=errors)
    def end_session(session: str) -> Response:
        """End a session and forget its calls."""
        service.end_session(session)
        return Response(status_code=204)

    @agents.post("/sessions/{session}/decisions", response_model=DecisionResponse,
                 responses=errors, dependencies=[Depends(_strict_json)])
    def decide(session: str, body: DecisionRequest) -> dict[str, Any]:
        """Decide one tool call and return the sealed decision's receipt."""
        return service.decide(session, body)

    @agents.post("/sessions/{session}/outcomes", response_model=OutcomeResponse,
                 responses=errors, dependencies=[Depends(_strict_json)])
    def report(session: str, body: OutcomeRequest) -> dict[str, Any]:
        """Seal the outcome of an allowed call."""
        return service.report(session, body)

    app.include_router(agents)

    if approvals_token is not None:
        from enforcement.approvals_http import approvals_router

        if hmac.compare_digest(approvals_token.encode(), token.encode()):
            raise ConfigError("the approvers' token equals the agents' token, so "
                              "an agent could approve its own calls; use two "
                              "different tokens")
        store = service.gate.approval_store if service.gate is not None else None
        if store is None and service.gate is not None:
            raise ConfigError("the policy names no approvers, so there are no "
                              "approval routes to serve; drop the approvers' token")
        app.include_router(approvals_router(store, approvals_token, approver, clock),
                           prefix="/v1")

    @app.get("/healthz", response_model=dict[str, str])
    def health() -> dict[str, str]:
        """Return ok while the server runs."""
        return {"status": "ok"}

    limit_request_bodies(app, max_body_bytes)
    _install_openapi(app)
    return app


def install_error_handlers(app: FastAPI) -> None:
    """Return every error as ``{"error": code, "detail": text}`` (specs/gate-api.md)."""
    # Starlette's class, of which FastAPI's is a subclass: the router raises
    # it for unknown paths, other methods and bodies it cannot parse.
    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, err: StarletteHTTPException) -> Response:
        if isinstance(err, ApiError):
            return _error(err.status_code, err.code, err.detail, err.headers)
        # Raised by the router itself or by the approval routes.
        code = _STATUS_CODES.get(err.status_code, "http_error")
        detail = str(err.detail)
        if err.status_code == 404 and detail == "Not Found":
            detail = f"no endpoint at {request.url.path}; see specs/gate-api.md"
        elif err.status_code == 405:
            detail = f"method {request.method} is not allowed on {request.url.path}"
        return _error(err.status_code, code, detail, err.headers)

    @app.exception_handler(RequestValidationError)
    async def invalid_body(request: Request, err: RequestValidationError) -> Response:
        return _error(400, "invalid_request", _describe(err.errors()))

    @app.exception_handler(Exception)
    async def unexpected(request: Request, err: Exception) -> Response:
        logger.exception("unexpected error on %s %s", request.method,
                         request.url.path)
        return _error(500, "internal_error",
                      "the server failed; its log has the details")


def _describe(errors: Any) -> str:
    """Return one sentence per invalid field, with the value that was sent."""
    sentences = []
    for error in errors:
        where = ".".join(str(part) for part in error["loc"] if part != "body")
        if error["type"] == "json_invalid":
            reason = error.get("ctx", {}).get("error", error["msg"])
            sentences.append(f"the body is not JSON ({reason}); send a JSON "
                             "object as specs/gate-api.md describes")
            continue
        if error["type"] == "missing":
            sentences.append(f"{where or 'the body'} is required")
        else:
            sentences.append(f"{where or 'the body'}: {error['msg']}, got "
                             f"{error.get('input')!r:.200}")
    return "; ".join(sentences)


def _install_openapi(app: FastAPI) -> None:
    """Complete FastAPI's document: bearer schemes, no 422 (invalid is 400)."""
    generate = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            document = generate()
            for path, operations in document["paths"].items():
                scheme = ("approverToken" if path.startswith("/v1/approvals")
                          else "agentToken" if path.startswith("/v1/") else None)
                for operation in operations.values():
                    responses = operation["responses"]
                    if responses.pop("422", None) is not None:
                        responses.setdefault("400", {
                            "description": "Bad Request",
                            "content": {"application/json": {"schema": {
                                "$ref": "#/components/schemas/ErrorResponse"}}},
                        })
                    if scheme is not None:
                        operation["security"] = [{scheme: []}]
            components = document.setdefault("components", {})
            schemas = components.setdefault("schemas", {})
            schemas.pop("HTTPValidationError", None)
            schemas.pop("ValidationError", None)
            components["schemas"] = dict(sorted(schemas.items()))
            components["securitySchemes"] = {
                "agentToken": {"type": "http", "scheme": "bearer",
                               "description": "The agents' token."},
                "approverToken": {"type": "http", "scheme": "bearer",
                                  "description": "The approvers' token."},
            }
            app.openapi_schema = document
        return app.openapi_schema

    app.openapi = openapi


def openapi_document() -> dict[str, Any]:
    """Return the OpenAPI document of the app, without a gate."""
    app = create_app(GateService(None), "placeholder-agent-token",
                     approvals_token="placeholder-approver-token")
    return app.openapi()


if __name__ == "__main__":
    import json

    print(json.dumps(openapi_document(), indent=2, ensure_ascii=False))
