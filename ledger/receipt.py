"""Receipts: C2SP tlog-proof@v1 files that carry their entry.

A receipt proves that one entry is in the log. Its text is::

    c2sp.org/tlog-proof@v1
    extra <standard base64 of the entry bytes>
    index <0-based leaf index>
    <audit path hash 1, base64>
    ...
    <blank line>
    <the signed checkpoint note, verbatim>

The entry travels in the ``extra`` line, so the file alone can be checked
offline against the log's verifier key: the entry is authenticated because
its leaf hash is proved to be in a signed tree.
"""

from __future__ import annotations

import base64
from collections.abc import Sequence
from dataclasses import dataclass

from .tree import leaf_hash

__all__ = ["RECEIPT_HEADER", "Receipt", "format_receipt"]

RECEIPT_HEADER = "c2sp.org/tlog-proof@v1"


def format_receipt(
    entry: bytes, index: int, proof: Sequence[bytes], checkpoint: str
) -> str:
    """Return the tlog-proof@v1 text for ``entry`` at ``index``.

    ``proof`` is the RFC 9162 audit path in the tree of the checkpoint's
    size and ``checkpoint`` the signed note, copied verbatim.
    """
    lines = [
        RECEIPT_HEADER,
        "extra " + base64.b64encode(entry).decode("ascii"),
        f"index {index}",
    ]
    lines.extend(base64.b64encode(digest).decode("ascii") for digest in proof)
    return "\n".join(lines) + "\n\n" + checkpoint


@dataclass(frozen=True)
class Receipt:
    """Proof that ``entry`` is leaf ``index`` of the tree in ``checkpoint``."""

    index: int
    entry: bytes
    leaf_hash: bytes
    proof: list[bytes]
    checkpoint: str
    text: str

    @classmethod
    def build(
        cls, entry: bytes, index: int, proof: Sequence[bytes], checkpoint: str
    ) -> Receipt:
        """Assemble a receipt and its text from its parts."""
        return cls(
            index=index,
            entry=entry,
            leaf_hash=leaf_hash(entry),
            proof=list(proof),
            checkpoint=checkpoint,
            text=format_receipt(entry, index, proof, checkpoint),
        )
