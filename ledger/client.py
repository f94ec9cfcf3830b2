"""The interface the gate uses to reach a log, and its in-process implementation.

The gate depends only on ``LedgerClient``, so a remote log service can replace
``LocalLedgerClient`` later without touching the gate.
"""

from __future__ import annotations

from typing import Protocol, runtime_checkable

from .log import Ledger
from .receipt import Receipt

__all__ = ["LedgerClient", "LocalLedgerClient"]


@runtime_checkable
class LedgerClient(Protocol):
    """Operations a gate needs from a transparency log."""

    origin: str

    def append(self, entry: bytes, key: str | None = None) -> Receipt: ...

    def latest_checkpoint(self) -> str: ...  # signed note text

    def consistency_proof(self, first: int, second: int) -> list[bytes]: ...

    def inclusion_proof(self, index: int, size: int) -> list[bytes]: ...

    def entries(self, start: int, stop: int) -> list[bytes]: ...


class LocalLedgerClient:
    """A ``LedgerClient`` that calls a ``Ledger`` in the same process."""

    def __init__(self, ledger: Ledger) -> None:
        self._ledger = ledger
        self.origin = ledger.origin

    @property
    def ledger(self) -> Ledger:
        """The wrapped log."""
        return self._ledger

    def append(self, entry: bytes, key: str | None = None) -> Receipt:
        """Append one entry and return its receipt."""
        return self._ledger.append(entry, key)

    def latest_checkpoint(self) -> str:
        """Return the signed note of the latest checkpoint."""
        return self._ledger.latest_checkpoint()

    def consistency_proof(self, first: int, second: int) -> list[bytes]:
        """Return the RFC 9162 consistency proof from ``first`` to ``second``."""
        return self._ledger.consistency_proof(first, second)

    def inclusion_proof(self, index: int, size: int) -> list[bytes]:
        """Return the RFC 9162 audit path for ``index`` in the tree of ``size``."""
        return self._ledger.inclusion_proof(index, size)

    def entries(self, start: int, stop: int) -> list[bytes]:
        """Return the entries of leaves ``[start, stop)``."""
        return self._ledger.entries(start, stop)
