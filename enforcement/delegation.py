"""Signed delegation certificates and chain verification.

A chain runs from a trust anchor (a principal configured in the gate) to the
agent making the call. Every link is checked: its signature, its issuer equal
to the parent's subject, its parent hash, nested validity windows, the depth
its ancestors allow, and a scope within its parent's. On every call no link
may be revoked (``enforcement.revocation``) and the time must lie in every
window. The format is in ``specs/delegation.md``.
"""

from __future__ import annotations

import base64
import binascii
import copy
import hashlib
import logging
import secrets
import threading
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from functools import cached_property
from typing import Any

from enforcement import jcs
from enforcement.canonical import decode_base64
from enforcement.errors import ConfigError, DelegationError, InvalidRequest
from enforcement.identity import Identity, PublicIdentity, parse_verifier_key
from enforcement.revocation import RevocationSet
from enforcement.scope import Scope
from enforcement.timeutil import format_seconds, parse_time

logger = logging.getLogger(__name__)

CERTIFICATE_TYPE = "agentgate.delegation"
SIGNATURE_CONTEXT = b"agentgate-delegation-v1\n"
MAX_CHAIN_LENGTH = 16
_FIELDS = {
    "type", "version", "issuer", "subject", "scope", "purpose",
    "not_before", "not_after", "max_depth", "parent", "nonce",
}


@dataclass(frozen=True)
class Certificate:
    """A signed delegation certificate, kept in its JSON form.

    The body is a private deep copy of the one passed in, so that a caller
    changing its own dict later cannot change a certificate whose hash is
    already cached. Treat ``body`` as read-only.
    """

    body: Mapping[str, Any]
    signature: bytes

    def __post_init__(self) -> None:
        object.__setattr__(self, "body", copy.deepcopy(self.body))

    @cached_property
    def hash(self) -> str:
        """SHA-256 of the JCS of the signed object, lowercase hex (cached)."""
        return hashlib.sha256(jcs.canonical(self.to_json())).hexdigest()

    @property
    def issuer(self) -> str:
        return self.body["issuer"]

    @property
    def subject(self) -> str:
        return self.body["subject"]

    def to_json(self) -> dict[str, Any]:
        return {
            "certificate": dict(self.body),
            "signature": base64.b64encode(self.signature).decode(),
        }

    @classmethod
    def from_json(cls, raw: Any) -> Certificate:
        """Build a certificate from its JSON object, checking every field."""
        if not isinstance(raw, Mapping) or set(raw) != {"certificate", "signature"}:
            raise DelegationError(
                "a certificate must be an object with exactly 'certificate' and "
                f"'signature', got {sorted(raw) if isinstance(raw, Mapping) else raw!r}",
                rule="certificate.format",
            )
        body = raw["certificate"]
        _check_body(body)
        try:
            signature = decode_base64(raw["signature"])
        except (binascii.Error, ValueError, TypeError) as err:
            raise DelegationError(
                f"certificate signature is not base64: {err}",
                rule="certificate.format",
            ) from err
        return cls(dict(body), signature)

    @classmethod
    def from_bytes(cls, data: bytes) -> Certificate:
        try:
            return cls.from_json(jcs.parse_strict(data))
        except InvalidRequest as err:
            raise DelegationError(str(err), rule="certificate.format") from err


