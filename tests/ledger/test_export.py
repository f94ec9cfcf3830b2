"""``agentgate export``: regulator bundles that ``agentgate verify bundle`` accepts.

The log contains gate-like records whose arguments are committed in a real
argument vault. Every bundle is checked with the verifier's command, which
shares no code with the exporter, and every tampering case must fail there.
"""

import base64
import hashlib
import json
import zipfile
from datetime import datetime, timezone

import pytest
import rfc8785
from click.testing import CliRunner

from enforcement.cli import main
from enforcement.vault import ArgumentVault
from ledger import InvalidRequest, Ledger, write_key_pair
from ledger.export import Disclosure, build_bundle, format_time
from ledger.publish import store_cosigned_checkpoint
from ledger.storage import Store
from verifier import verify_receipt
from verifier.cosignature import generate_cosigner, parse_cosigner_signer_key

from .conftest import FIXED_NOW, run_sql

PERIOD = ["--since", "2026-12-05T09:02:00Z", "--until", "2026-12-05T09:07:00Z"]


def record_id(letter, n):
    return f"{letter}-" + hashlib.sha256(f"record {n}".encode()).hexdigest()[:32]


def decision(vault, n, minute, amount):
    identifier = record_id("d", n)
    arguments = vault.commit_values(
        identifier, {"amount": amount, "recipient": f"acct-{n}"}
    )
    return rfc8785.dumps({
        "type": "decision", "version": 1, "id": identifier,
        "time": f"2026-12-05T09:{minute:02d}:00.000000Z",
        "tool": "send_money", "verdict": "allow", "arguments": arguments,
    })


def outcome(vault, n, minute, result):
    identifier = record_id("o", n)
    commitment = vault.commit_values(identifier, {"result": result})["result"]
    return rfc8785.dumps({
        "type": "outcome", "version": 1, "id": identifier,
        "time": f"2026-12-05T09:{minute:02d}:30.000000Z",
        "decision": record_id("d", n), "result": commitment,
    })


@pytest.fixture
def gate_log(tmp_path, signer):
    """A log of 13 records in batches that end at sizes 1, 4, 8, 11 and 13.

    Leaf 0 is the key record. Leaves 1 to 10 are decisions 0 to 8 at 09:00
    to 09:08, one a minute, with the outcome of decision 4 (09:04:30) at
    leaf 7. Leaves 11 and 12 are decisions 9 and 10 at 09:59. The period
    09:02 to 09:07 contains leaves 3 to 9, so its checkpoints are those of
    sizes 4, 8 and 11.
    """
    db = tmp_path / "log.db"
    vault_path = tmp_path / "vault.db"
    vault = ArgumentVault(str(vault_path))
    batches = [
        [decision(vault, n, n, 100 + n) for n in range(3)],
        [decision(vault, n, n, 100 + n) for n in range(3, 6)]
        + [outcome(vault, 4, 4, {"status": "sent", "id": 4})],
        [decision(vault, n, n, 100 + n) for n in range(6, 9)],
        [decision(vault, n, 59, 100 + n) for n in range(9, 11)],
    ]
    with Ledger.open(db, signer, now=FIXED_NOW) as ledger:
        for batch in batches:
            ledger.append_batch([(entry, None) for entry in batch])
    vault.close()
    keys = tmp_path / "keys"
    keys.mkdir()
    key_file, pub_file = write_key_pair(signer, keys)
    return db, vault_path, key_file, pub_file


def export(db, out, *options):
    return CliRunner().invoke(
        main, ["export", "--db", str(db), "--out", str(out), *options]
    )


def verify(bundle, pub_file, *options):
    return CliRunner().invoke(
        main, ["verify", "bundle", str(bundle), "--key-file", str(pub_file), *options]
    )


def read_manifest(bundle):
    return json.loads((bundle / "manifest.json").read_bytes())


