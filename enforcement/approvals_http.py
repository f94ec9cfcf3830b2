"""HTTP routes for approvers: list held calls, approve or deny them.

``approvals_router`` returns a FastAPI router that a gate process can mount,
and ``create_app`` wraps it in an application for ``agentgate approvals
serve``. Every route needs ``Authorization: Bearer <token>``, because the
listing shows the raw arguments of held calls. The server signs approvals
with the approver key it was started with (``POST /approvals/{id}/approve``
and ``/deny``), or takes an approval signed elsewhere (``POST
/approvals/{id}``). Either way the approval is checked against its request
before it is stored.
"""

from __future__ import annotations

import hmac
import logging
from collections.abc import Callable
from datetime import datetime
from typing import Any

from fastapi import APIRouter, Body, Depends, FastAPI, HTTPException, Request
from pydantic import BaseModel, ConfigDict, Field

from enforcement.approvals import (
    SignedApproval,
    expiry_after,
    sign_approval,
    submit_approval,
)
from enforcement.approvals_store import STATUSES, ApprovalStore
from enforcement.errors import ApprovalError, ConfigError
from enforcement.identity import Identity
from enforcement.timeutil import utc_now

logger = logging.getLogger(__name__)


class SignRequest(BaseModel):
    """Body of an approve or deny call; every member is optional."""

    model_config = ConfigDict(extra="forbid")

    expiry_seconds: float | None = Field(None, gt=0)


def approvals_router(
    store: ApprovalStore,
    token: str,
    signer: Identity | None = None,
    clock: Callable[[], datetime] = utc_now,
) -> APIRouter:
    """Return the routes, all behind the bearer ``token``."""
    if len(token) < 16:
        raise ConfigError(
            f"the bearer token has {len(token)} characters; use at least 16 "
            "random characters"
        )
    expected = f"Bearer {token}".encode()

    def authorized(request: Request) -> None:
        given = request.headers.get("authorization", "").encode()
        if not hmac.compare_digest(given, expected):
            raise HTTPException(
                status_code=401,
                detail="missing or wrong bearer token",
                headers={"WWW-Authenticate": "Bearer"},
            )

    router = APIRouter(prefix="/approvals", dependencies=[Depends(authorized)])

    def existing(request_id: str):
        try:
            return store.request(request_id)
        except ApprovalError as err:
            raise HTTPException(status_code=404, detail=str(err)) from err

    def stored(approval: SignedApproval) -> dict[str, Any]:
        try:
            submit_approval(store, approval, clock())
        except ApprovalError as err:
            logger.warning("request %s: approval rejected: %s",
                           approval.body["request"], err)
            raise HTTPException(status_code=409, detail=str(err)) from err
        return approval.to_json()

    @router.get("")
    def list_requests(status: str = "pending") -> list[dict[str, Any]]:
        if status not in (*STATUSES, "all"):
            raise HTTPException(
                status_code=422,
                detail=f"status must be one of {', '.join((*STATUSES, 'all'))}, "
                       f"got {status!r}",
            )
        requests = store.requests(None if status == "all" else status)
        return [store.view(r.id) for r in requests]

    @router.get("/{request_id}")
    def show_request(request_id: str) -> dict[str, Any]:
        existing(request_id)
        return store.view(request_id)

    @router.post("/{request_id}")
    def post_signed(request_id: str,
                    signed: dict[str, Any] = Body(...)) -> dict[str, Any]:
        existing(request_id)
        try:
            approval = SignedApproval.from_json(signed)
        except ApprovalError as err:
            logger.warning("request %s: invalid signed approval: %s", request_id,
                           err)
            raise HTTPException(status_code=422, detail=str(err)) from err
        if approval.body["request"] != request_id:
            raise HTTPException(
                status_code=422,
                detail=f"the approval is for request {approval.body['request']!r}, "
                       f"not {request_id!r}",
            )
        return stored(approval)

    def signed_here(request_id: str, verdict: str,
                    body: SignRequest | None) -> dict[str, Any]:
        request = existing(request_id)
        if signer is None:
            raise HTTPException(
                status_code=409,
                detail="this server holds no approver key; sign elsewhere and "
                       f"POST the signed approval to /approvals/{request_id}",
            )
        now = clock()
        expiry = None
        if body is not None and body.expiry_seconds is not None:
            expiry = expiry_after(now, body.expiry_seconds)
        try:
            approval = sign_approval(signer, request, verdict, now, expiry)
        except ApprovalError as err:
            raise HTTPException(status_code=409, detail=str(err)) from err
        return stored(approval)

    @router.post("/{request_id}/approve")
    def approve(request_id: str,
                body: SignRequest | None = Body(None)) -> dict[str, Any]:
        return signed_here(request_id, "approve", body)

    @router.post("/{request_id}/deny")
    def deny(request_id: str,
             body: SignRequest | None = Body(None)) -> dict[str, Any]:
        return signed_here(request_id, "deny", body)

    return router


def create_app(store: ApprovalStore, token: str, signer: Identity | None = None,
               clock: Callable[[], datetime] = utc_now,
               max_body_bytes: int = 1 << 20) -> FastAPI:
    """Return an application serving ``approvals_router`` alone.

    Request bodies over ``max_body_bytes`` get 413 before they are read.
    Errors have the gate's form, ``{"error": code, "detail": text}``.
    """
    # Imported here: enforcement.gate_http imports this module.
    from enforcement.gate_http import install_error_handlers, limit_request_bodies

    app = FastAPI(title="AgentGate approvals", docs_url=None, redoc_url=None,
                  openapi_url=None)
    app.include_router(approvals_router(store, token, signer, clock))
    install_error_handlers(app)
    limit_request_bodies(app, max_body_bytes)
    return app
