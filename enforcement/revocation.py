"""Revocation of delegation certificates.

A revocation is a record signed by the revoker and sealed in the log. A
revoked certificate fails chain verification with rule ``chain.revoked``, and
so does every certificate below it, because any chain through a descendant
contains the revoked link. A revocation counts only when its revoker is a
trust anchor, the certificate's issuer, or an issuer above it in the chain
being verified. The format is in ``specs/delegation.md`` and
``specs/records.md``.

The set of revocations lives in the gate's memory. ``read_revocations``
rebuilds it from the log at start, after checking the entries it reads
against a verified checkpoint.
"""

from __future__ import annotations

import base64
import binascii
import hmac
import logging
import threading
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any

import verifier
from enforcement import jcs
from enforcement.canonical import decode_base64
from enforcement.errors import ConfigError, DelegationError, InvalidRequest, SealError
from enforcement.identity import Identity, parse_verifier_key
from enforcement.records import new_id
from enforcement.timeutil import format_time, parse_time

logger = logging.getLogger(__name__)

RECORD_TYPE = "revocation"
SIGNATURE_CONTEXT = b"agentgate-revocation-v1\n"
MAX_REASON_LENGTH = 1024
_FIELDS = {"type", "version", "id", "time", "certificate", "revoker", "reason",
           "signature"}
_HEX = frozenset("0123456789abcdef")


def _check_hash(value: Any) -> str:
    if not (isinstance(value, str) and len(value) == 64 and set(value) <= _HEX):
        raise DelegationError(
            f"a certificate hash must be 64 lowercase hex digits, got {value!r}",
            rule="revocation.format",
        )
    return value


def _check_reason(value: Any) -> str:
    if not isinstance(value, str) or len(value) > MAX_REASON_LENGTH:
        raise DelegationError(
            f"a revocation reason must be a string of at most {MAX_REASON_LENGTH} "
            f"characters, got {type(value).__name__} of length "
            f"{len(value) if isinstance(value, str) else '-'}",
            rule="revocation.format",
        )
    return value


@dataclass(frozen=True)
class Revocation:
    """A signed statement that a certificate no longer grants anything."""

    record_id: str
    time: str
    certificate: str
    revoker: str
    reason: str
    signature: bytes

    def body(self) -> dict[str, Any]:
        """Return the record without its signature: the bytes signed are its JCS."""
        return {
            "type": RECORD_TYPE,
            "version": 1,
            "id": self.record_id,
            "time": self.time,
            "certificate": self.certificate,
            "revoker": self.revoker,
            "reason": self.reason,
        }

    def to_record(self) -> dict[str, Any]:
        record = self.body()
        record["signature"] = base64.b64encode(self.signature).decode()
        return record

    @classmethod
    def from_record(cls, record: Any) -> Revocation:
        """Parse a revocation record and verify the revoker's signature."""
        if not isinstance(record, Mapping) or set(record) != _FIELDS:
            found = sorted(record) if isinstance(record, Mapping) else record
            raise DelegationError(
                f"a revocation record has exactly the fields {sorted(_FIELDS)}, "
                f"got {found!r}",
                rule="revocation.format",
            )
        if record["type"] != RECORD_TYPE or isinstance(record["version"], bool) or (
                record["version"] != 1):
            raise DelegationError(
                f"expected type 'revocation' version 1, got {record['type']!r} "
                f"version {record['version']!r}",
                rule="revocation.format",
            )
        try:
            parse_time(record["time"], "revocation time")
            revoker = parse_verifier_key(record["revoker"])
            signature = decode_base64(record["signature"])
        except (InvalidRequest, ConfigError, binascii.Error, ValueError,
                TypeError) as err:
            raise DelegationError(f"revocation {record.get('id')!r}: {err}",
                                  rule="revocation.format") from err
        if not isinstance(record["id"], str) or not record["id"].startswith("r-"):
            raise DelegationError(
                f"revocation id must start with 'r-', got {record['id']!r}",
                rule="revocation.format",
            )
        revocation = cls(
            record_id=record["id"],
            time=record["time"],
            certificate=_check_hash(record["certificate"]),
            revoker=revoker.verifier_key,
            reason=_check_reason(record["reason"]),
            signature=signature,
        )
        message = SIGNATURE_CONTEXT + jcs.canonical(revocation.body())
        if not revoker.verify(signature, message):
            raise DelegationError(
                f"revocation {revocation.record_id}: signature does not verify under "
                f"{revoker.key_id}",
                rule="revocation.signature",
            )
        return revocation


def sign_revocation(certificate_hash: str, revoker: Identity, reason: str,
                    now: datetime) -> Revocation:
    """Sign a revocation of ``certificate_hash`` with the revoker's key."""
    if not isinstance(revoker, Identity):
        raise ConfigError(
            f"by= must be the revoker's Identity (a signing key), got "
            f"{type(revoker).__name__}"
        )
    unsigned = Revocation(
        record_id=new_id(RECORD_TYPE),
        time=format_time(now),
        certificate=_check_hash(certificate_hash),
        revoker=revoker.verifier_key,
        reason=_check_reason(reason),
        signature=b"",
    )
    signature = revoker.sign(SIGNATURE_CONTEXT + jcs.canonical(unsigned.body()))
    return replace(unsigned, signature=signature)


