"""The FastAPI app of the log server: routes and error responses.

``create_app(LogService(settings))`` returns the ASGI app that ``agentgate
serve`` runs on uvicorn. specs/http-api.md describes the endpoints, and
specs/openapi.json is ``openapi_document()`` written out. Appends are
answered by ``ledger.server.append`` ahead of the router; the OpenAPI
extras are in ``ledger.server.openapi``.
"""

import base64
import gzip
import inspect
import json
import logging
from collections.abc import Sequence
from contextlib import asynccontextmanager
from typing import Annotated, Any

from fastapi import FastAPI, Query, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import Response
from prometheus_client import CONTENT_TYPE_LATEST
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException

from ..errors import InvalidRequest, LedgerError
from ..proofs import format_proof_text
from ..tiles import TilePath, format_tile_path, parse_tile_path
from .append import APPEND_PATH, AppendEndpoint, append_response
from .metrics import RequestMetrics
from .openapi import (
    CHECKPOINT_EXAMPLE,
    ConsistencyProofResponse,
    EntriesResponse,
    HealthResponse,
    InclusionProofResponse,
    error_responses,
    install_openapi,
    octets_response,
    text_response,
)
from .parsing import (
    DECIMAL_PATTERN,
    HEX_HASH_PATTERN,
    accepts_gzip,
    describe_invalid_parameters,
    prefers_text,
)
from .service import (
    HttpError,
    LogService,
    ServerSettings,
    error_response,
    http_error_for,
)

__all__ = ["API_VERSION", "MAX_ENTRIES_PER_REQUEST", "create_app", "openapi_document"]

logger = logging.getLogger(__name__)

API_VERSION = "1.0"
MAX_ENTRIES_PER_REQUEST = 1000
# Full tiles never change. A partial tile never changes either, but the log
# may stop serving it once the full tile exists, so clients re-fetch it soon.
FULL_TILE_CACHE = "public, max-age=31536000, immutable"
PARTIAL_TILE_CACHE = "public, max-age=60"
CHECKPOINT_CACHE = "no-cache"


# -- error responses ------------------------------------------------------------


_STATUS_CODES = {404: "not_found", 405: "method_not_allowed"}


def _install_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(HTTPException)
    async def http_error(request: Request, err: HTTPException) -> Response:
        if isinstance(err, HttpError):
            return error_response(err.status_code, err.code, err.detail, err.headers)
        # Errors raised by the router itself: no route, or not this method.
        code = _STATUS_CODES.get(err.status_code, "http_error")
        detail = str(err.detail)
        if err.status_code == 404:
            detail = f"no endpoint at {request.url.path}; see specs/http-api.md"
        elif err.status_code == 405:
            detail = f"method {request.method} is not allowed on {request.url.path}"
        return error_response(err.status_code, code, detail, err.headers)

    @app.exception_handler(LedgerError)
    async def ledger_error(request: Request, err: LedgerError) -> Response:
        converted = http_error_for(err)
        return error_response(
            converted.status_code, converted.code, converted.detail
        )

    @app.exception_handler(RequestValidationError)
    async def invalid_parameter(
        request: Request, err: RequestValidationError
    ) -> Response:
        detail = describe_invalid_parameters(err.errors())
        return error_response(400, "invalid_parameter", detail)

    @app.exception_handler(Exception)
    async def unexpected(request: Request, err: Exception) -> Response:
        logger.exception("unexpected error on %s %s", request.method, request.url.path)
        return error_response(
            500, "internal_error", "the server failed; its log has the details"
        )


def _json(document: dict) -> Response:
    return Response(json.dumps(document).encode(), media_type="application/json")


def _b64(digests: Sequence[bytes]) -> list[str]:
    return [base64.b64encode(digest).decode("ascii") for digest in digests]


_SIZE_DOC = "Tree size of a checkpoint, from 1 to the log size."
_INDEX_DOC = "0-based leaf index, below size."
_LEAF_HASH_DOC = "Leaf hash SHA-256(0x00 || entry) as 64 hex digits."
_DecimalQuery = Annotated[
    str, Query(pattern=DECIMAL_PATTERN, description="Decimal integer, no sign.")
]


# -- the app ------------------------------------------------------------------


