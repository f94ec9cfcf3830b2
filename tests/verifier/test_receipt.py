"""Receipts: a valid receipt, and one named case per mutation."""

import base64

import pytest
import rfc8785

from tests.verifier.signing import (
    TestLog,
    TestSigner,
    b64,
    checkpoint_text,
    receipt_text,
    sign_note,
)
from verifier import (
    EMPTY_ROOT,
    BadSignature,
    MalformedInput,
    OriginMismatch,
    ProofMismatch,
    UnknownKey,
    leaf_hash,
    parse_receipt,
    verify_receipt,
)

ORIGIN = "agentgate.example/receipts"
SIGNER = TestSigner.from_seed_text(ORIGIN, "receipt tests: log")
WITNESS = TestSigner.from_seed_text("witness.example", "receipt tests: witness")
LOG = TestLog(SIGNER, ORIGIN, 7)
INDEX = 3
RECEIPT = LOG.receipt(INDEX)
KEYS = [SIGNER.verifier_key]


def lines() -> list[str]:
    return RECEIPT.split("\n")


def replace_line(number: int, text: str) -> str:
    """Return the receipt with its 1-based line ``number`` replaced."""
    parts = lines()
    parts[number - 1] = text
    return "\n".join(parts)


def receipt_for_entry(entry: bytes) -> str:
    """Return a receipt for a one-entry log whose only entry is ``entry``."""
    checkpoint = sign_note(checkpoint_text(ORIGIN, 1, leaf_hash(entry)), SIGNER)
    return receipt_text(0, entry, [], checkpoint)


def test_valid_receipt_verifies():
    result = verify_receipt(RECEIPT, KEYS, ORIGIN)

    assert result.index == INDEX
    assert result.entry == LOG.entries[INDEX]
    assert result.leaf_hash == leaf_hash(LOG.entries[INDEX])
    assert result.record["id"] == f"d-{INDEX:032x}"
    assert result.checkpoint.size == 7
    assert result.checkpoint.origin == ORIGIN
    assert result.key_names == (ORIGIN,)


def test_valid_receipt_as_bytes_verifies():
    assert verify_receipt(RECEIPT.encode(), KEYS, ORIGIN).index == INDEX


def test_every_index_and_size_verifies():
    for size in range(1, 8):
        for index in range(size):
            assert verify_receipt(LOG.receipt(index, size), KEYS).index == index


def test_single_entry_tree_has_no_proof_lines():
    receipt = LOG.receipt(0, 1)
    assert parse_receipt(receipt).proof == ()
    assert verify_receipt(receipt, KEYS).checkpoint.size == 1


def test_parse_receipt_splits_parts():
    parsed = parse_receipt(RECEIPT)

    assert parsed.index == INDEX
    assert parsed.entry == LOG.entries[INDEX]
    assert len(parsed.proof) == 3
    assert parsed.checkpoint == LOG.checkpoint()


# One named case per mutation.


def test_index_plus_one_fails():
    receipt = replace_line(3, f"index {INDEX + 1}")
    with pytest.raises(
        ProofMismatch,
        match="index 4 in a tree of size 7: expected root",
    ):
        verify_receipt(receipt, KEYS, ORIGIN)


def test_index_minus_one_fails():
    receipt = replace_line(3, f"index {INDEX - 1}")
    with pytest.raises(
        ProofMismatch,
        match="index 2 in a tree of size 7: expected root",
    ):
        verify_receipt(receipt, KEYS, ORIGIN)


def test_extra_proof_line_fails():
    receipt = replace_line(6, lines()[5] + "\n" + b64(bytes(32)))
    with pytest.raises(MalformedInput, match="expected 3 hashes, got 4"):
        verify_receipt(receipt, KEYS, ORIGIN)


def test_truncated_proof_fails():
    parts = lines()
    del parts[5]
    with pytest.raises(MalformedInput, match="expected 3 hashes, got 2"):
        verify_receipt("\n".join(parts), KEYS, ORIGIN)


def test_reordered_proof_lines_fail():
    parts = lines()
    parts[3], parts[4] = parts[4], parts[3]
    with pytest.raises(ProofMismatch, match="expected root"):
        verify_receipt("\n".join(parts), KEYS, ORIGIN)


def test_flipped_proof_byte_fails():
    digest = bytearray(base64.b64decode(lines()[3]))
    digest[0] ^= 0x80
    receipt = replace_line(4, b64(bytes(digest)))
    with pytest.raises(ProofMismatch, match="expected root"):
        verify_receipt(receipt, KEYS, ORIGIN)


