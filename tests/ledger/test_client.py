"""LocalLedgerClient: the gate's view of an in-process log."""

from ledger import LedgerClient, LocalLedgerClient

from .conftest import ORIGIN, record


def test_local_client_is_a_ledger_client(open_log):
    client = LocalLedgerClient(open_log())
    assert isinstance(client, LedgerClient)
    assert client.origin == ORIGIN


def test_local_client_passes_calls_through(open_log):
    ledger = open_log()
    client = LocalLedgerClient(ledger)
    receipt = client.append(record(1), key="k")
    assert receipt.index == 1
    assert client.append(record(1), key="k").index == 1
    assert client.latest_checkpoint() == ledger.latest_checkpoint()
    assert client.entries(1, 2) == [record(1)]
    assert client.inclusion_proof(1, 2) == receipt.proof
    assert client.consistency_proof(1, 2) == ledger.consistency_proof(1, 2)
    assert client.ledger is ledger
