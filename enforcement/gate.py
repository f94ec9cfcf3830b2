"""The gate: what every session shares, the sealing of records, and the guard.

``Gate`` keeps what is shared between sessions: the ledger client, the
pinned log key, the policy, the trust anchors and revocations, the call
budgets, the sequence engine and the scorer. It seals every record through
``seal_record``, which verifies the receipt with the independent verifier
before anything relies on it. ``Gate.session`` starts a ``Session``
(``enforcement.session``), which runs the pipeline for each call, and
``Gate.guard`` routes a function's calls through the session entered in the
current context.
"""

from __future__ import annotations

import functools
import hmac
import inspect
import logging
import secrets
import threading
from collections.abc import Callable, Iterable, Mapping, Sequence
from datetime import datetime
from typing import Any

import verifier
from enforcement import jcs
from enforcement.alignment import DefaultScorer, Purpose, Scorer
from enforcement.approval_desk import ApprovalDesk
from enforcement.approvals_store import ApprovalStore
from enforcement.binding import bind_arguments
from enforcement.delegation import Certificate, ChainVerifier
from enforcement.errors import ConfigError, NoSession, SealError
from enforcement.identity import Identity, parse_verifier_key
from enforcement.logview import LogView
from enforcement.policy import Policy
from enforcement.profiles import ToolProfile, derive_profile, profile_from_function
from enforcement.records import delegation_record, leaf_hash, policy_record
from enforcement.revocation import (
    Revocation,
    RevocationSet,
    read_revocations,
    sign_revocation,
)
from enforcement.scope import CallBudgets
from enforcement.sequence import SequenceEngine
from enforcement.session import Session, current_session
from enforcement.timeutil import utc_now
from enforcement.vault import ArgumentVault

__all__ = ["Gate", "Sealed", "Session"]

logger = logging.getLogger(__name__)


class Sealed:
    """A record the gate sealed and whose receipt it verified."""

    def __init__(self, entry: bytes, receipt: Any, verified: Any) -> None:
        self.entry = entry
        self.receipt = receipt
        self.verified = verified
        self.index: int = verified.index
        self.leaf_hash = leaf_hash(entry)


