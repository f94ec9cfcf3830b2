"""Regulator bundles, written by hand as specs/bundle.md defines them, and one
case per mutation."""

import hashlib
import json
import zipfile

import rfc8785
from click.testing import CliRunner

from tests.verifier.reference import ReferenceTree
from tests.verifier.signing import (
    TestSigner,
    b64,
    checkpoint_text,
    receipt_text,
    sign_note,
)
from verifier.cli import verify
from verifier.cosignature import generate_cosigner, parse_cosigner_signer_key
from verifier.opening import compute_commitment

ORIGIN = "agentgate.example/bundled"
SIGNER = TestSigner.from_seed_text(ORIGIN, "bundle tests: log")
OTHER = TestSigner.from_seed_text(ORIGIN, "bundle tests: not the log")
WITNESS_SIGNER, WITNESS_KEY = generate_cosigner("witness.example/bundle")
WITNESS = parse_cosigner_signer_key(WITNESS_SIGNER)
SALT = bytes(range(32))
SIZES = (3, 7, 10)


def make_record(n: int) -> dict:
    return {
        "type": "decision",
        "version": 1,
        "id": f"d-{n:032x}",
        "time": f"2026-12-04T09:00:{n:02d}.000000Z",
        "tool": "send_money",
        "arguments": {"amount": compute_commitment(SALT, 10 * n)},
        "verdict": "allow",
    }


RECORDS = [make_record(n) for n in range(10)]
ENTRIES = [rfc8785.dumps(r) for r in RECORDS]
TREE = ReferenceTree(ENTRIES)


def checkpoint(size: int, tree=TREE, signer=SIGNER, cosign=True) -> str:
    body = checkpoint_text(ORIGIN, size, tree.root(size))
    note = sign_note(body, signer)
    return note + (WITNESS.cosign(body, 1_000) if cosign else "")


def files(**changes) -> dict[str, bytes]:
    """Return the files of a valid bundle, with some replaced or removed."""
    content = {f"checkpoints/{s}.checkpoint": checkpoint(s) for s in SIZES}
    content["consistency/3-7.proof"] = "".join(b64(h) + "\n" for h in TREE.proof(3, 7))
    content["consistency/7-10.proof"] = "".join(
        b64(h) + "\n" for h in TREE.proof(7, 10)
    )
    for index, size in ((1, 3), (5, 7), (8, 10)):
        content[f"receipts/{index}.tlog-proof"] = receipt_text(
            index, ENTRIES[index], TREE.path(index, size), checkpoint(size)
        )
    opening = {
        "commitment": RECORDS[5]["arguments"]["amount"],
        "record": RECORDS[5]["id"],
        "argument": "amount",
        "value": 50,
        "salt": SALT.hex(),
    }
    content[f"openings/{RECORDS[5]['id']}.amount.json"] = json.dumps(opening)
    content.update(changes)
    return {
        name: (data.encode() if isinstance(data, str) else data)
        for name, data in content.items()
        if data is not None
    }


def manifest(content: dict[str, bytes], **changes) -> bytes:
    document = {
        "type": "agentgate.bundle",
        "version": 1,
        "origin": ORIGIN,
        "since": "2026-12-04T00:00:00Z",
        "until": "2026-12-05T00:00:00Z",
        "files": {n: hashlib.sha256(d).hexdigest() for n, d in content.items()},
    }
    document.update(changes)
    return json.dumps(document, indent=2).encode()


def write(directory, content, manifest_bytes=None):
    directory.mkdir()
    for name, data in content.items():
        path = directory / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
    (directory / "manifest.json").write_bytes(manifest_bytes or manifest(content))
    return directory


def run(path, *options):
    result = CliRunner().invoke(
        verify, ["bundle", str(path), "--key", SIGNER.verifier_key, *options]
    )
    assert result.exception is None or isinstance(result.exception, SystemExit)
    return result


def test_valid_directory(tmp_path):
    path = write(tmp_path / "bundle", files())
    result = run(path, "--origin", ORIGIN)
    assert result.exit_code == 0, result.output
    assert result.output == (
        f"PASS {path}: {ORIGIN}: 3 checkpoints (tree sizes 3 to 10), 2 consistency "
        "proofs, 3 receipts, 1 openings\n"
    )


def test_valid_zip(tmp_path):
    content = files()
    archive = tmp_path / "bundle.zip"
    with zipfile.ZipFile(archive, "w", zipfile.ZIP_DEFLATED) as zipped:
        for name, data in content.items():
            zipped.writestr(name, data)
        zipped.writestr("manifest.json", manifest(content))
    assert run(archive).exit_code == 0


def test_witness_policy(tmp_path):
    policy = tmp_path / "policy"
    policy.write_text(f"witness w {WITNESS_KEY}\nquorum 1\n")
    assert (
        run(write(tmp_path / "b1", files()), "--witness-policy", str(policy)).exit_code
        == 0
    )

    bare = files(**{"checkpoints/7.checkpoint": checkpoint(7, cosign=False)})
    bare["receipts/5.tlog-proof"] = receipt_text(
        5, ENTRIES[5], TREE.path(5, 7), checkpoint(7, cosign=False)
    ).encode()
    result = run(write(tmp_path / "b2", bare), "--witness-policy", str(policy))
    assert result.exit_code == 1
    assert "checkpoints/7.checkpoint: QuorumNotMet" in result.output