def create_app(service: LogService) -> FastAPI:
    """Return the FastAPI app over ``service``; it starts and stops the service."""

    @asynccontextmanager
    async def lifespan(app: FastAPI):
        await run_in_threadpool(service.start)
        try:
            yield
        finally:
            await run_in_threadpool(service.stop)

    app = FastAPI(
        title="AgentGate ledger",
        version=API_VERSION,
        summary="Append-only RFC 9162 transparency log of AgentGate records.",
        lifespan=lifespan,
        docs_url=None,
        redoc_url=None,
        openapi_url="/v1/openapi.json",
        generate_unique_id_function=lambda route: route.name,
        **_without_telemetry(),
    )
    _install_error_handlers(app)
    install_openapi(app)

    async def append_entry(request: Request) -> Response:
        """Append one entry and return its receipt (a tlog-proof@v1 file)."""
        return await append_response(service, request)

    # A plain Starlette route, because as a FastAPI route it served about 1,800
    # appends/s against 2,300 (wrk, 64 connections, 2 cores). Its OpenAPI
    # operation is therefore written by hand in APPEND_OPERATION. POST
    # requests reach it only without AppendEndpoint, which answers them first.
    app.add_route(APPEND_PATH, append_entry, methods=["POST"], name="append_entry")
    # The middleware added last runs first: RequestMetrics sees every request.
    app.add_middleware(AppendEndpoint, service=service, endpoint=append_entry)
    templates: dict[Any, str] = {}
    app.add_middleware(RequestMetrics, metrics=service.metrics, templates=templates)

    checkpoint_response = {
        200: text_response("The latest checkpoint, a signed note.", CHECKPOINT_EXAMPLE)
    }

    @app.get(
        "/v1/checkpoint",
        response_class=Response,
        responses={**checkpoint_response, **error_responses(503)},
        tags=["read"],
    )
    def read_checkpoint() -> Response:
        """Return the latest signed checkpoint (C2SP tlog-checkpoint note)."""
        # The ledger reads appends by other writer processes first.
        note = service.open_ledger().latest_checkpoint()
        return Response(
            note, media_type="text/plain", headers={"Cache-Control": CHECKPOINT_CACHE}
        )

    @app.get(
        "/v1/proofs/inclusion",
        response_model=InclusionProofResponse,
        responses=error_responses(400, 404, 503),
        tags=["read"],
    )
    def inclusion_proof(
        size: Annotated[str, Query(pattern=DECIMAL_PATTERN, description=_SIZE_DOC)],
        index: Annotated[
            str | None, Query(pattern=DECIMAL_PATTERN, description=_INDEX_DOC)
        ] = None,
        leaf_hash: Annotated[
            str | None, Query(pattern=HEX_HASH_PATTERN, description=_LEAF_HASH_DOC)
        ] = None,
    ) -> Response:
        """Return the audit path of a leaf, named by index or by leaf hash."""
        if (index is None) == (leaf_hash is None):
            supplied = "both" if index is not None else "neither"
            raise HttpError(
                400,
                "invalid_parameter",
                f"give exactly one of the query parameters 'index' and 'leaf_hash', "
                f"got {supplied}",
            )
        ledger = service.open_ledger()
        tree_size = int(size)
        if leaf_hash is None:
            leaf_index = int(index)
        else:
            if tree_size > ledger.size:
                ledger.refresh()
            current = ledger.size
            if not 1 <= tree_size <= current:
                raise HttpError(
                    400,
                    "out_of_range",
                    f"query parameter 'size' is {tree_size}; expected 1 to {current}, "
                    "the non-empty sizes of this log",
                )
            found = service.tiles.find_leaf(bytes.fromhex(leaf_hash), tree_size)
            if found is None:
                raise HttpError(
                    404,
                    "leaf_not_found",
                    f"no leaf with hash {leaf_hash.lower()} in the tree of size "
                    f"{tree_size}",
                )
            leaf_index = found
        try:
            proof = ledger.inclusion_proof(leaf_index, tree_size)
        except InvalidRequest as err:
            raise HttpError(400, "out_of_range", str(err)) from err
        return _json({"index": leaf_index, "size": tree_size, "proof": _b64(proof)})

    @app.get(
        "/v1/proofs/consistency",
        response_model=ConsistencyProofResponse,
        responses={
            200: text_response(
                "With Accept: text/plain, one base64 hash per line.", ""
            ),
            **error_responses(400, 503),
        },
        tags=["read"],
    )
    def consistency_proof(
        request: Request, first: _DecimalQuery, second: _DecimalQuery
    ) -> Response:
        """Return the consistency proof between two tree sizes."""
        ledger = service.open_ledger()
        first_size, second_size = int(first), int(second)
        try:
            proof = ledger.consistency_proof(first_size, second_size)
        except InvalidRequest as err:
            raise HttpError(400, "out_of_range", str(err)) from err
        if prefers_text(request):
            return Response(format_proof_text(proof), media_type="text/plain")
        return _json({"first": first_size, "second": second_size, "proof": _b64(proof)})

    @app.get(
        "/v1/entries",
        response_model=EntriesResponse,
        responses=error_responses(400, 503),
        tags=["read"],
    )
    def read_entries(start: _DecimalQuery, end: _DecimalQuery) -> Response:
        """Return the entries of leaves [start, end), at most 1000 at a time."""
        ledger = service.open_ledger()
        first, stop = int(start), int(end)
        if stop - first > MAX_ENTRIES_PER_REQUEST:
            raise HttpError(
                400,
                "out_of_range",
                f"entries [{first}, {stop}) are {stop - first} entries; at most "
                f"{MAX_ENTRIES_PER_REQUEST} per request, so request [{first}, "
                f"{first + MAX_ENTRIES_PER_REQUEST}) and continue from there",
            )
        try:
            found = ledger.entries(first, stop)
        except InvalidRequest as err:
            raise HttpError(400, "out_of_range", str(err)) from err
        return _json({"start": first, "end": stop, "entries": _b64(found)})

    @app.get(
        "/checkpoint",
        response_class=Response,
        responses={**checkpoint_response, **error_responses(503)},
        tags=["tiles"],
    )
    def tiles_checkpoint() -> Response:
        """Return the latest checkpoint at the tlog-tiles path."""
        return read_checkpoint()

    @app.get(
        "/tile/entries/{index_path:path}",
        response_class=Response,
        responses={
            200: octets_response(
                "Entries, each prefixed by its big-endian uint16 length."
            ),
            **error_responses(400, 404, 501, 503),
        },
        tags=["tiles"],
    )
    def entry_bundle(request: Request, index_path: str) -> Response:
        """Return an entry bundle: N in 3-digit elements, optional .p/W."""
        tile = _parse_tile("entries", index_path)
        try:
            data, size = service.read_at_size(
                lambda size: service.tiles.entry_bundle(tile.index, tile.width, size)
            )
        except InvalidRequest as err:
            raise HttpError(501, "entry_too_large_for_bundle", str(err)) from err
        if data is None:
            raise _tile_not_found(tile, size)
        headers = {"Cache-Control": _tile_cache(tile), "Vary": "Accept-Encoding"}
        if accepts_gzip(request):
            data = gzip.compress(data, compresslevel=6)
            headers["Content-Encoding"] = "gzip"
        return Response(data, media_type="application/octet-stream", headers=headers)

    @app.get(
        "/tile/{level}/{index_path:path}",
        response_class=Response,
        responses={
            200: octets_response("Concatenated 32-byte Merkle tree hashes."),
            **error_responses(400, 404, 503),
        },
        tags=["tiles"],
    )
    def hash_tile(level: str, index_path: str) -> Response:
        """Return a hash tile: level 0 to 63, N in 3-digit elements, optional .p/W."""
        tile = _parse_tile(level, index_path)
        data, size = service.read_at_size(
            lambda size: service.tiles.tile(tile.level, tile.index, tile.width, size)
        )
        if data is None:
            raise _tile_not_found(tile, size)
        return Response(
            data,
            media_type="application/octet-stream",
            headers={"Cache-Control": _tile_cache(tile)},
        )

    @app.get(
        "/healthz",
        response_model=HealthResponse,
        responses=error_responses(503),
        tags=["operations"],
    )
    def healthz() -> Response:
        """Report whether the database responds to a query."""
        service.open_ledger()
        head = service.tiles.store.read_head()
        if head is None:
            raise HttpError(503, "unavailable", "the database contains no log")
        return _json({"status": "ok", "origin": head.origin, "size": head.size})

    @app.get(
        "/metrics",
        response_class=Response,
        responses={200: text_response("Prometheus text exposition format.", "")},
        tags=["operations"],
    )
    async def metrics() -> Response:
        """Return the server's metrics in the Prometheus text format."""
        return Response(service.metrics.exposition(), media_type=CONTENT_TYPE_LATEST)

    for route in app.routes:
        if hasattr(route, "endpoint"):
            templates[route.endpoint] = route.path
    return app