class Gate:
    """Authorizes tool calls and seals every decision into the log."""

    def __init__(
        self,
        ledger: Any,
        log_key: str | Sequence[str],
        policy: Policy,
        trust_anchors: Iterable[str],
        *,
        origin: str | None = None,
        scorer: Scorer | None = None,
        vault: ArgumentVault | None = None,
        clock: Callable[[], datetime] = utc_now,
        default_chain: Sequence[Certificate] = (),
        on_seal: Callable[[Sealed], None] | None = None,
        revocations: Iterable[Revocation] | None = None,
    ) -> None:
        """Start a gate and seal its policy record.

        ``revocations`` are the revocations in force at start. By default the
        gate reads them from the log (``read_revocations``), which reads
        every entry once; pass ``()`` to start with none.
        """
        self._ledger = ledger
        self._view = LogView(ledger)
        self._on_seal = on_seal
        keys = [log_key] if isinstance(log_key, str) else list(log_key)
        if not keys:
            raise ConfigError("pin at least one log verifier key")
        for key in keys:
            parse_verifier_key(key)
        self._log_keys = keys
        self._origin = origin or getattr(ledger, "origin", None)
        if not self._origin:
            raise ConfigError("the log origin is unknown; pass origin=")
        self.policy = policy
        self._revocations = RevocationSet(revocations or ())
        self._chains = ChainVerifier(trust_anchors, revocations=self._revocations)
        self._budgets = CallBudgets()
        self._scorer = scorer or DefaultScorer()
        if not isinstance(self._scorer, Scorer):
            raise ConfigError(
                f"scorer {self._scorer!r} lacks name, version or score()"
            )
        self._vault = vault or ArgumentVault()
        if clock().tzinfo is None:
            raise ConfigError(
                "the clock returned a time without a time zone; return an aware "
                "datetime such as datetime.now(UTC)"
            )
        self._clock = clock
        self._engine = SequenceEngine(policy.rules)
        self._profiles: dict[str, ToolProfile] = {}
        self._profiles_lock = threading.Lock()
        self.default_chain = tuple(default_chain)
        self.policy_hash = policy.hash
        sealed = self.seal_record(
            policy_record(policy.document(), self.policy_hash, self._clock())
        )
        self.policy_index = sealed.index
        if revocations is None:
            # The policy's receipt carries a checkpoint verified against the
            # pinned log key; the entries read must hash to its root.
            for revocation in read_revocations(ledger, sealed.verified.checkpoint):
                self._revocations.add(revocation)
        logger.info("gate started under policy %s (leaf %d)", self.policy_hash,
                    sealed.index)
        self._desk: ApprovalDesk | None = None
        if policy.approvals is not None:
            self._desk = ApprovalDesk(
                policy.approvals, ApprovalStore(self._vault.engine), self._vault,
                self.seal_record, self.policy_hash, self._clock,
            )

    @property
    def approval_store(self) -> ApprovalStore | None:
        """The store of approval requests, or None when the policy names no
        approvers."""
        return self._desk.store if self._desk is not None else None

    # -- set-up ---------------------------------------------------------------

    def register_tool(
        self,
        name: str,
        *,
        func: Callable | None = None,
        arguments: Iterable[str] = (),
        description: str = "",
        profile: ToolProfile | None = None,
    ) -> ToolProfile:
        """Register a tool's profile: given, or derived and then overridden."""
        if profile is None:
            if func is not None:
                profile = profile_from_function(func, name)
            else:
                profile = derive_profile(name, arguments, description)
        profile = self._apply_overrides(profile)
        with self._profiles_lock:
            self._profiles[name] = profile
        return profile

    def has_profile(self, tool: str) -> bool:
        """Return True when a profile was registered for ``tool``."""
        with self._profiles_lock:
            return tool in self._profiles

    def profile_for(self, tool: str, arguments: Mapping[str, Any]) -> ToolProfile:
        with self._profiles_lock:
            profile = self._profiles.get(tool)
        if profile is not None:
            return profile
        return self._apply_overrides(derive_profile(tool, arguments))

    def _apply_overrides(self, profile: ToolProfile) -> ToolProfile:
        override = self.policy.profiles.get(profile.name)
        if override is None:
            return profile
        return profile.with_overrides(
            labels=frozenset(override.labels) if override.labels is not None else None,
            data_classes=(frozenset(override.data_classes)
                          if override.data_classes is not None else None),
            roles={**profile.roles, **override.roles} if override.roles else None,
            trusted_output=override.trusted_output,
        )

    def register_delegation(self, certificate: Certificate) -> Sealed:
        """Seal a delegation record so auditors see who delegated what to whom."""
        Certificate.from_json(certificate.to_json())
        return self.seal_record(
            delegation_record(certificate.to_json(), certificate.hash, self._clock())
        )

    def session(
        self,
        purpose: Purpose | str,
        chain: Sequence[Certificate] | None = None,
        session_id: str | None = None,
        *,
        approval_wait: float | None = None,
    ) -> Session:
        """Start a session of the agent at the end of ``chain`` for ``purpose``.

        ``approval_wait`` is how many seconds a held call waits for approvers
        before it is denied; 0 raises ``ApprovalRequired`` at once. It
        defaults to the policy's ``approvals.wait_seconds``.
        """
        if isinstance(purpose, str):
            purpose = Purpose(purpose)
        chain = tuple(chain) if chain is not None else self.default_chain
        if not chain:
            raise ConfigError(
                "a session needs a delegation chain; pass chain= or give the gate "
                "a default_chain"
            )
        if approval_wait is not None and not 0 <= approval_wait <= 86400:
            raise ConfigError(
                f"approval_wait must lie in [0, 86400] seconds, got {approval_wait}"
            )
        if approval_wait is None and self.policy.approvals is not None:
            approval_wait = self.policy.approvals.wait_seconds
        return Session(self, chain, purpose, session_id or f"s-{secrets.token_hex(8)}",
                       approval_wait=approval_wait or 0.0)

    # -- revocation -------------------------------------------------------------

    def revoke(self, certificate_hash: str, by: Identity, reason: str = "", *,
               chain: Sequence[Certificate] | None = None) -> Sealed:
        """Revoke a certificate and seal the revocation signed by ``by``.

        ``by`` must be a trust anchor, the certificate's issuer or an issuer
        above it in its chain; anyone else raises ``DelegationError``
        (``revocation.authority``) and nothing is sealed. The gate knows the
        chain of every certificate it verified; for another one pass
        ``chain``. The revocation takes effect before it is sealed, so a
        ``SealError`` leaves the certificate refused in this gate but not
        recorded in the log; call ``revoke`` again to record it.
        """
        revocation = sign_revocation(certificate_hash, by, reason, self._clock())
        self._chains.check_revoker(certificate_hash, revocation.revoker, chain)
        self._revocations.add(revocation)
        sealed = self.seal_record(revocation.to_record())
        logger.info("certificate %s revoked by %s (leaf %d)", certificate_hash,
                    by.key_id, sealed.index)
        return sealed

    def is_revoked(self, certificate_hash: str) -> bool:
        """Return True when the gate has a revocation of the certificate.

        A revocation read from the log counts in a chain only when its
        revoker may revoke there; see ``RevocationSet.check_chain``.
        """
        return certificate_hash in self._revocations

    # -- sealing ----------------------------------------------------------------

    def seal_record(self, record: dict[str, Any]) -> Sealed:
        """Append a record and verify its receipt; raise ``SealError`` on any fault."""
        entry = jcs.canonical(record)
        try:
            receipt = self._ledger.append(entry)
        except Exception as err:  # noqa: BLE001 - whatever failed, nothing runs
            raise SealError(f"the ledger did not seal {record['type']} record "
                            f"{record['id']}: {err}") from err
        try:
            verified = verifier.verify_receipt(
                receipt.text, self._log_keys, origin=self._origin
            )
        except verifier.VerificationError as err:
            raise SealError(
                f"the receipt for {record['id']} failed verification: {err}"
            ) from err
        except Exception as err:  # noqa: BLE001 - a malformed receipt object
            raise SealError(
                f"the receipt for {record['id']} could not be read: {err!r}"
            ) from err
        if not hmac.compare_digest(verified.entry, entry):
            raise SealError(
                f"the log proved an entry other than record {record['id']}"
            )
        if verified.index != receipt.index:
            raise SealError(
                f"receipt index {receipt.index} differs from the proved index "
                f"{verified.index}"
            )
        self._view.accept(verified.checkpoint)
        sealed = Sealed(entry, receipt, verified)
        if self._on_seal is not None:
            self._on_seal(sealed)
        return sealed

    # -- decorator --------------------------------------------------------------

    def guard(self, func: Callable | None = None, *, name: str | None = None,
              profile: ToolProfile | None = None):
        """Decorate a sync or async function so that every call passes the gate.

        The call must happen inside ``with gate.session(...)``; outside one it
        raises ``NoSession`` and the function does not run.
        """
        def wrap(function: Callable) -> Callable:
            tool = name or function.__name__
            self.register_tool(tool, func=function, profile=profile)
            signature = inspect.signature(function)

            if inspect.iscoroutinefunction(function):
                @functools.wraps(function)
                async def async_guarded(*args, **kwargs):
                    session = self._active_session(tool)
                    arguments = bind_arguments(signature, args, kwargs)
                    return await session.acall(
                        tool, arguments, lambda: function(*args, **kwargs)
                    )
                return async_guarded

            @functools.wraps(function)
            def guarded(*args, **kwargs):
                session = self._active_session(tool)
                arguments = bind_arguments(signature, args, kwargs)
                return session.call(tool, arguments, lambda: function(*args, **kwargs))
            return guarded

        return wrap(func) if func is not None else wrap

    def _active_session(self, tool: str) -> Session:
        session = current_session()
        if session is None or session.gate is not self:
            raise NoSession(
                f"{tool} was called outside a session of this gate; wrap the "
                "agent's run in `with gate.session(purpose=...):`"
            )
        return session
