"""The gate's side of approvals: requests for held calls, and their outcome.

When the policy names approvers, the gate keeps an ``ApprovalDesk``. For
each call, ``prepare`` finds the request that matches the call, if any, and
tallies its approvals. ``settle`` applies the tally to the verdict, under
the sequence engine's lock. ``cite`` seals the approvals that were counted,
so that the decision can cite them, and ``open_request`` opens a request for
a new hold that the approvers may lift. Signing and checking approvals is in
``enforcement.approvals``.
"""

from __future__ import annotations

import hmac
import logging
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from enforcement.approvals import SignedApproval, Tally, expiry_after, tally
from enforcement.approvals_store import (
    ApprovalRequest,
    ApprovalStore,
    StoredApproval,
    call_hash,
)
from enforcement.errors import ApprovalError, Reason
from enforcement.policy import ApprovalPolicy
from enforcement.records import approval_record, approval_request_record, new_id
from enforcement.timeutil import format_time
from enforcement.vault import ArgumentVault

logger = logging.getLogger(__name__)

@dataclass
class Resolution:
    """What the approvals of one call amount to, gathered before the verdict.

    ``problem`` is set when the call presented a request it cannot use; the
    call is then denied. ``cited`` lists the sealed approval records that the
    decision cites.
    """

    request: ApprovalRequest | None = None
    tally: Tally | None = None
    problem: Reason | None = None
    notes: list[Reason] = field(default_factory=list)
    cited: list[dict[str, Any]] = field(default_factory=list)
    lifted: bool = False
    reusable: bool = False
    # Set by ``settle`` when the request decides or keeps holding this call.
    applied: bool = False

    def member(self) -> dict[str, Any] | None:
        """Return the decision's ``approval`` member, or None when none applies."""
        if self.request is None or not self.applied:
            return None
        return {"request": self.request.id, "approvals": list(self.cited)}