def _check_body(body: Any) -> None:
    if not isinstance(body, Mapping):
        raise DelegationError("certificate body must be an object",
                              rule="certificate.format")
    missing = _FIELDS - set(body)
    unknown = set(body) - _FIELDS
    if missing or unknown:
        raise DelegationError(
            f"certificate fields: missing {sorted(missing)}, unknown "
            f"{sorted(unknown)}; a field this gate does not understand is refused",
            rule="certificate.format",
        )
    # JSON true is not the number 1, although Python compares them equal.
    if (body["type"] != CERTIFICATE_TYPE or isinstance(body["version"], bool)
            or body["version"] != 1):
        raise DelegationError(
            f"certificate type/version must be {CERTIFICATE_TYPE!r}/1, got "
            f"{body['type']!r}/{body['version']!r}",
            rule="certificate.format",
        )
    for name in ("issuer", "subject"):
        try:
            parse_verifier_key(body[name])
        except ConfigError as err:
            raise DelegationError(f"certificate {name}: {err}",
                                  rule="certificate.format") from err
    if not isinstance(body["purpose"], str):
        raise DelegationError("certificate purpose must be a string",
                              rule="certificate.format")
    depth = body["max_depth"]
    if not isinstance(depth, int) or isinstance(depth, bool) or not 0 <= depth <= 15:
        raise DelegationError(
            f"max_depth must be an integer from 0 to 15, got {depth!r}",
            rule="certificate.format",
        )
    parent = body["parent"]
    if parent is not None and not _is_hex(parent, 64):
        raise DelegationError(f"parent must be null or 64 hex digits, got {parent!r}",
                              rule="certificate.format")
    if not _is_hex(body["nonce"], 32):
        raise DelegationError("nonce must be 32 lowercase hex digits",
                              rule="certificate.format")
    try:
        start = parse_time(body["not_before"], "not_before")
        end = parse_time(body["not_after"], "not_after")
    except InvalidRequest as err:
        raise DelegationError(str(err), rule="certificate.format") from err
    if end <= start:
        raise DelegationError(
            f"not_after {body['not_after']} is not after not_before "
            f"{body['not_before']}",
            rule="certificate.format",
        )
    Scope.parse(body["scope"])


def _is_hex(value: Any, length: int) -> bool:
    return (
        isinstance(value, str)
        and len(value) == length
        and all(c in "0123456789abcdef" for c in value)
    )


def issue_certificate(
    issuer: Identity,
    subject: str,
    scope: Mapping[str, Any] | Scope,
    purpose: str,
    not_before: datetime,
    not_after: datetime,
    max_depth: int = 0,
    parent: Certificate | None = None,
    nonce: str | None = None,
) -> Certificate:
    """Sign a certificate granting ``scope`` to the ``subject`` verifier key."""
    if isinstance(scope, Scope):
        scope = scope.to_json()
    body = {
        "type": CERTIFICATE_TYPE,
        "version": 1,
        "issuer": issuer.verifier_key,
        "subject": subject,
        "scope": dict(scope),
        "purpose": purpose,
        "not_before": format_seconds(not_before),
        "not_after": format_seconds(not_after),
        "max_depth": max_depth,
        "parent": parent.hash if parent is not None else None,
        "nonce": nonce or secrets.token_hex(16),
    }
    _check_body(body)
    signature = issuer.sign(SIGNATURE_CONTEXT + jcs.canonical(body))
    return Certificate(body, signature)


@dataclass(frozen=True)
class VerifiedChain:
    """A chain whose signatures, links and scopes have been checked."""

    hashes: tuple[str, ...]
    root: str
    agent: PublicIdentity
    scope: Scope
    not_before: datetime
    not_after: datetime
    issuers: tuple[str, ...] = ()

    @cached_property
    def scope_json(self) -> dict[str, Any]:
        """The effective scope in its JSON form, computed once; treat it as
        read-only, because every decision under this chain shares it."""
        return self.scope.to_json()

    def check_time(self, now: datetime) -> None:
        if not self.not_before <= now < self.not_after:
            raise DelegationError(
                f"delegation is valid from {format_seconds(self.not_before)} to "
                f"{format_seconds(self.not_after)}; now is {format_seconds(now)}",
                rule="chain.expired",
            )


