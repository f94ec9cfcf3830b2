"""A synchronous client of an ASGI app, over httpx's ASGI transport.

Hypothesis tests are synchronous, so the client keeps one event loop and
runs each request on it. Exceptions that escape the app's own handlers are
raised in the test, not turned into a 500.
"""

from __future__ import annotations

import asyncio
from typing import Any

import httpx


class AsgiClient:
    """Sends requests to ``app`` in this process; no socket is opened."""

    def __init__(self, app: Any, headers: dict[str, str] | None = None) -> None:
        self.loop = asyncio.new_event_loop()
        self.client = httpx.AsyncClient(
            transport=httpx.ASGITransport(app=app),
            base_url="http://agentgate.test",
            headers=headers,
        )

    def request(self, method: str, url: str, **options: Any) -> httpx.Response:
        return self.loop.run_until_complete(
            self.client.request(method, url, **options)
        )

    def close(self) -> None:
        self.loop.run_until_complete(self.client.aclose())
        self.loop.close()


def error_document(response: httpx.Response) -> dict:
    """Return the JSON error body, checking it is ``{"error", "detail"}``."""
    document = response.json()
    assert set(document) == {"error", "detail"}, document
    assert isinstance(document["error"], str)
    assert isinstance(document["detail"], str)
    return document