def rewrite(bundle, name, data):
    """Replace one file of a directory bundle and list its new digest."""
    (bundle / name).write_bytes(data)
    manifest = read_manifest(bundle)
    manifest["files"][name] = hashlib.sha256(data).hexdigest()
    (bundle / "manifest.json").write_bytes(rfc8785.dumps(manifest))


# -- round trips ------------------------------------------------------------------


def test_directory_round_trip(tmp_path, gate_log):
    db, _, _, pub_file = gate_log
    bundle = tmp_path / "bundle"

    result = export(db, bundle, *PERIOD)

    assert result.exit_code == 0, result.output
    assert "3 checkpoints (tree sizes 4 to 11), 7 receipts, 0 openings" in (
        result.stderr
    )
    names = sorted(str(p.relative_to(bundle)) for p in bundle.rglob("*") if p.is_file())
    assert names == [
        "checkpoints/11.checkpoint", "checkpoints/4.checkpoint",
        "checkpoints/8.checkpoint", "consistency/4-8.proof", "consistency/8-11.proof",
        "manifest.json",
    ] + [f"receipts/{index}.tlog-proof" for index in range(3, 10)]
    checked = verify(bundle, pub_file)
    assert checked.exit_code == 0, checked.output
    assert checked.stdout.startswith(
        f"PASS {bundle}: agentgate.test/log: 3 checkpoints"
    )


def test_zip_round_trip(tmp_path, gate_log):
    db, _, _, pub_file = gate_log
    bundle = tmp_path / "bundle.zip"

    result = export(db, bundle, *PERIOD)

    assert result.exit_code == 0, result.output
    with zipfile.ZipFile(bundle) as archive:
        assert "manifest.json" in archive.namelist()
        assert len(archive.namelist()) == 13
    checked = verify(bundle, pub_file)
    assert checked.exit_code == 0, checked.output


def test_manifest_names_period_and_origin(tmp_path, gate_log):
    db, _, _, _ = gate_log
    bundle = tmp_path / "bundle"
    export(db, bundle, "--since", "2026-12-05T10:02:00+01:00",
           "--until", "2026-12-05T09:07:00.5Z")

    manifest = read_manifest(bundle)

    assert manifest["type"] == "agentgate.bundle"
    assert manifest["version"] == 1
    assert manifest["origin"] == "agentgate.test/log"
    assert manifest["since"] == "2026-12-05T09:02:00Z"
    assert manifest["until"] == "2026-12-05T09:07:00.500000Z"


def test_receipts_proved_against_last_checkpoint(tmp_path, gate_log, signer):
    db, _, _, _ = gate_log
    bundle = tmp_path / "bundle"
    export(db, bundle, *PERIOD)

    for index in range(3, 10):
        text = (bundle / f"receipts/{index}.tlog-proof").read_bytes()
        receipt = verify_receipt(text, [str(signer.verifier_key)])
        assert receipt.index == index
        assert receipt.checkpoint.size == 11


def test_selected_record_only(tmp_path, gate_log):
    db, _, _, pub_file = gate_log
    bundle = tmp_path / "bundle"

    result = export(db, bundle, *PERIOD, "--record", record_id("d", 4))

    assert result.exit_code == 0, result.output
    receipts = sorted(p.name for p in (bundle / "receipts").iterdir())
    assert receipts == ["5.tlog-proof"]
    assert (bundle / "checkpoints/4.checkpoint").exists()
    assert verify(bundle, pub_file).exit_code == 0


def test_disclosed_openings_verify(tmp_path, gate_log):
    db, vault_path, _, pub_file = gate_log
    bundle = tmp_path / "bundle"
    decision_id, outcome_id = record_id("d", 4), record_id("o", 4)

    result = export(
        db, bundle, *PERIOD, "--vault", str(vault_path), "--record", decision_id,
        "--disclose", f"{decision_id}:amount", "--disclose", f"{outcome_id}:result",
    )

    assert result.exit_code == 0, result.output
    opening = json.loads((bundle / f"openings/{decision_id}.amount.json").read_text())
    assert opening["value"] == 104
    assert opening["argument"] == "amount"
    # A disclosed record gets its receipt even when --record leaves it out.
    assert (bundle / "receipts/7.tlog-proof").exists()
    checked = verify(bundle, pub_file)
    assert checked.exit_code == 0, checked.output
    assert "2 receipts, 2 openings" in checked.stdout


