"""Shared helpers for the scorer tests: scoring contexts, fixed scorers, a
gate on a real log, and a stub OpenAI-compatible server on 127.0.0.1."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

from enforcement.alignment import AlignmentResult, Purpose, ScoringContext
from enforcement.evaluation.embedded import (
    Deployment,
    SteppingClock,
    create_deployment,
)
from enforcement.profiles import derive_profile
from enforcement.provenance import Provenance

START = datetime(2026, 12, 4, 9, 0, tzinfo=UTC)


def make_context(purpose: str | Purpose, tool: str, arguments: dict[str, Any],
                 provenance: Provenance | None = None, *,
                 description: str = "") -> ScoringContext:
    """Return a scoring context with a derived profile and default thresholds."""
    purpose = Purpose(purpose) if isinstance(purpose, str) else purpose
    profile = derive_profile(tool, arguments, description)
    if provenance is None:
        provenance = Provenance(purpose.text, purpose.principal_values)
    return ScoringContext(purpose, profile, arguments, provenance)


class FixedScorer:
    """A scorer that returns a fixed score, or raises a given exception."""

    version = "1"

    def __init__(self, name: str, result: float | Exception | Any,
                 reasons: tuple[str, ...] = ()) -> None:
        self.name = name
        self.result = result
        self.reasons = reasons
        self.calls = 0

    def score(self, context: ScoringContext) -> AlignmentResult:
        self.calls += 1
        if isinstance(self.result, Exception):
            raise self.result
        if not isinstance(self.result, (int, float)) or isinstance(self.result, bool):
            return self.result
        return AlignmentResult(self.name, self.version, self.result, "aligned",
                               self.reasons)


@pytest.fixture
def deploy(tmp_path) -> Iterator[Callable[..., Deployment]]:
    """Return a factory of embedded deployments with a given scorer."""
    opened: list[Deployment] = []

    def _deploy(scorer: Any) -> Deployment:
        deployment = create_deployment(
            tmp_path / f"run-{len(opened)}", scorer=scorer,
            clock=SteppingClock(START, 1.0),
        )
        opened.append(deployment)
        return deployment

    yield _deploy
    for deployment in opened:
        deployment.close()


class Counter:
    """A tool body that counts its runs."""

    def __init__(self, result: Any = "ok") -> None:
        self.runs = 0
        self.result = result

    def __call__(self) -> Any:
        self.runs += 1
        return self.result


# -- a stub chat completions server ---------------------------------------------


@dataclass
class CannedResponse:
    """One canned HTTP response: status, raw body, and a delay before sending."""

    status: int = 200
    body: bytes = b""
    delay: float = 0.0


def completion(content: Any, finish_reason: str | None = "stop") -> CannedResponse:
    """Return a chat completions response whose message content is ``content``.

    A string is sent as it is; anything else is sent as its JSON text.
    """
    text = content if isinstance(content, str) or content is None else json.dumps(
        content)
    choice: dict[str, Any] = {"index": 0,
                              "message": {"role": "assistant", "content": text}}
    if finish_reason is not None:
        choice["finish_reason"] = finish_reason
    body = {"id": "chatcmpl-test", "object": "chat.completion",
            "model": "judge-test", "choices": [choice]}
    return CannedResponse(200, json.dumps(body).encode())


@dataclass
class StubJudge:
    """A stub OpenAI-compatible server: records requests, sends queued responses.

    When the queue is empty it sends ``default``.
    """

    server: ThreadingHTTPServer
    responses: list[CannedResponse] = field(default_factory=list)
    default: CannedResponse = field(default_factory=lambda: completion(
        {"score": 0.9, "reasons": ["the call serves the purpose"]}))
    requests: list[dict[str, Any]] = field(default_factory=list)

    @property
    def base_url(self) -> str:
        host, port = self.server.server_address[:2]
        return f"http://{host}:{port}/v1"

    def next_response(self) -> CannedResponse:
        return self.responses.pop(0) if self.responses else self.default


def _handler(stub_ref: list[StubJudge]) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:  # noqa: N802 - the http.server hook name
            stub = stub_ref[0]
            length = int(self.headers.get("Content-Length", "0"))
            raw = self.rfile.read(length)
            stub.requests.append({
                "path": self.path,
                "headers": {k.lower(): v for k, v in self.headers.items()},
                "body": json.loads(raw),
            })
            response = stub.next_response()
            if response.delay:
                time.sleep(response.delay)
            try:
                self.send_response(response.status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(response.body)))
                self.end_headers()
                self.wfile.write(response.body)
            except (BrokenPipeError, ConnectionResetError):
                pass  # the client gave up first, as in the timeout test

        def log_message(self, format: str, *args: Any) -> None:
            pass

    return Handler


@pytest.fixture
def stub_judge() -> Iterator[StubJudge]:
    """Start a stub judge on 127.0.0.1 on a free port; stop it afterwards."""
    stub_ref: list[StubJudge] = []
    server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(stub_ref))
    server.daemon_threads = True
    stub = StubJudge(server)
    stub_ref.append(stub)
    # A short poll interval lets shutdown() return quickly after each test.
    thread = threading.Thread(target=server.serve_forever, args=(0.02,), daemon=True)
    thread.start()
    yield stub
    server.shutdown()
    server.server_close()
    thread.join(timeout=5)
