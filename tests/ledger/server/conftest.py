"""A real log server on 127.0.0.1: uvicorn in a thread over a log in a tmp dir."""

import socket
import threading
import time

import httpx
import pytest
import uvicorn

from ledger import Signer
from ledger.server import LogService, ServerSettings, create_app

from ..conftest import ORIGIN, TEST_SEED, record  # noqa: F401 - re-exported

TOKEN = "test-write-token-0123456789abcdef"
START_TIMEOUT = 10.0


class RunningServer:
    """A uvicorn server in a background thread, on a socket bound beforehand."""

    def __init__(self, service: LogService) -> None:
        self.service = service
        self.socket = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.socket.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.socket.bind(("127.0.0.1", 0))
        self.port = self.socket.getsockname()[1]
        self.base_url = f"http://127.0.0.1:{self.port}"
        config = uvicorn.Config(
            create_app(service), log_level="warning", access_log=False, lifespan="on"
        )
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(
            target=self.server.run, kwargs={"sockets": [self.socket]}, daemon=True
        )

    def start(self) -> "RunningServer":
        self.thread.start()
        deadline = time.monotonic() + START_TIMEOUT
        while not self.server.started:
            if not self.thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError(f"log server on {self.base_url} did not start")
            time.sleep(0.01)
        return self

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(START_TIMEOUT)
        self.socket.close()

    @property
    def ledger(self):
        return self.service.ledger


def start(directory, **options):
    """Start a server over the log ``directory/log.db`` with the test key."""
    directory.mkdir(parents=True, exist_ok=True)
    options.setdefault("database", str(directory / "log.db"))
    options.setdefault("signers", [Signer.from_seed(ORIGIN, TEST_SEED)])
    options.setdefault("write_token", TOKEN)
    return RunningServer(LogService(ServerSettings(**options))).start()


@pytest.fixture
def start_server(tmp_path):
    """Return a function that starts a server; every server is stopped afterwards."""
    running = []

    def _start(**options):
        server = start(tmp_path / str(len(running)), **options)
        running.append(server)
        return server

    yield _start
    for server in running:
        server.stop()


@pytest.fixture
def server(start_server):
    return start_server()


@pytest.fixture
def http(server):
    """An httpx client of the running server, without credentials."""
    with httpx.Client(base_url=server.base_url, timeout=10.0) as client:
        yield client


def auth(token=TOKEN):
    """Return the headers of an authorized JSON append."""
    return {"Authorization": f"Bearer {token}", "Content-Type": "application/json"}