def test_cosigned_checkpoints_meet_policy(tmp_path, gate_log, signer):
    db, _, _, pub_file = gate_log
    signer_text, verifier_text = generate_cosigner("witness.test/w1")
    cosigner = parse_cosigner_signer_key(signer_text)
    store = Store.open(db)
    try:
        for size in (4, 11):
            note = store.read_checkpoint(size)
            text = note[: note.rfind("\n\n") + 1]
            store_cosigned_checkpoint(store, size, note + cosigner.cosign(text, 1000))
    finally:
        store.close()
    policy = tmp_path / "policy.txt"
    policy.write_text(f"witness w1 {verifier_text}\nquorum 1\n")

    strict = export(db, tmp_path / "strict", *PERIOD, "--witness-policy", str(policy))
    everything = export(db, tmp_path / "all", *PERIOD)

    assert strict.exit_code == 0, strict.output
    assert sorted(p.name for p in (tmp_path / "strict/checkpoints").iterdir()) == [
        "11.checkpoint", "4.checkpoint"
    ]
    assert (tmp_path / "strict/consistency/4-11.proof").exists()
    passed = verify(tmp_path / "strict", pub_file, "--witness-policy", str(policy))
    assert passed.exit_code == 0, passed.output
    assert everything.exit_code == 0, everything.output
    failed = verify(tmp_path / "all", pub_file, "--witness-policy", str(policy))
    assert failed.exit_code == 1
    assert "checkpoints/8.checkpoint: QuorumNotMet" in failed.stdout


# -- tampered bundles fail verification --------------------------------------------


@pytest.fixture
def bundle(tmp_path, gate_log):
    db, vault_path, _, _ = gate_log
    path = tmp_path / "bundle"
    decision_id = record_id("d", 4)
    result = export(db, path, *PERIOD, "--vault", str(vault_path),
                    "--disclose", f"{decision_id}:amount")
    assert result.exit_code == 0, result.output
    return path


def test_tampered_receipt_fails(bundle, gate_log):
    path = bundle / "receipts/5.tlog-proof"
    path.write_bytes(path.read_bytes().replace(b"index 5", b"index 4"))

    result = verify(bundle, gate_log[3])

    assert result.exit_code == 1
    assert f"FAIL {bundle}: receipts/5.tlog-proof: SHA-256 is" in result.stdout


def test_tampered_receipt_with_manifest_fails(bundle, gate_log):
    name = "receipts/5.tlog-proof"
    lines = (bundle / name).read_text().split("\n")
    lines[3] = base64.b64encode(bytes(32)).decode()
    rewrite(bundle, name, "\n".join(lines).encode())

    result = verify(bundle, gate_log[3])

    assert result.exit_code == 1
    assert f"FAIL {bundle}: {name}: ProofMismatch" in result.stdout


def test_tampered_opening_fails(bundle, gate_log):
    name = f"openings/{record_id('d', 4)}.amount.json"
    opening = json.loads((bundle / name).read_text())
    opening["value"] = 5
    rewrite(bundle, name, rfc8785.dumps(opening))

    result = verify(bundle, gate_log[3])

    assert result.exit_code == 1
    assert f"FAIL {bundle}: {name}: ProofMismatch: value and salt give" in result.stdout


def test_replaced_consistency_proof_fails(bundle, gate_log):
    name = "consistency/8-11.proof"
    rewrite(bundle, name, (bundle / "consistency/4-8.proof").read_bytes())

    result = verify(bundle, gate_log[3])

    assert result.exit_code == 1
    assert f"FAIL {bundle}: {name}:" in result.stdout


