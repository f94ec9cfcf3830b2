"""AgentGate's independent verifier: receipts, checkpoints and Merkle proofs.

The package implements the formats in ``specs/`` on its own, with the
standard library and ``cryptography`` only, and shares no code with the
ledger that writes them. A bug on the writing side therefore fails
verification here instead of passing unnoticed.

Every function raises only ``VerificationError`` subclasses on bad input.
"""

from verifier.checkpoint import (
    MAX_TREE_SIZE,
    Checkpoint,
    check_origin,
    open_checkpoint,
    parse_checkpoint,
    verify_checkpoint,
)
from verifier.errors import (
    BadSignature,
    MalformedInput,
    OriginMismatch,
    ProofMismatch,
    UnknownKey,
    VerificationError,
)
from verifier.jcs import canonicalize, format_number, is_canonical, parse_strict
from verifier.merkle import (
    EMPTY_ROOT,
    HASH_SIZE,
    compute_root_from_inclusion,
    compute_roots_from_consistency,
    consistency_proof_length,
    inclusion_proof_length,
    leaf_hash,
    node_hash,
    parse_proof_text,
    verify_consistency,
    verify_inclusion,
)
from verifier.note import (
    MAX_SIGNATURES,
    Note,
    Signature,
    VerifierKey,
    compute_key_id,
    open_note,
    parse_note,
    parse_verifier_key,
)
from verifier.opening import (
    Opening,
    compute_commitment,
    parse_opening,
    verify_opening,
)
from verifier.receipt import (
    HEADER,
    ParsedReceipt,
    VerifiedReceipt,
    parse_receipt,
    verify_receipt,
)

__all__ = [
    "EMPTY_ROOT",
    "HASH_SIZE",
    "HEADER",
    "MAX_SIGNATURES",
    "MAX_TREE_SIZE",
    "BadSignature",
    "Checkpoint",
    "MalformedInput",
    "Note",
    "Opening",
    "OriginMismatch",
    "ParsedReceipt",
    "ProofMismatch",
    "Signature",
    "UnknownKey",
    "VerificationError",
    "VerifiedReceipt",
    "VerifierKey",
    "canonicalize",
    "check_origin",
    "compute_commitment",
    "compute_key_id",
    "compute_root_from_inclusion",
    "compute_roots_from_consistency",
    "consistency_proof_length",
    "format_number",
    "inclusion_proof_length",
    "is_canonical",
    "leaf_hash",
    "node_hash",
    "open_checkpoint",
    "open_note",
    "parse_checkpoint",
    "parse_opening",
    "parse_note",
    "parse_proof_text",
    "parse_receipt",
    "parse_strict",
    "parse_verifier_key",
    "verify_checkpoint",
    "verify_consistency",
    "verify_inclusion",
    "verify_opening",
    "verify_receipt",
]
