"""Merkle tree hashing and proof verification (RFC 9162, section 2.1).

The hash is SHA-256 and the leaf and node prefixes are 0x00 and 0x01. They are
fixed here: no proof, receipt or caller can choose them.

Each ``verify_*`` routine has a ``compute_*`` partner that derives the root
from the proof without comparing it, so the arithmetic can be tested on its
own. Preconditions are checked before any hashing and raise
``MalformedInput``; a well-formed proof that leads to another root raises
``ProofMismatch``.
"""

import hashlib
import hmac
from collections.abc import Sequence

from verifier._encoding import decode_hash, decode_utf8, encode_base64, shorten
from verifier.errors import MalformedInput, ProofMismatch

HASH_SIZE = 32
EMPTY_ROOT = hashlib.sha256(b"").digest()

_LEAF_PREFIX = b"\x00"
_NODE_PREFIX = b"\x01"
# RFC 9162 tree sizes and indices are unsigned 64-bit integers.
_SIZE_LIMIT = 2**64


def leaf_hash(entry: bytes) -> bytes:
    """Return the RFC 9162 leaf hash ``SHA-256(0x00 || entry)``."""
    if not isinstance(entry, (bytes, bytearray)):
        raise MalformedInput(
            f"leaf entry: expected bytes, got {type(entry).__name__}"
        )
    return hashlib.sha256(_LEAF_PREFIX + bytes(entry)).digest()


def node_hash(left: bytes, right: bytes) -> bytes:
    """Return the RFC 9162 interior node hash ``SHA-256(0x01 || left || right)``."""
    return hashlib.sha256(_NODE_PREFIX + left + right).digest()


def inclusion_proof_length(index: int, size: int) -> int:
    """Return how many hashes the inclusion proof for ``index`` in ``size`` has.

    Requires ``0 <= index < size``. The audit path climbs from the leaf to the
    root. Below the highest level where the paths to ``index`` and to the last
    leaf ``size - 1`` part, every level adds one sibling. Above it, the leaf
    lies in a complete left subtree at each set bit of the remaining index
    bits, and each such subtree adds one more sibling.
    """
    _require_count(index, "index")
    _require_count(size, "tree size")
    if index >= size:
        raise MalformedInput(
            f"inclusion proof: expected an index less than the tree size "
            f"{size}, got index {index}"
        )

    inner = (index ^ (size - 1)).bit_length()
    border = (index >> inner).bit_count()
    return inner + border


def consistency_proof_length(size1: int, size2: int) -> int:
    """Return how many hashes the consistency proof from ``size1`` to ``size2`` has.

    Requires ``0 < size1 <= size2``. The proof is the inclusion path of leaf
    ``size1 - 1`` in the tree of ``size2``, minus the levels inside the
    largest complete subtree that ends at ``size1``. The root of that subtree
    is sent in their place, unless ``size1`` is a power of two: then that root
    is the first root itself. Equal sizes need no hashes.
    """
    _require_sizes(size1, size2)
    if size1 == size2:
        return 0

    inner = ((size1 - 1) ^ (size2 - 1)).bit_length()
    border = ((size1 - 1) >> inner).bit_count()
    shift = _trailing_zeros(size1)
    seed = 0 if size1 == 1 << shift else 1
    return seed + inner - shift + border


def compute_root_from_inclusion(
    leaf_hash: bytes, index: int, size: int, proof: Sequence[bytes]
) -> bytes:
    """Return the root that an inclusion proof implies for one leaf.

    Requires ``0 <= index < size``, a 32-byte leaf hash and exactly
    ``inclusion_proof_length(index, size)`` proof hashes of 32 bytes each.
    Raises ``MalformedInput`` when a requirement fails.
    """
    # Preconditions, before any hashing.
    _require_hash(leaf_hash, "leaf hash")
    expected = inclusion_proof_length(index, size)
    hashes = _require_proof(proof, "inclusion proof")
    if len(hashes) != expected:
        raise MalformedInput(
            f"inclusion proof for index {index} in a tree of size {size}: "
            f"expected {expected} hashes, got {len(hashes)}"
        )

    # RFC 9162 section 2.1.3.2, steps 2 to 5. The length check above makes the
    # RFC's "sn is 0" failure impossible inside the loop, and leaves sn at 0.
    fn, sn = index, size - 1
    root = bytes(leaf_hash)
    for sibling in hashes:
        if fn & 1 or fn == sn:
            # The sibling is on the left.
            root = node_hash(sibling, root)
            # Skip the levels where this node has no right sibling, because
            # it is the last node of an incomplete level.
            while not fn & 1 and fn != 0:
                fn >>= 1
                sn >>= 1
        else:
            root = node_hash(root, sibling)
        fn >>= 1
        sn >>= 1
    return root