def test_removed_checkpoint_fails(bundle, gate_log):
    name = "checkpoints/8.checkpoint"
    (bundle / name).unlink()
    manifest = read_manifest(bundle)
    del manifest["files"][name]
    (bundle / "manifest.json").write_bytes(rfc8785.dumps(manifest))

    result = verify(bundle, gate_log[3])

    assert result.exit_code == 1
    assert "consistency/4-8.proof: connects no two consecutive" in result.stdout
    assert "consistency/4-11.proof: missing" in result.stdout


def test_narrowed_period_fails(bundle, gate_log):
    manifest = read_manifest(bundle)
    manifest["until"] = "2026-12-05T09:05:00Z"
    (bundle / "manifest.json").write_bytes(rfc8785.dumps(manifest))

    result = verify(bundle, gate_log[3])

    assert result.exit_code == 1
    assert "receipts/9.tlog-proof: MalformedInput: record time" in result.stdout


# -- refusals -------------------------------------------------------------------------


def test_period_without_records(tmp_path, gate_log):
    result = export(gate_log[0], tmp_path / "b", "--since", "2027-01-01T00:00:00Z",
                    "--until", "2027-01-02T00:00:00Z")
    assert result.exit_code == 2
    assert "contains no record with a time from 2027-01-01T00:00:00Z" in result.stderr
    assert not (tmp_path / "b").exists()


def test_unknown_record(tmp_path, gate_log):
    unknown = record_id("d", 99)
    result = export(gate_log[0], tmp_path / "b", *PERIOD, "--record", unknown)
    assert result.exit_code == 2
    assert f"record {record_id('d', 99)} is not in the log" in result.stderr


def test_record_outside_period(tmp_path, gate_log):
    result = export(gate_log[0], tmp_path / "b", *PERIOD, "--record", record_id("d", 0))
    assert result.exit_code == 2
    assert "has time '2026-12-05T09:00:00.000000Z', outside the period" in (
        result.stderr
    )


def test_malformed_record_id(tmp_path, gate_log):
    result = export(gate_log[0], tmp_path / "b", *PERIOD, "--record", "d-XYZ")
    assert result.exit_code == 2
    assert "record id 'd-XYZ' is invalid" in result.stderr


def test_disclose_needs_vault(tmp_path, gate_log):
    result = export(gate_log[0], tmp_path / "b", *PERIOD,
                    "--disclose", f"{record_id('d', 4)}:amount")
    assert result.exit_code == 2
    assert "--disclose needs --vault" in result.stderr


def test_disclose_malformed(tmp_path, gate_log):
    result = export(gate_log[0], tmp_path / "b", *PERIOD,
                    "--vault", str(gate_log[1]), "--disclose", "amount")
    assert result.exit_code == 2
    assert "expected RECORD:ARGUMENT" in result.stderr


def test_vault_without_opening(tmp_path, gate_log):
    result = export(gate_log[0], tmp_path / "b", *PERIOD, "--vault", str(gate_log[1]),
                    "--disclose", f"{record_id('d', 4)}:memo")
    assert result.exit_code == 1
    assert "contains no opening of argument 'memo'" in result.stderr


def test_existing_output_refused(tmp_path, gate_log):
    (tmp_path / "b").mkdir()
    result = export(gate_log[0], tmp_path / "b", *PERIOD)
    assert result.exit_code == 2
    assert "already exists" in result.stderr


@pytest.mark.parametrize(
    "since, until, message",
    [
        ("yesterday", "2026-12-05T09:07:00Z", "expected an RFC 3339 time"),
        ("2026-12-05T09:02:00", "2026-12-05T09:07:00Z", "with a time zone"),
        ("20261205T090200Z", "2026-12-05T09:07:00Z", "got '20261205T090200Z'"),
        ("2026-12-05T09:02:00Z", "2026-12-05T25:07:00Z", "got '2026-12-05T25:07"),
        ("2026-12-05", "2026-12-05T09:07:00Z", "expected an RFC 3339 time"),
        ("2026-12-05T09:08:00Z", "2026-12-05T09:07:00Z", "is after --until"),
    ],
)
def test_bad_period(tmp_path, gate_log, since, until, message):
    result = export(gate_log[0], tmp_path / "b", "--since", since, "--until", until)
    assert result.exit_code == 2
    assert message in result.stderr


