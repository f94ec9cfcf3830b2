"""Delegation certificates, chains and revocations, checked as an auditor does.

The formats and rules are those of ``specs/delegation.md``:

- a certificate is ``{"certificate": body, "signature": base64}``; the
  issuer signs ``agentgate-delegation-v1\\n`` followed by ``JCS(body)``; its
  hash is ``SHA-256(JCS(signed object))`` in lowercase hex;
- a revocation record is signed by its revoker over
  ``agentgate-revocation-v1\\n`` followed by the JCS of the record without
  its ``signature``.

``verify_chain`` checks chain rules 1 to 3 and 5 to 7, which do not depend
on time. ``check_window`` (rule 4) takes the decision's time, and
``find_revocation`` (rule 8) the revocations sealed before the decision.
"""

import hashlib
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime

from verifier._encoding import decode_base64, shorten
from verifier._time import parse_time
from verifier.errors import ChainInvalid, MalformedInput
from verifier.jcs import canonicalize
from verifier.note import VerifierKey, parse_verifier_key
from verifier.scope import Capability, parse_scope, scope_within

CERTIFICATE_CONTEXT = b"agentgate-delegation-v1\n"
REVOCATION_CONTEXT = b"agentgate-revocation-v1\n"
CERTIFICATE_TYPE = "agentgate.delegation"
MAX_REASON_LENGTH = 1024
# A chain has at most 16 links, so at most 15 may follow any one of them.
MAX_DEPTH = 15

_BODY_FIELDS = frozenset(
    {
        "type",
        "version",
        "issuer",
        "subject",
        "scope",
        "purpose",
        "not_before",
        "not_after",
        "max_depth",
        "parent",
        "nonce",
    }
)
_REVOCATION_FIELDS = frozenset(
    {
        "type",
        "version",
        "id",
        "time",
        "certificate",
        "revoker",
        "reason",
        "signature",
    }
)
_HEX64 = re.compile(r"[0-9a-f]{64}")
_HEX32 = re.compile(r"[0-9a-f]{32}")


@dataclass(frozen=True)
class Certificate:
    """A parsed certificate whose signature is not yet checked."""

    hash: str
    body: dict
    signature: bytes
    issuer: VerifierKey
    subject: VerifierKey
    scope: tuple[Capability, ...]
    not_before: datetime
    not_after: datetime
    max_depth: int
    parent: str | None

    def signature_valid(self) -> bool:
        """Return whether the issuer's key signed the body with the context prefix."""
        return self.issuer.verify(
            CERTIFICATE_CONTEXT + canonicalize(self.body), self.signature
        )


@dataclass(frozen=True)
class VerifiedChain:
    """A chain that passed the rules that do not depend on time."""

    certificates: tuple[Certificate, ...]
    hashes: tuple[str, ...]
    root: str
    agent: str
    not_before: datetime
    not_after: datetime

    @property
    def issuers(self) -> tuple[str, ...]:
        return tuple(c.issuer.text for c in self.certificates)


@dataclass(frozen=True)
class Revocation:
    """A revocation record whose signature verified."""

    index: int
    record_id: str
    certificate: str
    revoker: str


def key_id_text(key: VerifierKey) -> str:
    """Return the ``name+hex8`` form that records use for agents."""
    return f"{key.name}+{key.key_id.hex()}"


def certificate_hash(signed: object) -> str:
    """Return ``SHA-256(JCS(signed object))`` in lowercase hex."""
    return hashlib.sha256(canonicalize(signed)).hexdigest()


def parse_certificate(signed: object) -> Certificate:
    """Parse a signed certificate strictly.

    Raises ``ChainInvalid`` with rule ``certificate.format`` for any defect.
    """
    try:
        return _parse_certificate(signed)
    except MalformedInput as err:
        raise ChainInvalid("certificate.format", f"certificate: {err}") from err