def _chain_hashes(chain: Sequence[Certificate]) -> tuple[str, ...]:
    hashes = []
    for position, certificate in enumerate(chain):
        if not isinstance(certificate, Certificate):
            raise DelegationError(
                f"link {position} is a {type(certificate).__name__}, expected a "
                "Certificate; build one with Certificate.from_json",
                rule="certificate.format",
            )
        try:
            hashes.append(certificate.hash)
        except (InvalidRequest, TypeError, ValueError) as err:
            raise DelegationError(
                f"link {position} cannot be canonicalized: {err}",
                rule="certificate.format",
            ) from err
    return tuple(hashes)


class ChainVerifier:
    """Verifies delegation chains against trust anchors, caching by chain hash.

    The cache holds only what does not depend on time or on revocations
    (signatures, links, scopes). Validity windows and the revocation set are
    checked again on every call. The verifier also remembers, for each
    certificate it verified, the issuers from the root down to it, so that a
    revocation can be checked against them.
    """

    def __init__(self, trust_anchors: Iterable[str], cache_size: int = 1024,
                 revocations: RevocationSet | None = None) -> None:
        self.trust_anchors = frozenset(parse_verifier_key(k).verifier_key
                                       for k in trust_anchors)
        if not self.trust_anchors:
            raise ConfigError("at least one trust anchor (a principal key) is needed")
        self.revocations = revocations if revocations is not None else RevocationSet()
        self._cache: dict[tuple[str, ...], VerifiedChain] = {}
        self._cache_size = cache_size
        self._lineages: dict[str, tuple[str, ...]] = {}
        self._lock = threading.Lock()

    def verify(self, chain: Sequence[Certificate], now: datetime) -> VerifiedChain:
        """Return the verified chain, or raise ``DelegationError``.

        On top of ``verify_links``, no link may be revoked and ``now`` must lie
        in the chain's validity window.
        """
        verified = self.verify_links(chain)
        self.revocations.check_chain(verified.hashes, verified.issuers,
                                     self.trust_anchors)
        verified.check_time(now)
        return verified

    def verify_links(self, chain: Sequence[Certificate]) -> VerifiedChain:
        """Check everything that does not change with time, using the cache."""
        hashes = _chain_hashes(chain)
        with self._lock:
            verified = self._cache.get(hashes)
        if verified is None:
            verified = self._verify_uncached(chain, hashes)
            with self._lock:
                if len(self._cache) >= self._cache_size:
                    self._cache.pop(next(iter(self._cache)))
                self._cache[hashes] = verified
                for position, certificate_hash in enumerate(hashes):
                    self._lineages.pop(certificate_hash, None)
                    self._lineages[certificate_hash] = verified.issuers[:position + 1]
                while len(self._lineages) > self._cache_size * MAX_CHAIN_LENGTH:
                    self._lineages.pop(next(iter(self._lineages)))
        return verified

    def check_revoker(self, certificate_hash: str, revoker: str,
                      chain: Sequence[Certificate] | None = None) -> None:
        """Raise ``DelegationError`` unless ``revoker`` may revoke the certificate.

        A trust anchor may revoke any certificate. Anyone else must be the
        certificate's issuer or an issuer above it in its chain, which this
        verifier knows from a chain it verified or from ``chain``.
        """
        revoker = parse_verifier_key(revoker).verifier_key
        if revoker in self.trust_anchors:
            return
        if chain is not None:
            verified = self.verify_links(chain)
            if certificate_hash not in verified.hashes:
                raise DelegationError(
                    f"certificate {certificate_hash} is not in the chain given "
                    "with its revocation",
                    rule="revocation.unknown",
                )
        with self._lock:
            lineage = self._lineages.get(certificate_hash)
        if lineage is None:
            raise DelegationError(
                f"certificate {certificate_hash} is unknown to this gate; pass the "
                "chain that contains it, or revoke it with a trust anchor",
                rule="revocation.unknown",
            )
        if revoker not in lineage:
            raise DelegationError(
                f"{parse_verifier_key(revoker).key_id} may not revoke certificate "
                f"{certificate_hash}: only its issuer, an issuer above it in its "
                "chain, or a trust anchor may",
                rule="revocation.authority",
            )

    def _verify_uncached(
        self, chain: Sequence[Certificate], hashes: tuple[str, ...]
    ) -> VerifiedChain:
        # 1. shape: non-empty, bounded, no certificate twice
        if not chain:
            raise DelegationError("the delegation chain is empty", rule="chain.empty")
        if len(chain) > MAX_CHAIN_LENGTH:
            raise DelegationError(
                f"chain has {len(chain)} links; at most {MAX_CHAIN_LENGTH} allowed",
                rule="chain.depth",
            )
        for certificate in chain:
            _check_body(certificate.body)
        if len(set(hashes)) != len(hashes):
            raise DelegationError("a certificate appears twice in the chain",
                                  rule="chain.duplicate")
        # 2. the root is issued by a trust anchor and has no parent
        root = chain[0]
        if root.issuer not in self.trust_anchors:
            raise DelegationError(
                f"root issuer {parse_verifier_key(root.issuer).key_id} is not a "
                "configured trust anchor",
                rule="chain.anchor",
            )
        if root.body["parent"] is not None:
            raise DelegationError("the root certificate must have parent null",
                                  rule="chain.link")
        scope = Scope.parse(root.body["scope"]).bind_budgets(hashes[0])
        start = parse_time(root.body["not_before"], "not_before")
        end = parse_time(root.body["not_after"], "not_after")
        subjects_seen = {root.issuer}
        for position, certificate in enumerate(chain):
            # 3. signature by the issuer over the context and the canonical body
            issuer = parse_verifier_key(certificate.issuer)
            message = SIGNATURE_CONTEXT + jcs.canonical(dict(certificate.body))
            if not issuer.verify(certificate.signature, message):
                raise DelegationError(
                    f"link {position}: signature does not verify under issuer "
                    f"{issuer.key_id}",
                    rule="chain.signature",
                )
            # 4. depth: no link is followed by more links than it allows
            remaining = len(chain) - 1 - position
            if remaining > certificate.body["max_depth"]:
                raise DelegationError(
                    f"link {position} allows {certificate.body['max_depth']} further "
                    f"links but {remaining} follow",
                    rule="chain.depth",
                )
            if certificate.subject in subjects_seen:
                raise DelegationError(
                    f"link {position}: subject "
                    f"{parse_verifier_key(certificate.subject).key_id} already "
                    "appears earlier in the chain (a loop)",
                    rule="chain.loop",
                )
            subjects_seen.add(certificate.subject)
            if position == 0:
                continue
            parent = chain[position - 1]
            # 5. links: issuer is the parent's subject, parent hash matches
            if certificate.issuer != parent.subject:
                raise DelegationError(
                    f"link {position}: issuer is not the subject of link "
                    f"{position - 1}",
                    rule="chain.link",
                )
            if certificate.body["parent"] != hashes[position - 1]:
                raise DelegationError(
                    f"link {position}: parent hash does not match link {position - 1}",
                    rule="chain.link",
                )
            # 6. validity windows nest as absolute instants
            child_start = parse_time(certificate.body["not_before"], "not_before")
            child_end = parse_time(certificate.body["not_after"], "not_after")
            if child_start < start or child_end > end:
                raise DelegationError(
                    f"link {position} is valid {certificate.body['not_before']} to "
                    f"{certificate.body['not_after']}, outside its parent's window",
                    rule="chain.window",
                )
            start, end = child_start, child_end
            # 7. scope only narrows; missing constraints are inherited
            scope = scope.attenuate(
                Scope.parse(certificate.body["scope"]).bind_budgets(hashes[position]))
        logger.debug("verified delegation chain of %d links", len(chain))
        return VerifiedChain(
            hashes=hashes,
            root=root.issuer,
            agent=parse_verifier_key(chain[-1].subject),
            scope=scope,
            not_before=start,
            not_after=end,
            issuers=tuple(parse_verifier_key(c.issuer).verifier_key for c in chain),
        )
