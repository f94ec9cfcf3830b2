"""The ledger over HTTP: a FastAPI app that appends entries and serves proofs.

``create_app(LogService(settings))`` returns the ASGI app that ``agentgate
serve`` runs on uvicorn; specs/http-api.md describes its endpoints:

- ``POST /v1/entries`` appends one entry (bearer token required). Requests go
  through a ``Sequencer``, so concurrent appends share one transaction and
  one checkpoint signature.
- ``GET /v1/checkpoint``, ``/v1/proofs/inclusion``, ``/v1/proofs/consistency``
  and ``/v1/entries`` read the log.
- ``GET /checkpoint``, ``/tile/<L>/<N>[.p/<W>]`` and ``/tile/entries/<N>...``
  are the C2SP tlog-tiles read paths (see ``ledger.tiles``).
- ``GET /healthz`` checks the database and ``GET /metrics`` is Prometheus text.

Reads are public. Every error is JSON ``{"error": CODE, "detail": TEXT}``.
Modules: ``service`` (settings, write token, the open log), ``metrics``,
``parsing`` (headers, body and parameters) and ``app`` (routes, OpenAPI).
"""

from .app import API_VERSION, MAX_ENTRIES_PER_REQUEST, create_app, openapi_document
from .metrics import ServerMetrics
from .service import (
    DEFAULT_MAX_BODY_BYTES,
    TOKEN_ENV_VAR,
    HttpError,
    LogService,
    ServerSettings,
    check_write_token,
    load_write_token,
)

__all__ = [
    "API_VERSION",
    "DEFAULT_MAX_BODY_BYTES",
    "MAX_ENTRIES_PER_REQUEST",
    "TOKEN_ENV_VAR",
    "HttpError",
    "LogService",
    "ServerMetrics",
    "ServerSettings",
    "check_write_token",
    "create_app",
    "load_write_token",
    "openapi_document",
]