def failure(tmp_path, content, manifest_bytes=None, *options):
    result = run(write(tmp_path / "bundle", content, manifest_bytes), *options)
    assert result.exit_code == 1, result.output
    return result.output


def test_file_changed_after_manifest(tmp_path):
    content = files()
    listed = manifest(content)
    content["receipts/1.tlog-proof"] = content["receipts/5.tlog-proof"]
    output = failure(tmp_path, content, listed)
    assert "receipts/1.tlog-proof: SHA-256 is " in output
    assert "receipts/1.tlog-proof: MalformedInput: the receipt proves index 5" in output


def test_unlisted_file(tmp_path):
    content = files()
    listed = manifest(
        {n: d for n, d in content.items() if not n.startswith("openings")}
    )
    assert "the manifest does not list it" in failure(tmp_path, content, listed)


def test_missing_file(tmp_path):
    content = files()
    listed = manifest(content)
    del content["receipts/8.tlog-proof"]
    assert "receipts/8.tlog-proof: listed in the manifest but missing" in failure(
        tmp_path, content, listed
    )


def test_checkpoint_by_other_key(tmp_path):
    output = failure(
        tmp_path, files(**{"checkpoints/10.checkpoint": checkpoint(10, signer=OTHER)})
    )
    assert "checkpoints/10.checkpoint: UnknownKey" in output


def test_checkpoint_size_differs_from_name(tmp_path):
    output = failure(tmp_path, files(**{"checkpoints/10.checkpoint": checkpoint(7)}))
    assert "tree size 7, not the 10 of its file name" in output


def test_missing_consistency_proof(tmp_path):
    output = failure(tmp_path, files(**{"consistency/7-10.proof": None}))
    assert "consistency/7-10.proof: missing" in output


def test_wrong_consistency_proof(tmp_path):
    proof = "".join(b64(h) + "\n" for h in TREE.proof(3, 7))
    output = failure(tmp_path, files(**{"consistency/7-10.proof": proof}))
    assert (
        "consistency/7-10.proof: MalformedInput: consistency proof for tree "
        "sizes 7 -> 10: expected 5 hashes, got 4"
    ) in output


def test_forked_checkpoint_signed_by_log(tmp_path):
    forked = ReferenceTree(ENTRIES[:9] + [b'{"forked":true}'])
    content = files(
        **{
            "checkpoints/10.checkpoint": checkpoint(10, tree=forked),
            "receipts/8.tlog-proof": None,
        }
    )
    output = failure(tmp_path, content)
    assert "consistency/7-10.proof: ProofMismatch" in output


def test_extra_proof_file(tmp_path):
    proof = "".join(b64(h) + "\n" for h in TREE.proof(3, 10))
    assert "connects no two consecutive checkpoints" in failure(
        tmp_path, files(**{"consistency/3-10.proof": proof})
    )


def test_receipt_against_foreign_checkpoint(tmp_path):
    receipt = receipt_text(1, ENTRIES[1], TREE.path(1, 4), checkpoint(4))
    output = failure(tmp_path, files(**{"receipts/1.tlog-proof": receipt}))
    assert "tree size 4 is not one of the bundle's checkpoints" in output


def test_record_outside_period(tmp_path):
    content = files()
    listed = manifest(content, until="2026-12-04T09:00:04Z")
    output = failure(tmp_path, content, listed)
    assert (
        "receipts/5.tlog-proof: MalformedInput: record time 2026-12-04T09:00:05"
        in output
    )


def test_opening_wrong_value(tmp_path):
    name = f"openings/{RECORDS[5]['id']}.amount.json"
    opening = json.loads(files()[name])
    opening["value"] = 51
    output = failure(tmp_path, files(**{name: json.dumps(opening)}))
    assert f"{name}: ProofMismatch: value and salt give" in output


def test_opening_of_record_without_receipt(tmp_path):
    record = RECORDS[2]
    opening = {
        "commitment": record["arguments"]["amount"],
        "record": record["id"],
        "argument": "amount",
        "value": 20,
        "salt": SALT.hex(),
    }
    name = f"openings/{record['id']}.amount.json"
    output = failure(tmp_path, files(**{name: json.dumps(opening)}))
    assert "is proved by no receipt in the bundle" in output


def test_manifest_errors(tmp_path):
    content = files()
    output = failure(tmp_path, content, manifest(content, type="other"))
    assert output.startswith("FAIL ")
    assert "expected type 'agentgate.bundle' version 1" in output


def test_other_origin(tmp_path):
    path = write(tmp_path / "bundle", files())
    result = run(path, "--origin", "agentgate.example/other")
    assert result.exit_code == 1
    assert "OriginMismatch" in result.output


def test_unsafe_zip_member(tmp_path):
    archive = tmp_path / "bundle.zip"
    with zipfile.ZipFile(archive, "w") as zipped:
        zipped.writestr("../escape", b"x")
    result = run(archive)
    assert result.exit_code == 1
    assert "unsafe member name '../escape'" in result.output
