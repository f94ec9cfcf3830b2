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


class Unavailable(VerificationError):
    """A log, witness or file that could not be read: nothing was verified.

    Raised for a network failure, a timeout, an HTTP error status or a missing
    file. It is a ``VerificationError`` so that a caller failing closed on
    one class also fails closed here. ``status`` is the HTTP status, when
    there was one.
    """

    status: int | None = None


class QuorumNotMet(VerificationError):
    """A checkpoint cosigned by fewer distinct witness keys than the policy needs."""


class ChainInvalid(VerificationError):
    """A delegation certificate or chain that breaks a chain rule.

    ``rule`` names the rule as decisions cite it (``chain.signature``,
    ``chain.scope``, ...), so an auditor can compare it with the verdict.
    """

    def __init__(self, rule: str, message: str) -> None:
        super().__init__(message)
        self.rule = rule
