"""The gate's own view of the log, so that a forked or rolled-back log is caught.

A receipt proves that a record is in the tree of its checkpoint. It does not
prove that this tree extends the trees of earlier receipts: a log could show
the gate one history and auditors another. The gate therefore keeps the
largest checkpoint it has verified and requires every new checkpoint to be
consistent with it, checking the log's consistency proof with the independent
verifier. A smaller checkpoint (a receipt that raced a later one) must be
consistent with the largest; two checkpoints of one size must have one root.
"""

from __future__ import annotations

import hmac
import threading
from collections import OrderedDict
from typing import Any

import verifier
from enforcement.errors import SealError

_REMEMBERED_SIZES = 4096


class LogView:
    """The largest verified checkpoint and the roots of recent smaller ones."""

    def __init__(self, ledger: Any) -> None:
        self._ledger = ledger
        self._lock = threading.Lock()
        self._size = 0
        self._root: bytes | None = None
        self._roots: OrderedDict[int, bytes] = OrderedDict()

    @property
    def size(self) -> int:
        return self._size

    def accept(self, checkpoint: verifier.Checkpoint) -> None:
        """Check ``checkpoint`` against the view and extend it; raise ``SealError``."""
        with self._lock:
            size, root = checkpoint.size, checkpoint.root
            known = self._roots.get(size)
            if known is not None:
                if not hmac.compare_digest(known, root):
                    raise SealError(
                        f"the log signed two checkpoints of size {size} with "
                        "different roots: it has forked"
                    )
                return
            if self._root is None:
                self._remember(size, root)
                self._size, self._root = size, root
                return
            if size > self._size:
                self._verify(self._size, size, self._root, root)
                self._size, self._root = size, root
            else:
                self._verify(size, self._size, root, self._root)
            self._remember(size, root)

    def _verify(self, first: int, second: int, first_root: bytes,
                second_root: bytes) -> None:
        try:
            proof = self._ledger.consistency_proof(first, second)
        except Exception as err:  # noqa: BLE001 - no proof means no trust
            raise SealError(
                f"the log gave no consistency proof for sizes {first} -> {second}: "
                f"{err}"
            ) from err
        try:
            verifier.verify_consistency(first, second, proof, first_root, second_root)
        except verifier.VerificationError as err:
            raise SealError(
                f"checkpoint of size {second} is not consistent with the gate's "
                f"checkpoint of size {first}: {err}"
            ) from err

    def _remember(self, size: int, root: bytes) -> None:
        self._roots[size] = root
        while len(self._roots) > _REMEMBERED_SIZES:
            self._roots.popitem(last=False)
