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
- ``LedgerUnavailable``: a log reached over the network did not respond,
  failed (HTTP 5xx), or sent a response that its API does not define.
- ``IdempotencyConflict``: an ``InvalidRequest`` for an idempotency key
  that was first used with other entry bytes; nothing was stored.
"""

__all__ = [
    "IdempotencyConflict",
    "InvalidEntry",
    "InvalidKey",
    "InvalidRequest",
    "KeyFileError",
    "LedgerError",
    "LedgerUnavailable",
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


class LedgerUnavailable(LedgerError):
    """A remote log could not be reached, failed, or sent a malformed response."""


class IdempotencyConflict(InvalidRequest):
    """An idempotency key was first used for other entry bytes.

    ``key`` is the idempotency key and ``first_index`` the leaf index of the
    first entry that used it; either is None where the raiser did not learn
    it (a remote log's response names neither).
    """

    def __init__(
        self, message: str, key: str | None = None, first_index: int | None = None
    ) -> None:
        super().__init__(message)
        self.key = key
        self.first_index = first_index
