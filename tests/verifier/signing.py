"""A test-only writer of signed notes, checkpoints and receipts.

It is written from the formats in ``specs/`` and shares no code with the
ledger or the verifier. The verifier tests therefore do not depend on the
ledger, and a mistake here shows up as a valid input that fails. Entries are
canonicalized with the ``rfc8785`` package, not with ``verifier.jcs``.
"""

import base64
import hashlib

import rfc8785
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from tests.verifier.reference import ReferenceTree

EM_DASH = "\u2014"


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


class TestSigner:
    """An Ed25519 note signer built from a fixed seed."""

    __test__ = False  # not a pytest test class

    def __init__(self, name: str, seed: bytes):
        self.name = name
        self.private_key = Ed25519PrivateKey.from_private_bytes(seed)
        self.public_key = self.private_key.public_key().public_bytes_raw()
        material = name.encode() + b"\n" + b"\x01" + self.public_key
        self.key_id = hashlib.sha256(material).digest()[:4]

    @classmethod
    def from_seed_text(cls, name: str, text: str) -> "TestSigner":
        """Build a signer whose seed is SHA-256 of ``text``."""
        return cls(name, hashlib.sha256(text.encode()).digest())

    @classmethod
    def from_signer_key(cls, signer_key: str) -> "TestSigner":
        """Build a signer from ``PRIVATE+KEY+<name>+<hex id>+<base64(0x01||seed)>``."""
        prefix, key, name, _, encoded = signer_key.split("+", 4)
        assert (prefix, key) == ("PRIVATE", "KEY")
        raw = base64.b64decode(encoded)
        assert len(raw) == 33
        assert raw[0] == 1
        return cls(name, raw[1:])

    @property
    def verifier_key(self) -> str:
        encoded = b64(bytes([1]) + self.public_key)
        return f"{self.name}+{self.key_id.hex()}+{encoded}"

    def signature_line(self, text: str) -> str:
        signature = self.private_key.sign(text.encode("utf-8"))
        return f"{EM_DASH} {self.name} {b64(self.key_id + signature)}\n"


def sign_note(text: str, *signers: TestSigner) -> str:
    """Return ``text``, a blank line and one signature line per signer."""
    return text + "\n" + "".join(s.signature_line(text) for s in signers)


def checkpoint_text(
    origin: str, size: int, root: bytes, extensions: tuple[str, ...] = ()
) -> str:
    lines = [origin, str(size), b64(root), *extensions]
    return "".join(line + "\n" for line in lines)


def receipt_text(index: int, entry: bytes, proof: list[bytes], checkpoint: str) -> str:
    head = ["c2sp.org/tlog-proof@v1", f"extra {b64(entry)}", f"index {index}"]
    head += [b64(digest) for digest in proof]
    return "".join(line + "\n" for line in head) + "\n" + checkpoint


def record(number: int) -> dict:
    """Return a small decision-like record, different for each number."""
    return {
        "type": "decision",
        "version": 1,
        "id": f"d-{number:032x}",
        "tool": "send_money",
        "verdict": "allow" if number % 2 else "deny",
        "note": f"r\u00e9sum\u00e9 {number} \u20ac",
    }


class TestLog:
    """A log of canonical records with signed checkpoints and receipts."""

    __test__ = False  # not a pytest test class

    def __init__(self, signer: TestSigner, origin: str, count: int):
        self.signer = signer
        self.origin = origin
        self.entries = [rfc8785.dumps(record(n)) for n in range(count)]
        self.tree = ReferenceTree(self.entries)

    def checkpoint(self, size: int | None = None) -> str:
        size = len(self.entries) if size is None else size
        body = checkpoint_text(self.origin, size, self.tree.root(size))
        return sign_note(body, self.signer)

    def receipt(self, index: int, size: int | None = None) -> str:
        size = len(self.entries) if size is None else size
        proof = self.tree.path(index, size)
        return receipt_text(index, self.entries[index], proof, self.checkpoint(size))


def cosigner_keys(name: str, seed_text: str) -> tuple[str, str]:
    """Return ``(signer key, verifier key)`` of a cosigner seeded by ``seed_text``.

    The seed is SHA-256 of ``seed_text``.
    """
    seed = hashlib.sha256(seed_text.encode()).digest()
    public = Ed25519PrivateKey.from_private_bytes(seed).public_key().public_bytes_raw()
    key_id = hashlib.sha256(name.encode() + b"\n\x04" + public).digest()[:4].hex()
    signer = f"PRIVATE+KEY+{name}+{key_id}+{b64(bytes([4]) + seed)}"
    return signer, f"{name}+{key_id}+{b64(bytes([4]) + public)}"