def verify_inclusion(
    leaf_hash: bytes, index: int, size: int, proof: Sequence[bytes], root: bytes
) -> None:
    """Verify that ``leaf_hash`` is leaf ``index`` of the tree with ``root``.

    Plan (RFC 9162 section 2.1.3.2):

    1. check the preconditions: ``0 <= index < size``, 32-byte hashes, and a
       proof of exactly the length that ``index`` and ``size`` require;
    2. compute the root from the leaf hash and the audit path;
    3. compare it with ``root`` in constant time.

    Raises ``MalformedInput`` for a failed precondition and ``ProofMismatch``
    when the computed root differs.
    """
    # Step 1.
    _require_hash(leaf_hash, "leaf hash")
    _require_hash(root, "root")

    # Steps 1 and 2.
    computed = compute_root_from_inclusion(leaf_hash, index, size, proof)

    # Step 3.
    if not hmac.compare_digest(computed, bytes(root)):
        raise ProofMismatch(
            f"inclusion proof for index {index} in a tree of size {size}: "
            f"expected root {encode_base64(bytes(root))}, "
            f"computed {encode_base64(computed)}"
        )


def compute_roots_from_consistency(
    size1: int, size2: int, proof: Sequence[bytes], root1: bytes
) -> tuple[bytes, bytes]:
    """Return the first and second roots that a consistency proof implies.

    Requires ``0 < size1 <= size2``, a 32-byte ``root1`` and exactly
    ``consistency_proof_length(size1, size2)`` proof hashes of 32 bytes each.
    ``root1`` seeds the computation when ``size1`` is a power of two, as the
    RFC prescribes, so the first computed root then equals ``root1``. For
    equal sizes both computed roots are ``root1``. Raises ``MalformedInput``
    when a requirement fails.
    """
    # Preconditions, before any hashing.
    _require_hash(root1, "first root")
    expected = consistency_proof_length(size1, size2)
    hashes = _require_proof(proof, "consistency proof")
    if len(hashes) != expected:
        raise MalformedInput(
            f"consistency proof for tree sizes {size1} -> {size2}: "
            f"expected {expected} hashes, got {len(hashes)}"
        )
    if size1 == size2:
        return bytes(root1), bytes(root1)

    # RFC 9162 section 2.1.4.2, step 2: a power-of-two first tree is itself a
    # complete subtree, so its root starts the path.
    path = list(hashes)
    if size1 & (size1 - 1) == 0:
        path.insert(0, bytes(root1))

    # Steps 3 and 4: start at the level where leaf size1 - 1 is a left child.
    fn, sn = size1 - 1, size2 - 1
    while fn & 1:
        fn >>= 1
        sn >>= 1

    # Steps 5 and 6. The length check above makes the RFC's "sn is 0"
    # failure impossible inside the loop, and leaves sn at 0 for step 7.
    first = second = path[0]
    for node in path[1:]:
        if fn & 1 or fn == sn:
            # The node is a left sibling: it is part of both trees.
            first = node_hash(node, first)
            second = node_hash(node, second)
            while not fn & 1 and fn != 0:
                fn >>= 1
                sn >>= 1
        else:
            # The node is a right sibling: it exists only in the second tree.
            second = node_hash(second, node)
        fn >>= 1
        sn >>= 1
    return first, second


