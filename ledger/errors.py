"""Exceptions raised by the ledger.

``LedgerError`` is the root. Each subclass names who is at fault:

- ``InvalidEntry``: the caller sent an entry that is not a canonical JSON
  object; nothing was stored.
- ``InvalidRequest``: the caller asked for something the log cannot do
  (an index past the end, a consistency proof from size 0, an append on a
  log opened without a key).
- ``InvalidKey`` and ``KeyFileError``: a key or key file given by the
  operator is malformed, missing or readable by others.
- ``StorageError``: the database failed or contains state that contradicts
  itself; the operator has to look at it.
"""

__all__ = [
    "InvalidEntry",
    "InvalidKey",
    "InvalidRequest",
    "KeyFileError",
    "LedgerError",
    "StorageError",
]


class LedgerError(Exception):
    """Base class of every error the ledger raises on purpose."""


class InvalidEntry(LedgerError):
    """An entry is not the RFC 8785 (JCS) bytes of a JSON object."""


class InvalidRequest(LedgerError):
    """A request names sizes, indexes or options that the log cannot serve."""


class InvalidKey(LedgerError):
    """A key name, signer key or verifier key is malformed."""


class KeyFileError(LedgerError):
    """A key file is missing, already exists, or is readable by others."""


class StorageError(LedgerError):
    """The database failed, or its contents contradict each other."""
