"""Independent checks of notes and receipts for the ledger tests.

These parse the texts the ledger writes and verify them with
``cryptography`` and the RFC 9162 section 2.1.3.2 algorithm, sharing no code
with the ledger, so the tests do not depend on the verifier package.
"""

import base64
import hashlib

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey


def split_note(note):
    """Return (text, [(name, key_id, signature)]) of a signed note."""
    assert note.endswith("\n")
    split = note.rindex("\n\n")
    text = note[: split + 1]
    signatures = []
    for line in note[split + 2 :].splitlines():
        assert line.startswith("\u2014 "), line
        name, encoded = line[2:].split(" ")
        raw = base64.b64decode(encoded, validate=True)
        signatures.append((name, raw[:4], raw[4:]))
    return text, signatures


def open_checkpoint(note, verifier_key):
    """Verify ``note`` with ``verifier_key`` (a VerifierKey) and parse its body."""
    text, signatures = split_note(note)
    public = Ed25519PublicKey.from_public_bytes(verifier_key.public_key)
    matching = [
        signature
        for name, key_id, signature in signatures
        if name == verifier_key.name and key_id == verifier_key.key_id
    ]
    assert matching, "no signature by the log key"
    for signature in matching:
        public.verify(signature, text.encode())
    origin, size, root, empty = text.split("\n")
    assert empty == ""
    return origin, int(size), base64.b64decode(root, validate=True)


def root_from_inclusion(leaf_hash, index, size, proof):
    """Compute the root from an audit path (RFC 9162 section 2.1.3.2)."""
    assert 0 <= index < size
    fn, sn = index, size - 1
    result = leaf_hash
    for sibling in proof:
        assert sn != 0, "proof too long"
        if fn & 1 or fn == sn:
            result = hashlib.sha256(b"\x01" + sibling + result).digest()
            if not fn & 1:
                while fn & 1 == 0 and fn != 0:
                    fn >>= 1
                    sn >>= 1
        else:
            result = hashlib.sha256(b"\x01" + result + sibling).digest()
        fn >>= 1
        sn >>= 1
    assert sn == 0, "proof too short"
    return result


def check_receipt(text, verifier_key, origin):
    """Parse and verify a receipt; return (index, entry, size)."""
    head, checkpoint = text.split("\n\n", 1)
    lines = head.split("\n")
    assert lines[0] == "c2sp.org/tlog-proof@v1"
    assert lines[1].startswith("extra ")
    assert lines[2].startswith("index ")
    entry = base64.b64decode(lines[1][len("extra ") :], validate=True)
    index = int(lines[2][len("index ") :])
    assert str(index) == lines[2][len("index ") :]
    proof = [base64.b64decode(line, validate=True) for line in lines[3:]]
    assert all(len(digest) == 32 for digest in proof)

    note_origin, size, root = open_checkpoint(checkpoint, verifier_key)
    assert note_origin == origin
    leaf_hash = hashlib.sha256(b"\x00" + entry).digest()
    assert root_from_inclusion(leaf_hash, index, size, proof) == root
    return index, entry, size