def _without_telemetry() -> dict[str, Any]:
    """Return FastAPI options that turn off its built-in OpenTelemetry, if any.

    FastAPI versions that have it look for tracer and meter providers on
    every request. That cost about 4% of an append in a profile of
    ``agentgate serve``, and the server exports Prometheus metrics instead.
    """
    if "telemetry" in inspect.signature(FastAPI.__init__).parameters:
        return {"telemetry": {"tracing": False, "metrics": False, "logs": False}}
    return {}


def _parse_tile(level: str, index_path: str) -> TilePath:
    try:
        return parse_tile_path(level, index_path)
    except InvalidRequest as err:
        raise HttpError(400, "invalid_tile_path", str(err)) from err


def _tile_not_found(tile: TilePath, size: int) -> HttpError:
    return HttpError(
        404,
        "tile_not_found",
        f"{format_tile_path(tile)} is not in the tree of size {size}; request only "
        "tiles that a checkpoint covers",
    )


def _tile_cache(tile: TilePath) -> str:
    return PARTIAL_TILE_CACHE if tile.is_partial else FULL_TILE_CACHE


def openapi_document() -> dict[str, Any]:
    """Return the OpenAPI document of the app, without opening any database."""
    placeholder = ServerSettings(
        database="unused", signers=(), write_token="placeholder-token-not-served"
    )
    return create_app(LogService(placeholder)).openapi()

