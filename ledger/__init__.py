"""AgentGate ledger: an append-only RFC 9162 Merkle transparency log.

Every entry is the RFC 8785 (JCS) bytes of one JSON record. Appending
returns a ``Receipt``, a C2SP tlog-proof@v1 file that carries the entry and
proves it is in a tree whose checkpoint the log signed with Ed25519.

    signer = keys.load_signer("log.key")
    with open_ledger("log.db", signer) as ledger:
        receipt = ledger.append(record_bytes)

A ``Sequencer`` batches concurrent appends into one transaction and one
signature; ``HttpLedgerClient`` reaches a log served by ``agentgate serve``
(it needs the ``server`` extra, so it is imported on first use).
"""

from typing import TYPE_CHECKING, Any

from . import errors, keys
from .client import LedgerClient, LocalLedgerClient
from .errors import (
    IdempotencyConflict,
    InvalidEntry,
    InvalidKey,
    InvalidRequest,
    KeyFileError,
    LedgerError,
    LedgerUnavailable,
    StorageError,
)
from .keys import (
    LogKey,
    Signer,
    VerifierKey,
    load_signer,
    load_verifier_key,
    write_key_pair,
)
from .log import Ledger, key_record, open_ledger
from .migrations import upgrade_database
from .note import Checkpoint, sign_checkpoint, sign_note
from .proofs import format_proof_text
from .receipt import Receipt
from .sequencer import Sequencer, SequencerClosed
from .tree import StoredTree

if TYPE_CHECKING:
    from .http_client import HttpLedgerClient

__all__ = [
    "Checkpoint",
    "HttpLedgerClient",
    "IdempotencyConflict",
    "InvalidEntry",
    "InvalidKey",
    "InvalidRequest",
    "KeyFileError",
    "Ledger",
    "LedgerClient",
    "LedgerError",
    "LedgerUnavailable",
    "LocalLedgerClient",
    "LogKey",
    "Receipt",
    "Sequencer",
    "SequencerClosed",
    "Signer",
    "StorageError",
    "StoredTree",
    "VerifierKey",
    "errors",
    "format_proof_text",
    "key_record",
    "keys",
    "load_signer",
    "load_verifier_key",
    "open_ledger",
    "sign_checkpoint",
    "sign_note",
    "upgrade_database",
    "write_key_pair",
]


def __getattr__(name: str) -> Any:
    # httpx comes with the server extra; importing the client lazily keeps
    # ``import ledger`` working without it.
    if name == "HttpLedgerClient":
        from .http_client import HttpLedgerClient

        return HttpLedgerClient
    raise AttributeError(f"module 'ledger' has no attribute {name!r}")
