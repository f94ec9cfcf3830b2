"""Witness policies: how many distinct witnesses must cosign a checkpoint.

A policy file is UTF-8 text, one statement per line; blank lines and lines
starting with ``#`` are ignored:

    witness <label> <cosigner verifier key>
    quorum <k>

The policy holds when at least ``k`` of the listed witnesses cosigned the
checkpoint. Witnesses are counted by public key, so two cosignature lines by
one key, or one key listed under two names, count once. The format is in
``specs/witness.md``.
"""

import re
from dataclasses import dataclass
from pathlib import Path

from verifier._encoding import decode_decimal, decode_utf8, shorten
from verifier.cosignature import (
    Cosignature,
    CosignerKey,
    parse_cosigner_key,
    verify_cosignatures,
)
from verifier.errors import MalformedInput, QuorumNotMet, Unavailable
from verifier.note import Note, parse_note

_LABEL = re.compile(r"[A-Za-z0-9._:-]{1,64}")
MAX_WITNESSES = 64


@dataclass(frozen=True)
class WitnessPolicy:
    """The witnesses a checkpoint needs, and how many of them."""

    witnesses: tuple[tuple[str, CosignerKey], ...]
    quorum: int

    def check(
        self, note: Note | str | bytes, now: int | None = None
    ) -> list[Cosignature]:
        """Return the counted cosignatures, or raise ``QuorumNotMet``.

        ``now`` is POSIX seconds; when given, a cosignature from the future
        fails (see ``verify_cosignatures``). A known witness's cosignature
        that does not verify raises ``BadSignature``.
        """
        parsed = note if isinstance(note, Note) else parse_note(note)
        found = verify_cosignatures(parsed, [key for _, key in self.witnesses], now)

        distinct: dict[bytes, Cosignature] = {}
        for cosignature in found:
            distinct.setdefault(cosignature.key.public_key, cosignature)
        if len(distinct) < self.quorum:
            names = ", ".join(sorted(c.key.name for c in distinct.values())) or "none"
            raise QuorumNotMet(
                f"witness policy: expected cosignatures by at least {self.quorum} "
                f"distinct witness keys of {len(self.distinct_keys())}, got "
                f"{len(distinct)} ({names})"
            )
        return list(distinct.values())

    def distinct_keys(self) -> set[bytes]:
        return {key.public_key for _, key in self.witnesses}


def parse_witness_policy(
    text: str | bytes, where: str = "witness policy"
) -> WitnessPolicy:
    """Parse a witness policy; raise ``MalformedInput`` naming the line."""
    if isinstance(text, (bytes, bytearray)):
        text = decode_utf8(bytes(text), where)
    witnesses: list[tuple[str, CosignerKey]] = []
    labels: set[str] = set()
    quorum = None
    for number, raw in enumerate(text.splitlines(), start=1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        words = line.split()
        at = f"{where} line {number}"
        if words[0] == "witness" and len(words) == 3:
            label, key_text = words[1], words[2]
            if not _LABEL.fullmatch(label):
                raise MalformedInput(
                    f"{at}: expected a label of letters, digits and ._:- , got "
                    f"{shorten(label)}"
                )
            if label in labels:
                raise MalformedInput(f"{at}: witness {label!r} is listed twice")
            try:
                key = parse_cosigner_key(key_text)
            except MalformedInput as err:
                raise MalformedInput(f"{at}: {err}") from err
            labels.add(label)
            witnesses.append((label, key))
        elif words[0] == "quorum" and len(words) == 2:
            if quorum is not None:
                raise MalformedInput(f"{at}: a second quorum line; keep one")
            quorum = decode_decimal(words[1], f"{at} (quorum)", MAX_WITNESSES + 1)
        else:
            raise MalformedInput(
                f"{at}: expected 'witness <label> <cosigner key>' or 'quorum <k>', "
                f"got {shorten(line)}"
            )

    if not witnesses:
        raise MalformedInput(f"{where}: expected at least one witness line, found none")
    if len(witnesses) > MAX_WITNESSES:
        raise MalformedInput(
            f"{where}: expected at most {MAX_WITNESSES} witnesses, got {len(witnesses)}"
        )
    if quorum is None:
        raise MalformedInput(f"{where}: expected a 'quorum <k>' line, found none")
    distinct = len({key.public_key for _, key in witnesses})
    if not 1 <= quorum <= distinct:
        raise MalformedInput(
            f"{where}: quorum {quorum} must lie between 1 and the {distinct} "
            "distinct witness keys listed"
        )
    return WitnessPolicy(tuple(witnesses), quorum)


def load_witness_policy(path: str | Path) -> WitnessPolicy:
    """Read and parse a witness policy file."""
    try:
        data = Path(path).read_bytes()
    except OSError as err:
        raise Unavailable(
            f"cannot read witness policy {path}: {err.strerror or err}"
        ) from err
    return parse_witness_policy(data, str(path))
