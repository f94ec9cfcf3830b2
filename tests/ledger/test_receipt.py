"""Receipt text: the C2SP tlog-proof@v1 layout with the entry in ``extra``."""

import base64
import hashlib

from ledger import Receipt
from ledger.receipt import format_receipt

CHECKPOINT = (
    "agentgate.test/log\n5\nAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=\n"
    "\n\u2014 agentgate.test/log c2ln\n"
)


def test_receipt_text_layout():
    proof = [bytes([1]) * 32, bytes([2]) * 32]
    text = format_receipt(b'{"a":1}', 3, proof, CHECKPOINT)
    assert text == (
        "c2sp.org/tlog-proof@v1\n"
        "extra eyJhIjoxfQ==\n"
        "index 3\n"
        + base64.b64encode(proof[0]).decode()
        + "\n"
        + base64.b64encode(proof[1]).decode()
        + "\n"
        "\n" + CHECKPOINT
    )


def test_receipt_without_proof_lines():
    text = format_receipt(b"{}", 0, [], CHECKPOINT)
    assert text == "c2sp.org/tlog-proof@v1\nextra e30=\nindex 0\n\n" + CHECKPOINT


def test_receipt_build_fields():
    receipt = Receipt.build(b"{}", 0, [], CHECKPOINT)
    assert receipt.index == 0
    assert receipt.entry == b"{}"
    assert receipt.leaf_hash == hashlib.sha256(b"\x00{}").digest()
    assert receipt.proof == []
    assert receipt.checkpoint == CHECKPOINT
    assert receipt.text == format_receipt(b"{}", 0, [], CHECKPOINT)