class ApprovalDesk:
    """Opens requests for held calls and applies the approvals they receive."""

    def __init__(self, policy: ApprovalPolicy, store: ApprovalStore,
                 vault: ArgumentVault, seal: Callable[[dict[str, Any]], Any],
                 policy_hash: str, clock: Callable[[], datetime]) -> None:
        self.policy = policy
        self.store = store
        self._vault = vault
        self._seal = seal
        self._policy_hash = policy_hash
        self._clock = clock

    def prepare(self, session: str, tool: str, arguments: Mapping[str, Any],
                presented: str | None, now: datetime) -> Resolution:
        """Find the request that matches this call and tally its approvals.

        Without ``presented`` the newest pending request for the same tool,
        arguments and session applies. A presented request that is unknown,
        for another call, or no longer pending denies the call.
        """
        hashed = call_hash(arguments)
        if presented is None:
            request = self.store.latest_pending(session, tool, hashed)
            if request is not None and request.expiry <= now:
                self.store.close_request(request.id, "expired")
                request = None
            if request is None:
                return Resolution()
        else:
            request, problem = self._presented(presented, session, tool, hashed, now)
            if problem is not None:
                return Resolution(request=request, problem=problem)
        counted = tally(request, self.store.approvals(request.id),
                        self.policy.approvers, self.policy.quorum, now)
        resolution = Resolution(request=request, tally=counted)
        resolution.notes = [Reason("approval.rejected", text)
                            for text in counted.rejected]
        return resolution

    def cite(self, resolution: Resolution, now: datetime) -> None:
        """Seal each approval the tally counted, once, and list it in ``cited``.

        Call it before sealing the decision, whose record cites them.
        """
        if resolution.tally is None or resolution.cited:
            return
        for stored, approval in resolution.tally.counted:
            resolution.cited.append(self._sealed(stored, approval, now))

    def _presented(self, request_id: str, session: str, tool: str, hashed: str,
                   now: datetime) -> tuple[Any, Reason | None]:
        try:
            request = self.store.request(request_id)
        except ApprovalError:
            return None, Reason(
                "approval.unknown",
                f"no approval request {request_id!r}; make the call without it "
                "to open a new one",
            )
        if (request.session != session or request.tool != tool
                or not hmac.compare_digest(request.call_hash, hashed)):
            return request, Reason(
                "approval.mismatch",
                f"request {request.id} was opened for another call (tool, "
                "arguments or session differ); a changed call needs a new approval",
            )
        if request.status == "pending" and request.expiry <= now:
            self.store.close_request(request.id, "expired")
            request = self.store.request(request.id)
        texts = {
            "used": "was already used by an earlier call; an approval is used once",
            "denied": "was denied by an approver",
            "timed_out": "timed out before its quorum was reached",
            "expired": f"expired at {format_time(request.expiry)}",
        }
        if request.status in texts:
            rule = "approval.timeout" if request.status == "timed_out" else \
                f"approval.{request.status}"
            return request, Reason(rule, f"request {request.id} "
                                         f"{texts[request.status]}")
        return request, None

    def _sealed(self, stored: StoredApproval, approval: SignedApproval,
                now: datetime) -> dict[str, Any]:
        """Seal an approval the first time it counts; return its citation."""
        if stored.record_id is not None and stored.record_index is not None:
            return {"id": stored.record_id, "index": stored.record_index}
        record_id = new_id("approval")
        sealed = self._seal(approval_record(record_id, now, approval.to_json()))
        self.store.mark_sealed(stored.nonce, record_id, sealed.index)
        return {"id": record_id, "index": sealed.index}

    def settle(self, resolution: Resolution, verdict: str,
               hold_rules: set[str]) -> tuple[str, list[tuple[Reason, str]]]:
        """Return the verdict after approvals and the reasons to add, each with
        the verdict it requests. Call under the sequence engine's lock."""
        notes = [(note, "allow") for note in resolution.notes]
        if resolution.problem is not None:
            resolution.applied = True
            return "deny", [(resolution.problem, "deny")]
        request, counted = resolution.request, resolution.tally
        if request is None or counted is None:
            return verdict, notes
        if counted.denied:
            resolution.applied = True
            self.store.close_request(request.id, "denied")
            return "deny", notes + [(Reason(
                "approval.denied",
                f"request {request.id} denied by {', '.join(counted.denied_by)}",
            ), "deny")]
        covered = hold_rules <= set(request.rules)
        resolution.reusable = resolution.applied = verdict == "hold" and covered
        if verdict != "hold" or not covered or not counted.reached:
            return verdict, notes
        if not self.store.close_request(request.id, "used"):
            resolution.reusable = resolution.applied = False
            return verdict, notes + [(Reason(
                "approval.used",
                f"request {request.id} was used by a concurrent call",
            ), "allow")]
        resolution.lifted = True
        resolution.reusable = False
        return "allow", notes + [(Reason(
            "approval",
            f"request {request.id} approved by {len(counted.approved_by)} of "
            f"{counted.quorum} required: {', '.join(counted.approved_by)}",
        ), "allow")]

    def open_request(self, *, decision_id: str, decision_index: int, session: str,
                     agent: str, tool: str,
                     arguments: Mapping[str, Any], rules: set[str],
                     now: datetime) -> ApprovalRequest:
        """Seal an approval-request record for a held decision and store it."""
        request_id = new_id("approval-request")
        commitment = self._vault.commit_values(
            request_id, {"arguments": dict(arguments)})["arguments"]
        expiry = expiry_after(now, self.policy.expiry_seconds)
        self._seal(approval_request_record(
            record_id=request_id, now=now, decision_id=decision_id,
            decision_index=decision_index, tool=tool,
            arguments_commitment=commitment, agent=agent, session=session,
            rules=sorted(rules), quorum=self.policy.quorum, expiry=expiry,
            policy_hash=self._policy_hash,
        ))
        request = ApprovalRequest(
            id=request_id, decision=decision_id, decision_index=decision_index,
            tool=tool, arguments=commitment, call_hash=call_hash(arguments),
            agent=agent, session=session, rules=tuple(sorted(rules)),
            quorum=self.policy.quorum, approvers=tuple(self.policy.approvers),
            created=now, expiry=expiry, status="pending",
        )
        self.store.add_request(request, arguments)
        logger.info("session %s: %s held for approval as %s (quorum %d)", session,
                    tool, request_id, self.policy.quorum)
        return request

    def wait(self, request_id: str, seconds: float,
             sleep: Callable[[float], None] = time.sleep) -> str:
        """Poll the store until the request is approved or denied, or until
        ``seconds`` of wall time pass.

        Returns "approved", "denied", "timeout", or the status the request was
        closed with.
        """
        deadline = time.monotonic() + seconds
        while True:
            request = self.store.request(request_id)
            if request.status != "pending":
                return request.status
            counted = tally(request, self.store.approvals(request_id),
                            self.policy.approvers, self.policy.quorum, self._clock())
            if counted.denied:
                return "denied"
            if counted.reached:
                return "approved"
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return "timeout"
            sleep(min(self.policy.poll_seconds, remaining))

