"""AgentGate's independent verifier: receipts, checkpoints, Merkle proofs,
tiled logs, cosignatures, witnesses, monitors, audits and regulator bundles.

The package implements the formats in ``specs/`` on its own, with the
standard library and ``cryptography`` only, and shares no code with the
ledger that writes them. A bug on the writing side therefore fails
verification here instead of passing unnoticed.

Every function raises only ``VerificationError`` subclasses on bad input.
"""

from verifier.audit import AuditResult, audit_log
from verifier.audit_records import Finding
from verifier.bundle import BundleReport, verify_bundle
from verifier.checkpoint import (
    MAX_TREE_SIZE,
    Checkpoint,
    check_origin,
    open_checkpoint,
    parse_checkpoint,
    verify_checkpoint,
)
from verifier.cosignature import (
    Cosignature,
    Cosigner,
    CosignerKey,
    generate_cosigner,
    parse_cosigner_key,
    parse_cosigner_signer_key,
    verify_cosignatures,
)
from verifier.delegation import (
    Certificate,
    VerifiedChain,
    parse_certificate,
    verify_chain,
)
from verifier.errors import (
    BadSignature,
    ChainInvalid,
    MalformedInput,
    OriginMismatch,
    ProofMismatch,
    QuorumNotMet,
    Unavailable,
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
from verifier.monitor import Monitor, Outcome, Report
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
from verifier.tilehash import CompactRange, TileHashReader
from verifier.tiles import TiledLog, TileSource
from verifier.witness import Witness, WitnessState, make_server, parse_witness_config
from verifier.witness_policy import (
    WitnessPolicy,
    load_witness_policy,
    parse_witness_policy,
)

__all__ = [
    "EMPTY_ROOT",
    "HASH_SIZE",
    "HEADER",
    "MAX_SIGNATURES",
    "MAX_TREE_SIZE",
    "AuditResult",
    "BadSignature",
    "BundleReport",
    "Certificate",
    "ChainInvalid",
    "Checkpoint",
    "CompactRange",
    "Cosignature",
    "Cosigner",
    "CosignerKey",
    "Finding",
    "MalformedInput",
    "Monitor",
    "Note",
    "Opening",
    "OriginMismatch",
    "Outcome",
    "ParsedReceipt",
    "ProofMismatch",
    "QuorumNotMet",
    "Report",
    "Signature",
    "TileHashReader",
    "TileSource",
    "TiledLog",
    "Unavailable",
    "UnknownKey",
    "VerificationError",
    "VerifiedChain",
    "VerifiedReceipt",
    "VerifierKey",
    "Witness",
    "WitnessPolicy",
    "WitnessState",
    "audit_log",
    "canonicalize",
    "check_origin",
    "compute_commitment",
    "compute_key_id",
    "compute_root_from_inclusion",
    "compute_roots_from_consistency",
    "consistency_proof_length",
    "format_number",
    "generate_cosigner",
    "inclusion_proof_length",
    "is_canonical",
    "leaf_hash",
    "load_witness_policy",
    "make_server",
    "node_hash",
    "open_checkpoint",
    "open_note",
    "parse_certificate",
    "parse_checkpoint",
    "parse_cosigner_key",
    "parse_cosigner_signer_key",
    "parse_note",
    "parse_opening",
    "parse_proof_text",
    "parse_receipt",
    "parse_strict",
    "parse_verifier_key",
    "parse_witness_config",
    "parse_witness_policy",
    "verify_bundle",
    "verify_chain",
    "verify_checkpoint",
    "verify_consistency",
    "verify_cosignatures",
    "verify_inclusion",
    "verify_opening",
    "verify_receipt",
]
