"""Witness policies: parsing, and k-of-n counting of distinct witness keys."""

import base64

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from tests.verifier.signing import TestSigner, checkpoint_text, cosigner_keys, sign_note
from verifier.cosignature import (
    compute_cosigner_key_id,
    generate_cosigner,
    parse_cosigner_signer_key,
)
from verifier.errors import BadSignature, MalformedInput, QuorumNotMet
from verifier.witness_policy import load_witness_policy, parse_witness_policy

ORIGIN = "agentgate.example/policy"
LOG = TestSigner.from_seed_text(ORIGIN, "witness policy tests: log")
BODY = checkpoint_text(ORIGIN, 3, bytes(32))
PAIRS = [
    cosigner_keys(f"witness.example/w{n}", f"policy tests: w{n}") for n in range(3)
]
SIGNERS = [parse_cosigner_signer_key(signer) for signer, _ in PAIRS]
KEYS = [key for _, key in PAIRS]


def policy_text(quorum: int, keys=KEYS) -> str:
    lines = [f"witness w{n} {key}" for n, key in enumerate(keys)]
    return "# test policy\n\n" + "\n".join(lines) + f"\nquorum {quorum}\n"


def note_with(*signers) -> str:
    return sign_note(BODY, LOG) + "".join(s.cosign(BODY, 100) for s in signers)


def test_two_of_three_met():
    policy = parse_witness_policy(policy_text(2))
    counted = policy.check(note_with(SIGNERS[0], SIGNERS[2]))
    assert sorted(c.key.name for c in counted) == [
        "witness.example/w0",
        "witness.example/w2",
    ]


def test_two_of_three_not_met():
    policy = parse_witness_policy(policy_text(2))
    with pytest.raises(
        QuorumNotMet,
        match=r"at least 2 distinct witness keys of 3, "
        r"got 1 \(witness.example/w1\)",
    ):
        policy.check(note_with(SIGNERS[1]))


def test_same_key_twice_counts_once():
    policy = parse_witness_policy(policy_text(2))
    with pytest.raises(QuorumNotMet, match="got 1"):
        policy.check(note_with(SIGNERS[0], SIGNERS[0]))


def renamed(signer_text: str, name: str) -> str:
    """Return the signer key text of the same seed under another name."""
    _, _, _, _, encoded = signer_text.split("+", 4)
    seed = base64.b64decode(encoded)[1:]
    public = Ed25519PrivateKey.from_private_bytes(seed).public_key().public_bytes_raw()
    key_id = compute_cosigner_key_id(name, public).hex()
    return f"PRIVATE+KEY+{name}+{key_id}+{encoded}"


def test_one_key_under_two_names_counts_once():
    alias = parse_cosigner_signer_key(renamed(PAIRS[0][0], "witness.example/alias"))
    keys = [KEYS[0], alias.verifier_key.text, KEYS[1]]
    policy = parse_witness_policy(policy_text(2, keys))

    assert len(policy.distinct_keys()) == 2
    with pytest.raises(QuorumNotMet, match="got 1"):
        policy.check(note_with(SIGNERS[0], alias))
    assert len(policy.check(note_with(alias, SIGNERS[1]))) == 2


def test_unknown_witness_ignored():
    other = parse_cosigner_signer_key(generate_cosigner("witness.example/stranger")[0])
    policy = parse_witness_policy(policy_text(1))
    with pytest.raises(QuorumNotMet, match="got 0 .none."):
        policy.check(note_with(other))


def test_bad_cosignature_of_known_witness_fails_closed():
    note = note_with(SIGNERS[0], SIGNERS[1]).replace("\n3\n", "\n4\n", 1)
    with pytest.raises(BadSignature):
        parse_witness_policy(policy_text(1)).check(note)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("quorum 1\n", "expected at least one witness line, found none"),
        (f"witness w0 {KEYS[0]}\n", "expected a 'quorum <k>' line, found none"),
        (f"witness w0 {KEYS[0]}\nquorum 2\n", "quorum 2 must lie between 1 and the 1"),
        (f"witness w0 {KEYS[0]}\nquorum 0\n", "quorum 0 must lie between 1 and the 1"),
        (
            f"witness w0 {KEYS[0]}\nwitness w0 {KEYS[1]}\nquorum 1\n",
            "line 2: witness 'w0' is listed twice",
        ),
        (f"witness w0 {KEYS[0]}\nquorum 1\nquorum 1\n", "line 3: a second quorum line"),
        (
            f"witness w0 {LOG.verifier_key}\nquorum 1\n",
            r"line 1: cosigner key .*type 0x01",
        ),
        (
            "log x y\n",
            "line 1: expected 'witness <label> <cosigner key>' or 'quorum <k>'",
        ),
        (f"witness bad/label {KEYS[0]}\nquorum 1\n", "expected a label of letters"),
    ],
)
def test_policy_errors(text, message):
    with pytest.raises(MalformedInput, match=message):
        parse_witness_policy(text)


def test_load_from_file(tmp_path):
    path = tmp_path / "policy.txt"
    path.write_text(policy_text(3))
    assert load_witness_policy(path).quorum == 3
