"""The gate on a log reached over HTTP: allows run, an unreachable log stops all."""

import pytest

import verifier
from enforcement.errors import SealError
from enforcement.gate import Gate
from enforcement.policy import load_policy
from enforcement.vault import ArgumentVault
from ledger.errors import LedgerUnavailable
from ledger.http_client import HttpLedgerClient
from tests.enforcement.conftest import (
    LOG_KEY,
    LOG_SIGNER,
    T0,
    FrozenClock,
    issue,
    seeded_identity,
)

from .conftest import TOKEN, start


class Counter:
    def __init__(self):
        self.runs = 0

    def __call__(self):
        self.runs += 1
        return "ran"


@pytest.fixture
def remote_gate(tmp_path):
    """A gate whose ledger client is HttpLedgerClient on a live server."""
    server = start(tmp_path / "server", signers=[LOG_SIGNER])
    client = HttpLedgerClient(server.base_url, TOKEN, timeout=2.0)
    principal = seeded_identity("principal.test")
    agent = seeded_identity("agent.test")
    certificate = issue(principal, agent, max_depth=2)
    vault = ArgumentVault(str(tmp_path / "vault.db"))
    gate = Gate(
        client,
        LOG_KEY,
        load_policy(),
        [principal.verifier_key],
        vault=vault,
        clock=FrozenClock(T0),
        default_chain=[certificate],
    )
    gate.register_delegation(certificate)
    yield gate, server, client
    client.close()
    vault.close()
    server.stop()


def test_allow_runs_tool_over_http(remote_gate):
    gate, server, client = remote_gate
    tool = Counter()

    with gate.session("check my balance") as session:
        result = session.call("get_balance", {}, tool)

    assert result == "ran"
    assert tool.runs == 1
    decision = session.decisions[0]
    assert decision.verdict == "allow"
    verified = verifier.verify_receipt(decision.receipt.text, [LOG_KEY])
    assert client.entries(verified.index, verified.index + 1) == [verified.entry]
    # The decision and its outcome are both in the served log.
    kinds = [b'"type":"decision"' in entry or b'"type":"outcome"' in entry
             for entry in client.entries(0, server.ledger.size)]
    assert kinds.count(True) == 2


def test_stopped_server_stops_tool(remote_gate):
    gate, server, _ = remote_gate
    server.stop()
    tool = Counter()

    with gate.session("check my balance") as session:
        with pytest.raises(SealError, match="the ledger did not seal decision record "
                           r"d-[0-9a-f]{32}: .*is the log server running") as caught:
            session.call("get_balance", {}, tool)

    assert tool.runs == 0
    assert isinstance(caught.value.__cause__, LedgerUnavailable)


def test_closed_log_stops_tool(remote_gate):
    """A server that returns 503 (its log closed) stops the tool too."""
    gate, server, _ = remote_gate
    server.service.stop()
    tool = Counter()

    with gate.session("check my balance") as session:
        with pytest.raises(SealError, match=r"HTTP 503 unavailable"):
            session.call("get_balance", {}, tool)

    assert tool.runs == 0