def test_policy_met_by_no_checkpoint(tmp_path, gate_log):
    _, verifier_text = generate_cosigner("witness.test/w1")
    policy = tmp_path / "policy.txt"
    policy.write_text(f"witness w1 {verifier_text}\nquorum 1\n")

    result = export(
        gate_log[0], tmp_path / "b", *PERIOD, "--witness-policy", str(policy)
    )

    assert result.exit_code == 2
    assert "no checkpoint that meets the witness policy of log" in result.stderr
    assert "covers leaf 9" in result.stderr


def test_unstored_latest_checkpoint_needs_key(tmp_path, gate_log):
    db, _, key_file, pub_file = gate_log
    run_sql(db, "DELETE FROM checkpoints WHERE size = 13")
    period = ["--since", "2026-12-05T09:50:00Z", "--until", "2026-12-05T10:00:00Z"]

    without_key = export(db, tmp_path / "a", *period)
    with_key = export(db, tmp_path / "b", *period, "--key", str(key_file))

    assert without_key.exit_code == 2
    assert "covers leaf 12" in without_key.stderr
    assert with_key.exit_code == 0, with_key.output
    assert verify(tmp_path / "b", pub_file).exit_code == 0


# -- the library ----------------------------------------------------------------------


def period_bounds():
    return (datetime(2026, 12, 5, 9, 2, tzinfo=timezone.utc),
            datetime(2026, 12, 5, 9, 7, tzinfo=timezone.utc))


def build(db, **options):
    with Ledger.open(db, None, create=False) as ledger:
        store = Store.open(db)
        try:
            return build_bundle(ledger, store, *period_bounds(), **options)
        finally:
            store.close()


def vault_disclosure(vault_path, identifier, argument):
    vault = ArgumentVault(str(vault_path))
    try:
        commitment = vault.find(identifier, argument)
        name, salt, value = vault.open(commitment)
    finally:
        vault.close()
    return Disclosure(identifier, name, commitment, value, salt)


def test_damaged_vault_value_refused(gate_log):
    db, vault_path = gate_log[:2]
    good = vault_disclosure(vault_path, record_id("d", 4), "amount")
    damaged = Disclosure(good.record, good.argument, good.commitment, 1, good.salt)

    with pytest.raises(InvalidRequest, match="the vault is damaged"):
        build(db, disclosures=[damaged])


def test_opening_of_other_argument_refused(gate_log):
    db, vault_path = gate_log[:2]
    good = vault_disclosure(vault_path, record_id("d", 4), "amount")
    moved = Disclosure(good.record, "recipient", good.commitment, good.value, good.salt)

    with pytest.raises(InvalidRequest, match="under 'recipient', not the commitment"):
        build(db, disclosures=[moved])


def test_argument_name_must_fit_file_name(gate_log):
    db, vault_path = gate_log[:2]
    good = vault_disclosure(vault_path, record_id("d", 4), "amount")
    slashed = Disclosure(good.record, "a/b", good.commitment, good.value, good.salt)

    with pytest.raises(InvalidRequest, match="cannot be a bundle file name"):
        build(db, disclosures=[slashed])


def test_format_time():
    assert format_time(datetime(2026, 1, 2, 3, 4, 5, tzinfo=timezone.utc)) == (
        "2026-01-02T03:04:05Z"
    )
    assert format_time(datetime(2026, 1, 2, 3, 4, 5, 6, tzinfo=timezone.utc)) == (
        "2026-01-02T03:04:05.000006Z"
    )
    with pytest.raises(InvalidRequest, match="has no time zone"):
        format_time(datetime(2026, 1, 2))
