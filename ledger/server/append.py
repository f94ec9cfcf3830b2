"""``POST /v1/entries``: appends, served ahead of FastAPI's routing.

Appends are the server's hot path. In a py-spy profile of ``agentgate
serve`` under wrk (64 connections on 2 cores, 650-byte entries), FastAPI's
exception middleware, router and request wrapper took about 40% of the
event loop's time per append. ``AppendEndpoint`` is an ASGI middleware that
serves ``POST /v1/entries`` itself and passes every other request on.

It runs the same checks in the same order as the route would, and its
errors are the JSON documents of every other route (specs/http-api.md). The
route stays registered with FastAPI: the OpenAPI document lists it, other
methods on the path get 405 from the router, and it serves appends wherever
the middleware is not installed. ``RequestMetrics`` counts the requests the
middleware serves under the route's path.
"""

import json
import logging
from collections.abc import Callable
from typing import Any

from fastapi import Request
from fastapi.responses import Response
from starlette.requests import ClientDisconnect

from ..errors import LedgerError
from .parsing import check_content_type, check_idempotency_key, read_body
from .service import HttpError, LogService, error_response, http_error_for

__all__ = ["APPEND_PATH", "AppendEndpoint", "append_response"]

logger = logging.getLogger(__name__)

APPEND_PATH = "/v1/entries"


async def append_response(service: LogService, request: Request) -> Response:
    """Append the request's entry and return the receipt response.

    Raises ``HttpError`` for a request that the API rejects and
    ``LedgerError`` when the log rejects or fails the append.
    """
    headers = request.headers
    service.check_token(headers.get("authorization"))
    check_content_type(headers.get("content-type"))
    idempotency_key = headers.get("idempotency-key")
    check_idempotency_key(idempotency_key)
    entry = await read_body(request, service.settings.max_body_bytes)
    receipt = await service.append(entry, idempotency_key)
    document = {
        "index": receipt.index,
        "leaf_hash": receipt.leaf_hash.hex(),
        "receipt": receipt.text,
    }
    return Response(json.dumps(document).encode(), media_type="application/json")


class AppendEndpoint:
    """ASGI middleware that serves ``POST /v1/entries`` without the router.

    ``endpoint`` is the function of the registered route. The middleware
    puts it in the request scope, as the router would, so that
    ``RequestMetrics`` labels the request with the route's path.
    """

    def __init__(
        self, app: Any, service: LogService, endpoint: Callable[..., Any]
    ) -> None:
        self.app = app
        self.service = service
        self.endpoint = endpoint

    async def __call__(self, scope: dict, receive: Any, send: Any) -> None:
        if (
            scope["type"] != "http"
            or scope["method"] != "POST"
            or scope["path"] != APPEND_PATH
        ):
            await self.app(scope, receive, send)
            return
        scope["endpoint"] = self.endpoint
        try:
            response = await append_response(self.service, Request(scope, receive))
        except ClientDisconnect:
            # The client closed the connection before its body arrived, so
            # nothing was appended and no response can be delivered.
            logger.debug("client disconnected while sending an entry")
            return
        except HttpError as err:
            response = error_response(
                err.status_code, err.code, err.detail, err.headers
            )
        except LedgerError as err:
            converted = http_error_for(err)
            response = error_response(
                converted.status_code, converted.code, converted.detail
            )
        except Exception:  # noqa: BLE001 - answered as 500, like other routes
            logger.exception("unexpected error on POST %s", APPEND_PATH)
            response = error_response(
                500, "internal_error", "the server failed; its log has the details"
            )
        await response(scope, receive, send)
