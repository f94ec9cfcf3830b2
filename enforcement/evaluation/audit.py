"""The demo's closing check: the independent verifier over everything sealed.

It reads the receipt files back from disk and checks each with the
``verifier`` package alone. It then proves that every checkpoint a receipt
was issued against is consistent with the final checkpoint, using proofs the
log provides and the verifier checks. A rewritten history would fail here.
"""

from __future__ import annotations

import base64
from dataclasses import dataclass, field
from pathlib import Path

import verifier


@dataclass
class AuditResult:
    receipts: int = 0
    receipts_verified: int = 0
    checkpoints: int = 0
    consistency_verified: int = 0
    first_size: int = 0
    last_size: int = 0
    first_checkpoint: str = ""
    failures: list[str] = field(default_factory=list)

    @property
    def passed(self) -> bool:
        return (
            not self.failures
            and self.receipts > 0
            and self.receipts == self.receipts_verified
            and self.checkpoints == self.consistency_verified
        )


def audit_run(receipt_dir: Path, log_key: str, origin: str, final_checkpoint: str,
              consistency_proof, out_dir: Path | None = None) -> AuditResult:
    """Verify every receipt file and every checkpoint against the final one.

    ``consistency_proof(first, second)`` returns proof hashes; they come from
    the log and are untrusted until the verifier accepts them.
    """
    result = AuditResult()
    final = verifier.verify_checkpoint(final_checkpoint, [log_key], origin=origin)
    result.last_size = final.size
    checkpoints: dict[int, verifier.Checkpoint] = {}
    notes: dict[int, str] = {}
    for path in sorted(receipt_dir.glob("*.tlog-proof")):
        result.receipts += 1
        try:
            verified = verifier.verify_receipt(path.read_bytes(), [log_key],
                                               origin=origin)
        except verifier.VerificationError as err:
            result.failures.append(f"{path.name}: {err}")
            continue
        result.receipts_verified += 1
        if verified.checkpoint.size not in checkpoints:
            checkpoints[verified.checkpoint.size] = verified.checkpoint
            notes[verified.checkpoint.size] = verifier.parse_receipt(
                path.read_bytes()).checkpoint

    result.checkpoints = len(checkpoints)
    result.first_size = min(checkpoints, default=0)
    for size, checkpoint in sorted(checkpoints.items()):
        proof = consistency_proof(size, final.size)
        try:
            verifier.verify_consistency(size, final.size, proof, checkpoint.root,
                                        final.root)
        except verifier.VerificationError as err:
            result.failures.append(f"consistency {size} -> {final.size}: {err}")
            continue
        result.consistency_verified += 1
        if size == result.first_size:
            result.first_checkpoint = notes[size]
            if out_dir is not None:
                _write_first_proof(out_dir, size, final.size, proof)
                (out_dir / f"checkpoint-{size}.txt").write_text(notes[size])
    return result


def _write_first_proof(out_dir: Path, first: int, last: int, proof) -> None:
    lines = "".join(base64.b64encode(h).decode() + "\n" for h in proof)
    (out_dir / f"consistency-{first}-{last}.txt").write_text(lines)