def _parse_certificate(signed: object) -> Certificate:
    if not isinstance(signed, dict) or set(signed) != {"certificate", "signature"}:
        raise MalformedInput(
            "expected an object with exactly 'certificate' and 'signature', got "
            f"{sorted(signed) if isinstance(signed, dict) else shorten(signed)}"
        )
    body = signed["certificate"]
    if not isinstance(body, dict) or set(body) != _BODY_FIELDS:
        found = sorted(body) if isinstance(body, dict) else shorten(body)
        raise MalformedInput(
            f"expected the members {sorted(_BODY_FIELDS)}, got {found}"
        )
    if (
        body["type"] != CERTIFICATE_TYPE
        or body["version"] != 1
        or isinstance(body["version"], bool)
    ):
        raise MalformedInput(
            f"expected type {CERTIFICATE_TYPE!r} version 1, got {body['type']!r} "
            f"version {body['version']!r}"
        )
    if not isinstance(signed["signature"], str):
        raise MalformedInput("signature must be a base64 string")
    signature = decode_base64(signed["signature"], "signature")
    if not isinstance(body["purpose"], str):
        raise MalformedInput("purpose must be a string")
    depth = body["max_depth"]
    if (
        not isinstance(depth, int)
        or isinstance(depth, bool)
        or not 0 <= depth <= MAX_DEPTH
    ):
        raise MalformedInput(
            f"max_depth must be an integer from 0 to {MAX_DEPTH}, got {shorten(depth)}"
        )
    parent = body["parent"]
    if parent is not None and not (
        isinstance(parent, str) and _HEX64.fullmatch(parent)
    ):
        raise MalformedInput(
            f"parent must be null or 64 hex digits, got {shorten(parent)}"
        )
    if not isinstance(body["nonce"], str) or not _HEX32.fullmatch(body["nonce"]):
        raise MalformedInput("nonce must be 32 lowercase hex digits")
    not_before = parse_time(body["not_before"], "not_before")
    not_after = parse_time(body["not_after"], "not_after")
    if not_after <= not_before:
        raise MalformedInput(
            f"not_after {body['not_after']} is not after not_before "
            f"{body['not_before']}"
        )
    return Certificate(
        hash=certificate_hash(signed),
        body=body,
        signature=signature,
        issuer=_key(body["issuer"], "issuer"),
        subject=_key(body["subject"], "subject"),
        scope=parse_scope(body["scope"]),
        not_before=not_before,
        not_after=not_after,
        max_depth=depth,
        parent=parent,
    )


def verify_chain(
    chain: Sequence[Certificate], anchors: Iterable[str] | None = None
) -> VerifiedChain:
    """Check chain rules 1 to 3 and 5 to 7 and return the chain's facts.

    ``anchors`` are the trust anchors' verifier keys; None skips the anchor
    part of rule 1, for an auditor who was not given the gate's anchors and
    compares the root with the decision instead. Raises ``ChainInvalid``
    with the rule of the first failure.
    """
    if not chain:
        raise ChainInvalid("chain.empty", "the delegation chain is empty")
    hashes = tuple(certificate.hash for certificate in chain)

    # Rule 7: no certificate twice, no subject twice or equal to the root issuer.
    if len(set(hashes)) != len(hashes):
        raise ChainInvalid(
            "chain.duplicate", "a certificate appears twice in the chain"
        )
    root = chain[0]

    # Rule 1: the root is issued by a trust anchor and has no parent.
    if anchors is not None and root.issuer.text not in set(anchors):
        raise ChainInvalid(
            "chain.anchor",
            f"root issuer {key_id_text(root.issuer)} is not a trust anchor",
        )
    if root.parent is not None:
        raise ChainInvalid("chain.link", "the root certificate's parent must be null")

    seen = {root.issuer.public_key}
    for position, certificate in enumerate(chain):
        # Rule 2: signed by its issuer.
        if not certificate.signature_valid():
            raise ChainInvalid(
                "chain.signature",
                f"link {position} ({certificate.hash}): the signature does not "
                f"verify under issuer {key_id_text(certificate.issuer)}",
            )
        # Rule 5: at most max_depth links below.
        below = len(chain) - 1 - position
        if below > certificate.max_depth:
            raise ChainInvalid(
                "chain.depth",
                f"link {position} allows {certificate.max_depth} further links, "
                f"but {below} follow",
            )
        if certificate.subject.public_key in seen:
            raise ChainInvalid(
                "chain.loop",
                f"link {position}: subject {key_id_text(certificate.subject)} "
                "appears earlier in the chain",
            )
        seen.add(certificate.subject.public_key)
        if position == 0:
            continue

        # Rule 3: links name their parent.
        parent = chain[position - 1]
        if certificate.issuer.text != parent.subject.text:
            raise ChainInvalid(
                "chain.link",
                f"link {position}: issuer {key_id_text(certificate.issuer)} is not "
                f"the subject {key_id_text(parent.subject)} of link {position - 1}",
            )
        if certificate.parent != parent.hash:
            raise ChainInvalid(
                "chain.link",
                f"link {position}: parent {certificate.parent} is not the hash "
                f"{parent.hash} of link {position - 1}",
            )
        # Rule 4, the part that does not depend on time: windows nest.
        if (
            certificate.not_before < parent.not_before
            or certificate.not_after > parent.not_after
        ):
            raise ChainInvalid(
                "chain.window",
                f"link {position} is valid {certificate.body['not_before']} to "
                f"{certificate.body['not_after']}, outside link {position - 1}'s "
                f"{parent.body['not_before']} to {parent.body['not_after']}",
            )
        # Rule 6: the scope only narrows.
        problem = scope_within(certificate.scope, parent.scope)
        if problem is not None:
            raise ChainInvalid("chain.scope", f"link {position}: {problem}")

    last = chain[-1]
    return VerifiedChain(
        certificates=tuple(chain),
        hashes=hashes,
        root=root.issuer.text,
        agent=key_id_text(last.subject),
        not_before=last.not_before,
        not_after=last.not_after,
    )