def test_wrong_key_fails():
    other = TestSigner.from_seed_text(ORIGIN, "receipt tests: another log key")
    with pytest.raises(UnknownKey, match="expected a signature by one of"):
        verify_receipt(RECEIPT, [other.verifier_key], ORIGIN)


def test_reordered_signature_lines_verify():
    # Signature order carries no meaning in a signed note.
    body = checkpoint_text(ORIGIN, 7, LOG.tree.root(7))
    log_line, witness_line = SIGNER.signature_line(body), WITNESS.signature_line(body)
    checkpoint = body + "\n" + witness_line + log_line
    proof = LOG.tree.path(INDEX, 7)
    receipt = receipt_text(INDEX, LOG.entries[INDEX], proof, checkpoint)

    result = verify_receipt(receipt, [SIGNER.verifier_key, WITNESS.verifier_key])

    assert result.key_names == ("witness.example", ORIGIN)


def test_reordered_checkpoint_lines_fail():
    body = checkpoint_text(ORIGIN, 7, LOG.tree.root(7))
    origin, size, root, _ = body.split("\n")
    swapped = "\n".join([origin, root, size, ""])
    checkpoint = swapped + "\n" + SIGNER.signature_line(body)
    proof = LOG.tree.path(INDEX, 7)
    receipt = receipt_text(INDEX, LOG.entries[INDEX], proof, checkpoint)

    with pytest.raises(BadSignature, match="does not verify over the note text"):
        verify_receipt(receipt, KEYS, ORIGIN)


def test_flipped_entry_byte_fails():
    entry = bytearray(LOG.entries[INDEX])
    entry[10] ^= 0x01
    receipt = replace_line(2, "extra " + b64(bytes(entry)))
    with pytest.raises(
        ProofMismatch,
        match="index 3 in a tree of size 7: expected root",
    ):
        verify_receipt(receipt, KEYS, ORIGIN)


def test_missing_extra_line_fails():
    parts = lines()
    del parts[1]
    message = "receipt line 2: expected 'extra <base64 entry>'.* got 'index 3'"
    with pytest.raises(MalformedInput, match=message):
        verify_receipt("\n".join(parts), KEYS, ORIGIN)


def test_empty_extra_line_fails():
    receipt = replace_line(2, "extra ")
    with pytest.raises(
        MalformedInput,
        match="receipt line 2 \\(extra\\): expected the entry",
    ):
        verify_receipt(receipt, KEYS, ORIGIN)


def test_non_canonical_base64_proof_line_fails():
    line = lines()[3]
    alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"
    bumped = line[:-2] + alphabet[alphabet.index(line[-2]) + 1] + "="
    receipt = replace_line(4, bumped)

    message = "receipt line 4 \\(proof hash\\): expected the canonical base64 encoding"
    with pytest.raises(MalformedInput, match=message):
        verify_receipt(receipt, KEYS, ORIGIN)


def test_extra_with_stray_character_fails():
    receipt = replace_line(2, lines()[1] + "A")
    with pytest.raises(
        MalformedInput,
        match="receipt line 2 \\(extra\\): expected standard",
    ):
        verify_receipt(receipt, KEYS, ORIGIN)


def test_crlf_line_endings_fail():
    receipt = RECEIPT.replace("\n", "\r\n")
    message = "receipt line 1: .* got U\\+000D; receipts use LF line endings"
    with pytest.raises(MalformedInput, match=message):
        verify_receipt(receipt, KEYS, ORIGIN)


def test_trailing_garbage_line_fails():
    with pytest.raises(MalformedInput, match="note line 6: expected a signature line"):
        verify_receipt(RECEIPT + "garbage\n", KEYS, ORIGIN)


def test_trailing_garbage_without_newline_fails():
    with pytest.raises(
        MalformedInput,
        match="expected the last line to end with a newline",
    ):
        verify_receipt(RECEIPT + "garbage", KEYS, ORIGIN)


def test_trailing_blank_line_fails():
    with pytest.raises(MalformedInput, match="expected at least one signature line"):
        verify_receipt(RECEIPT + "\n", KEYS, ORIGIN)


def test_wrong_origin_fails():
    message = (
        "expected origin 'agentgate.example/other', got 'agentgate.example/receipts'"
    )
    with pytest.raises(OriginMismatch, match=message):
        verify_receipt(RECEIPT, KEYS, "agentgate.example/other")


def test_size_zero_checkpoint_fails():
    checkpoint = sign_note(checkpoint_text(ORIGIN, 0, EMPTY_ROOT), SIGNER)
    receipt = receipt_text(0, LOG.entries[0], [], checkpoint)

    message = "expected an index less than the checkpoint's tree size 0, got index 0"
    with pytest.raises(MalformedInput, match=message):
        verify_receipt(receipt, KEYS, ORIGIN)