class RevocationSet:
    """Revocations by certificate hash, checked on every chain verification."""

    def __init__(self, revocations: Iterable[Revocation] = ()) -> None:
        self._by_hash: dict[str, tuple[Revocation, ...]] = {}
        self._lock = threading.Lock()
        for revocation in revocations:
            self.add(revocation)

    def add(self, revocation: Revocation) -> None:
        with self._lock:
            known = self._by_hash.get(revocation.certificate, ())
            if revocation not in known:
                self._by_hash[revocation.certificate] = known + (revocation,)

    def get(self, certificate_hash: str) -> tuple[Revocation, ...]:
        return self._by_hash.get(certificate_hash, ())

    def __contains__(self, certificate_hash: object) -> bool:
        return certificate_hash in self._by_hash

    def __len__(self) -> int:
        return len(self._by_hash)

    def check_chain(self, hashes: tuple[str, ...], issuers: tuple[str, ...],
                    trust_anchors: frozenset[str]) -> None:
        """Raise ``DelegationError`` (``chain.revoked``) for a revoked link.

        A revocation of link ``i`` counts when its revoker is a trust anchor
        or one of ``issuers[0..i]``. The check is one dictionary look-up per
        link, and none at all while nothing is revoked.
        """
        if not self._by_hash:
            return
        for position, certificate_hash in enumerate(hashes):
            for revocation in self._by_hash.get(certificate_hash, ()):
                revoker = revocation.revoker
                if revoker in trust_anchors or revoker in issuers[:position + 1]:
                    reason = f": {revocation.reason}" if revocation.reason else ""
                    raise DelegationError(
                        f"link {position} (certificate {certificate_hash}) was "
                        f"revoked by {parse_verifier_key(revoker).key_id} at "
                        f"{revocation.time}{reason}",
                        rule="chain.revoked",
                    )
                logger.debug("ignoring revocation %s of %s: %s may not revoke it "
                             "in this chain", revocation.record_id,
                             certificate_hash, revoker)


def _merkle_root(leaf_hashes: list[tuple[int, bytes]]) -> bytes:
    """Fold the stack of perfect subtree roots into the RFC 9162 tree head."""
    if not leaf_hashes:
        return verifier.EMPTY_ROOT
    root = leaf_hashes[-1][1]
    for _, left in reversed(leaf_hashes[:-1]):
        root = verifier.node_hash(left, root)
    return root


def read_revocations(
    ledger: Any,
    checkpoint: verifier.Checkpoint | None = None,
    *,
    log_keys: Iterable[str] = (),
    origin: str | None = None,
    batch_size: int = 1000,
) -> list[Revocation]:
    """Read every revocation record in the log, through ``ledger.entries``.

    ``checkpoint`` is a checkpoint the caller verified; without one the
    latest is fetched and verified with ``log_keys`` and ``origin``. The
    entries read are hashed into a Merkle tree whose root must equal the
    checkpoint's, so a log cannot hide a revocation from this reader without
    failing the check. A revocation record whose signature does not verify is
    skipped with a warning. Raises ``SealError`` when the log cannot be read
    or does not match its checkpoint.
    """
    if checkpoint is None:
        try:
            checkpoint = verifier.verify_checkpoint(
                ledger.latest_checkpoint(), list(log_keys), origin)
        except Exception as err:  # noqa: BLE001 - any failure means no trust
            raise SealError(f"cannot read revocations: the log's checkpoint did "
                            f"not verify: {err}") from err
    revocations: list[Revocation] = []
    stack: list[tuple[int, bytes]] = []
    for start in range(0, checkpoint.size, batch_size):
        stop = min(start + batch_size, checkpoint.size)
        try:
            entries = ledger.entries(start, stop)
        except Exception as err:  # noqa: BLE001 - any failure means no trust
            raise SealError(f"cannot read log entries [{start}, {stop}): {err}") \
                from err
        if len(entries) != stop - start:
            raise SealError(f"the log returned {len(entries)} entries for "
                            f"[{start}, {stop}), expected {stop - start}")
        for entry in entries:
            # RFC 9162 section 2.1.1: merge equal-height subtrees as leaves arrive.
            node = (0, verifier.leaf_hash(entry))
            while stack and stack[-1][0] == node[0]:
                height, left = stack.pop()
                node = (height + 1, verifier.node_hash(left, node[1]))
            stack.append(node)
            revocation = _revocation_in(entry)
            if revocation is not None:
                revocations.append(revocation)
    if not hmac.compare_digest(_merkle_root(stack), checkpoint.root):
        raise SealError(
            f"the log's first {checkpoint.size} entries do not hash to the root of "
            "its signed checkpoint; the log returned other entries than it signed"
        )
    logger.info("read %d revocation(s) from %d log entries", len(revocations),
                checkpoint.size)
    return revocations


def _revocation_in(entry: bytes) -> Revocation | None:
    if b'"type":"revocation"' not in entry:
        return None
    try:
        record = jcs.parse_strict(entry)
    except InvalidRequest:
        return None
    if not isinstance(record, dict) or record.get("type") != RECORD_TYPE:
        return None
    try:
        return Revocation.from_record(record)
    except DelegationError as err:
        logger.warning("skipping revocation record %r: %s", record.get("id"), err)
        return None
