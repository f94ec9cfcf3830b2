"""AgentGate ledger: an append-only RFC 9162 Merkle transparency log.

Every entry is the RFC 8785 (JCS) bytes of one JSON record. Appending
returns a ``Receipt``, a C2SP tlog-proof@v1 file that carries the entry and
proves it is in a tree whose checkpoint the log signed with Ed25519.

    signer = keys.load_signer("log.key")
    with open_ledger("log.db", signer) as ledger:
        receipt = ledger.append(record_bytes)
"""

from . import errors, keys
from .client import LedgerClient, LocalLedgerClient
from .errors import (
    InvalidEntry,
    InvalidKey,
    InvalidRequest,
    KeyFileError,
    LedgerError,
    StorageError,
)
from .keys import Signer, VerifierKey, load_signer, load_verifier_key, write_key_pair
from .log import Ledger, key_record, open_ledger
from .note import Checkpoint, sign_checkpoint, sign_note
from .proofs import format_proof_text
from .receipt import Receipt
from .tree import StoredTree

__all__ = [
    "Checkpoint",
    "InvalidEntry",
    "InvalidKey",
    "InvalidRequest",
    "KeyFileError",
    "Ledger",
    "LedgerClient",
    "LedgerError",
    "LocalLedgerClient",
    "Receipt",
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
    "write_key_pair",
]
