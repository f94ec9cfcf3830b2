"""Exceptions raised by the verifier.

Every failure is a ``VerificationError``, so a caller that must fail closed
catches one class and treats the input as untrusted. The subclasses name what
went wrong. Each message gives the expected and the seen value and, where the
fix is not obvious, what to do.
"""


class VerificationError(Exception):
    """Input that did not verify; nothing in it may be trusted."""


class MalformedInput(VerificationError):
    """Input that does not follow its format.

    Raised for bad data from outside (a receipt, note, checkpoint, proof or
    JSON entry that breaks its specification) and for arguments of the wrong
    type or range, so that bad input never escapes as a ``TypeError`` or
    ``ValueError``.
    """


class BadSignature(VerificationError):
    """A signature by a known key that does not verify over the note text."""


class UnknownKey(BadSignature):
    """A note that no known key signed, so it is not authenticated at all."""


class ProofMismatch(VerificationError):
    """A well-formed proof that leads to a root other than the expected one."""


class OriginMismatch(VerificationError):
    """A checkpoint from a log other than the one the caller expects."""