def test_index_beyond_size_fails():
    receipt = replace_line(3, "index 7")
    with pytest.raises(MalformedInput, match="tree size 7, got index 7"):
        verify_receipt(receipt, KEYS, ORIGIN)


# Malformed structure.


def test_wrong_header_fails():
    receipt = replace_line(1, "c2sp.org/tlog-proof@v2")
    message = (
        "receipt line 1: expected 'c2sp.org/tlog-proof@v1', "
        "got 'c2sp.org/tlog-proof@v2'"
    )
    with pytest.raises(MalformedInput, match=message):
        verify_receipt(receipt, KEYS, ORIGIN)


def test_index_with_leading_zero_fails():
    receipt = replace_line(3, f"index 0{INDEX}")
    with pytest.raises(
        MalformedInput,
        match="receipt line 3 \\(index\\): expected a decimal",
    ):
        verify_receipt(receipt, KEYS, ORIGIN)


def test_missing_index_line_fails():
    parts = lines()
    del parts[2]
    with pytest.raises(
        MalformedInput,
        match="receipt line 3: expected 'index <decimal",
    ):
        verify_receipt("\n".join(parts), KEYS, ORIGIN)


def test_missing_blank_line_fails():
    receipt = RECEIPT.replace("\n\n", "\n", 1)
    with pytest.raises(MalformedInput, match="receipt line 7 \\(proof hash\\)"):
        verify_receipt(receipt, KEYS, ORIGIN)


def test_no_blank_line_at_all_fails():
    with pytest.raises(MalformedInput, match="expected a blank line between the proof"):
        verify_receipt("c2sp.org/tlog-proof@v1\n", KEYS, ORIGIN)


def test_missing_checkpoint_fails():
    head = RECEIPT.split("\n\n")[0]
    with pytest.raises(
        MalformedInput,
        match="expected a checkpoint after the blank line",
    ):
        verify_receipt(head + "\n\n", KEYS, ORIGIN)


def test_invalid_utf8_fails():
    with pytest.raises(MalformedInput, match="receipt: expected UTF-8 text"):
        verify_receipt(RECEIPT.encode() + b"\xff", KEYS, ORIGIN)


def test_non_text_fails():
    with pytest.raises(
        MalformedInput,
        match="receipt: expected str or bytes, got NoneType",
    ):
        verify_receipt(None, KEYS, ORIGIN)


# Entries that are in the log but are not canonical records.


def test_non_canonical_entry_fails():
    receipt = receipt_for_entry(b'{"b":1,"a":2}')
    message = "expected the RFC 8785 canonical form of the record, .* at offset 2"
    with pytest.raises(MalformedInput, match=message):
        verify_receipt(receipt, KEYS, ORIGIN)


def test_entry_with_white_space_fails():
    receipt = receipt_for_entry(b'{"a": 1}')
    with pytest.raises(MalformedInput, match="at offset 5: expected b'1}', got b' 1}'"):
        verify_receipt(receipt, KEYS, ORIGIN)


def test_entry_with_duplicate_names_fails():
    receipt = receipt_for_entry(b'{"a":1,"a":2}')
    with pytest.raises(
        MalformedInput,
        match="receipt entry: JSON object: expected unique",
    ):
        verify_receipt(receipt, KEYS, ORIGIN)


def test_entry_with_lone_surrogate_fails():
    receipt = receipt_for_entry(b'{"a":"\\ud800"}')
    with pytest.raises(
        MalformedInput,
        match="receipt entry: .* lone surrogate U\\+D800",
    ):
        verify_receipt(receipt, KEYS, ORIGIN)


def test_entry_that_is_an_array_fails():
    receipt = receipt_for_entry(rfc8785.dumps([1, 2]))
    with pytest.raises(MalformedInput, match="expected a JSON object, got an array"):
        verify_receipt(receipt, KEYS, ORIGIN)


def test_entry_that_is_not_json_fails():
    receipt = receipt_for_entry(b"not json")
    with pytest.raises(MalformedInput, match="receipt entry: JSON: invalid at line 1"):
        verify_receipt(receipt, KEYS, ORIGIN)


def test_more_than_63_proof_lines_fail():
    parts = lines()
    parts[3:6] = [b64(bytes(32))] * 64
    with pytest.raises(MalformedInput, match="expected at most 63 proof lines, got 64"):
        verify_receipt("\n".join(parts), KEYS, ORIGIN)
