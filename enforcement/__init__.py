"""AgentGate enforcement: the gate every agent tool call passes.

Three lines integrate it::

    gate = Gate(ledger, log_key, load_policy(), trust_anchors, default_chain=chain)

    @gate.guard
    def send_money(recipient: str, amount: float) -> dict: ...

and the agent runs inside ``with gate.session(purpose="Pay the March rent"):``.
"""

from enforcement.alignment import (
    AlignmentResult,
    DefaultScorer,
    Purpose,
    Scorer,
    ScoringContext,
)
from enforcement.approvals import SignedApproval, sign_approval, submit_approval
from enforcement.approvals_store import ApprovalStore
from enforcement.delegation import (
    Certificate,
    ChainVerifier,
    VerifiedChain,
    issue_certificate,
)
from enforcement.errors import (
    ApprovalError,
    ApprovalRequired,
    ConfigError,
    DelegationError,
    Denied,
    GateError,
    Held,
    InvalidRequest,
    NoSession,
    Reason,
    Refusal,
    SealError,
)
from enforcement.gate import Gate, Sealed
from enforcement.identity import Identity, PublicIdentity, parse_verifier_key
from enforcement.policy import Policy, load_policy, parse_policy
from enforcement.profiles import ToolProfile, derive_profile, profile_from_function
from enforcement.records import Decision
from enforcement.revocation import (
    Revocation,
    RevocationSet,
    read_revocations,
    sign_revocation,
)
from enforcement.scope import CallBudgets, Scope
from enforcement.session import Session
from enforcement.vault import ArgumentVault
from enforcement.verdict import Evaluation

__all__ = [
    "AlignmentResult",
    "ApprovalError",
    "ApprovalRequired",
    "ApprovalStore",
    "ArgumentVault",
    "CallBudgets",
    "Certificate",
    "ChainVerifier",
    "ConfigError",
    "Decision",
    "DefaultScorer",
    "DelegationError",
    "Denied",
    "Evaluation",
    "Gate",
    "GateError",
    "Held",
    "Identity",
    "InvalidRequest",
    "NoSession",
    "Policy",
    "PublicIdentity",
    "Purpose",
    "Reason",
    "Refusal",
    "Revocation",
    "RevocationSet",
    "Scope",
    "Scorer",
    "ScoringContext",
    "SealError",
    "Sealed",
    "Session",
    "SignedApproval",
    "ToolProfile",
    "VerifiedChain",
    "derive_profile",
    "issue_certificate",
    "load_policy",
    "parse_policy",
    "parse_verifier_key",
    "profile_from_function",
    "read_revocations",
    "sign_approval",
    "sign_revocation",
    "submit_approval",
]
