"""64 concurrent appends over HTTP: every receipt verifies, and they share batches."""

import asyncio

import httpx
from prometheus_client.parser import text_string_to_metric_families

import verifier

from .conftest import ORIGIN, auth, record

CLIENTS = 64


def metric_values(text):
    """Return ``{sample name: value}`` for the unlabelled samples of a scrape."""
    return {
        sample.name: sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
        if not sample.labels
    }


async def post_all(base_url, entries):
    limits = httpx.Limits(max_connections=CLIENTS)
    async with httpx.AsyncClient(
        base_url=base_url, limits=limits, timeout=30
    ) as client:
        responses = await asyncio.gather(
            *(client.post("/v1/entries", content=entry, headers=auth())
              for entry in entries)
        )
    return responses


def test_concurrent_appends_share_batches(server, signer):
    key = str(signer.verifier_key)
    entries = [record(n) for n in range(1, CLIENTS + 1)]

    responses = asyncio.run(post_all(server.base_url, entries))

    assert [response.status_code for response in responses] == [200] * CLIENTS
    verified = [
        verifier.verify_receipt(response.json()["receipt"], [key], origin=ORIGIN)
        for response in responses
    ]
    assert [v.entry for v in verified] == entries
    assert sorted(v.index for v in verified) == list(range(1, CLIENTS + 1))

    # Every receipt's tree is a prefix of the final tree.
    final = verifier.verify_checkpoint(server.ledger.latest_checkpoint(), [key])
    assert final.size == CLIENTS + 1
    for checkpoint in {v.checkpoint for v in verified}:
        proof = server.ledger.consistency_proof(checkpoint.size, final.size)
        verifier.verify_consistency(
            checkpoint.size, final.size, proof, checkpoint.root, final.root
        )

    values = metric_values(httpx.get(server.base_url + "/metrics").text)
    assert values["agentgate_ledger_appends_total"] == CLIENTS
    assert values["agentgate_ledger_batch_size_sum"] == CLIENTS
    batches = values["agentgate_ledger_batches_total"]
    assert 1 <= batches < CLIENTS, f"{batches} batches for {CLIENTS} appends"
    assert values["agentgate_ledger_batch_size_count"] == batches
    assert len({v.checkpoint.size for v in verified}) == batches