def check_window(chain: VerifiedChain, now: datetime) -> None:
    """Raise ``ChainInvalid`` (chain.expired) unless ``now`` lies in the last window."""
    if not chain.not_before <= now <= chain.not_after:
        raise ChainInvalid(
            "chain.expired",
            f"the chain is valid from {chain.not_before.isoformat()} to "
            f"{chain.not_after.isoformat()}, not at {now.isoformat()}",
        )


def find_revocation(
    chain: VerifiedChain,
    revocations: Mapping[str, list[Revocation]],
    anchors: Iterable[str],
) -> tuple[int, Revocation] | None:
    """Return the first link revoked by a revoker with authority over it (rule 8).

    Who may revoke link ``i``: a trust anchor, or the issuer of any link at or
    above ``i``.
    """
    allowed = set(anchors)
    for position, certificate in enumerate(chain.certificates):
        allowed.add(certificate.issuer.text)
        for revocation in revocations.get(certificate.hash, ()):
            if revocation.revoker in allowed:
                return position, revocation
    return None


def parse_revocation(record: object, index: int) -> Revocation:
    """Parse a revocation record and verify its signature.

    Raises ``MalformedInput`` for a record that breaks its format and
    ``ChainInvalid`` (revocation.signature) for a signature that fails.
    """
    if not isinstance(record, dict) or set(record) != _REVOCATION_FIELDS:
        found = sorted(record) if isinstance(record, dict) else shorten(record)
        raise MalformedInput(
            "revocation: expected the members "
            f"{sorted(_REVOCATION_FIELDS)}, got {found}"
        )
    certificate = record["certificate"]
    if not isinstance(certificate, str) or not _HEX64.fullmatch(certificate):
        raise MalformedInput(
            f"revocation: certificate must be 64 lowercase hex digits, got "
            f"{shorten(certificate)}"
        )
    reason = record["reason"]
    if not isinstance(reason, str) or len(reason) > MAX_REASON_LENGTH:
        raise MalformedInput(
            f"revocation: reason must be a string of at most {MAX_REASON_LENGTH} "
            "characters"
        )
    revoker = _key(record["revoker"], "revoker")
    if not isinstance(record["signature"], str):
        raise MalformedInput("revocation: signature must be a base64 string")
    signature = decode_base64(record["signature"], "revocation signature")
    body = {name: value for name, value in record.items() if name != "signature"}
    if not revoker.verify(REVOCATION_CONTEXT + canonicalize(body), signature):
        raise ChainInvalid(
            "revocation.signature",
            f"revocation of {certificate}: the signature does not verify under "
            f"revoker {key_id_text(revoker)}",
        )
    return Revocation(index, record["id"], certificate, revoker.text)


def _key(text: object, label: str) -> VerifierKey:
    if not isinstance(text, str):
        raise MalformedInput(f"{label}: expected a verifier key string")
    try:
        return parse_verifier_key(text)
    except MalformedInput as err:
        raise MalformedInput(f"{label}: {err}") from err
