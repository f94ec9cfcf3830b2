"""AgentGate enforcement: the gate every agent tool call passes.

Three lines integrate it::

    gate = Gate(ledger, log_key, load_policy(), trust_anchors, default_chain=chain)

    @gate.guard
    def send_money(recipient: str, amount: float) -> dict: ...

and the agent runs inside ``with gate.session(purpose="Pay the March rent"):``.
"""

from enforcement.alignment import AlignmentResult, DefaultScorer, Purpose, Scorer
from enforcement.delegation import Certificate, ChainVerifier, issue_certificate
from enforcement.errors import (
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
from enforcement.gate import Gate, Session
from enforcement.identity import Identity, PublicIdentity, parse_verifier_key
from enforcement.policy import Policy, load_policy, parse_policy
from enforcement.profiles import ToolProfile, derive_profile, profile_from_function
from enforcement.records import Decision
from enforcement.vault import ArgumentVault

__all__ = [
    "AlignmentResult",
    "ArgumentVault",
    "Certificate",
    "ChainVerifier",
    "ConfigError",
    "Decision",
    "DefaultScorer",
    "DelegationError",
    "Denied",
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
    "Scorer",
    "SealError",
    "Session",
    "ToolProfile",
    "derive_profile",
    "issue_certificate",
    "load_policy",
    "parse_policy",
    "parse_verifier_key",
    "profile_from_function",
]