def verify_consistency(
    size1: int, size2: int, proof: Sequence[bytes], root1: bytes, root2: bytes
) -> None:
    """Verify that the tree with ``root2`` extends the tree with ``root1``.

    Plan (RFC 9162 section 2.1.4.2):

    1. check the preconditions: ``0 < size1 <= size2``, 32-byte hashes, and a
       proof of exactly the length that the sizes require, which is empty for
       equal sizes. A first size of 0 is always rejected, even from 0 to 0,
       because such a proof proves nothing;
    2. compute both roots from the proof, seeded with ``root1`` when
       ``size1`` is a power of two;
    3. compare both with the given roots in constant time.

    Raises ``MalformedInput`` for a failed precondition and ``ProofMismatch``
    when a computed root differs.
    """
    # Step 1.
    _require_hash(root1, "first root")
    _require_hash(root2, "second root")

    # Steps 1 and 2.
    computed1, computed2 = compute_roots_from_consistency(size1, size2, proof, root1)

    # Step 3. Both comparisons run, so the time does not show which failed.
    first_ok = hmac.compare_digest(computed1, bytes(root1))
    second_ok = hmac.compare_digest(computed2, bytes(root2))
    if not first_ok:
        raise ProofMismatch(
            f"consistency proof for tree sizes {size1} -> {size2}: "
            f"expected first root {encode_base64(bytes(root1))}, "
            f"computed {encode_base64(computed1)}"
        )
    if not second_ok:
        raise ProofMismatch(
            f"consistency proof for tree sizes {size1} -> {size2}: "
            f"expected second root {encode_base64(bytes(root2))}, "
            f"computed {encode_base64(computed2)}"
        )


def parse_proof_text(text: str | bytes) -> list[bytes]:
    """Parse proof text: one base64 SHA-256 hash per line, in proof order.

    Each line is standard padded base64 of exactly 32 bytes and ends in a
    newline; empty text is the empty proof. Raises ``MalformedInput`` naming
    the line otherwise. The text carries no sizes: the caller takes them from
    the checkpoints the proof connects.
    """
    if isinstance(text, (bytes, bytearray)):
        text = decode_utf8(bytes(text), "proof text")
    elif not isinstance(text, str):
        raise MalformedInput(
            f"proof text: expected str or bytes, got {type(text).__name__}"
        )
    if not text:
        return []
    if not text.endswith("\n"):
        raise MalformedInput(
            "proof text: expected the last line to end with a newline, got "
            f"{shorten(text[-20:])} at the end"
        )
    return [
        decode_hash(line, f"proof line {number}")
        for number, line in enumerate(text[:-1].split("\n"), start=1)
    ]


def _require_count(value: object, label: str) -> None:
    # bool is an int subclass, but True is never a meaningful index or size.
    if not isinstance(value, int) or isinstance(value, bool):
        raise MalformedInput(
            f"{label}: expected an integer, got {type(value).__name__}"
        )
    if not 0 <= value < _SIZE_LIMIT:
        raise MalformedInput(
            f"{label}: expected an integer in [0, 2^64), got {value}"
        )


def _require_sizes(size1: int, size2: int) -> None:
    _require_count(size1, "first tree size")
    _require_count(size2, "second tree size")
    if size1 == 0:
        raise MalformedInput(
            f"consistency proof for tree sizes {size1} -> {size2}: the first "
            "size must be at least 1, because every tree extends the empty tree"
        )
    if size1 > size2:
        raise MalformedInput(
            f"consistency proof for tree sizes {size1} -> {size2}: the first "
            "size must not exceed the second"
        )


def _require_hash(value: object, label: str) -> None:
    if not isinstance(value, (bytes, bytearray)):
        raise MalformedInput(f"{label}: expected bytes, got {type(value).__name__}")
    if len(value) != HASH_SIZE:
        raise MalformedInput(
            f"{label}: expected a {HASH_SIZE}-byte SHA-256 hash, got {len(value)} bytes"
        )


def _require_proof(proof: object, label: str) -> list[bytes]:
    if isinstance(proof, (str, bytes, bytearray)) or not isinstance(proof, Sequence):
        raise MalformedInput(
            f"{label}: expected a sequence of hashes, got {type(proof).__name__}"
        )

    hashes = []
    for position, value in enumerate(proof):
        _require_hash(value, f"{label} hash {position}")
        hashes.append(bytes(value))
    return hashes


def _trailing_zeros(value: int) -> int:
    return (value & -value).bit_length() - 1
