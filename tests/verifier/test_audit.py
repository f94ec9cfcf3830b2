"""The audit of a whole log: a real gate's log passes, and every tampering of
the served log (change, delete, reorder, insert, truncate, a re-signed fork)
is found with its first bad index."""

import json

import pytest
from click.testing import CliRunner

from ledger import Ledger, Signer
from tests.ledger.server.conftest import start
from tests.verifier.gate_log import RESIGNER, build_gate_log, resign
from tests.verifier.servers import serve_directory
from tests.verifier.signing import TestSigner
from tests.verifier.tiles_writer import bundle, tile_name, write_tiles
from verifier.audit import audit_log
from verifier.audit_cli import audit as audit_command
from verifier.errors import UnknownKey
from verifier.monitor import Monitor
from verifier.note import parse_verifier_key
from verifier.tiles import TiledLog

KEY = parse_verifier_key(RESIGNER.verifier_key)


@pytest.fixture(scope="module")
def gate_log(tmp_path_factory):
    return build_gate_log(tmp_path_factory.mktemp("gate"))


@pytest.fixture
def published(tmp_path, gate_log):
    directory = tmp_path / "log"
    write_tiles(directory, gate_log.entries, gate_log.checkpoint)
    return directory


def audit(directory, **options):
    return audit_log(str(directory), [KEY], **options)


def rewrite_bundle(directory, entries):
    """Replace the first entry bundle, leaving the hash tiles as they were."""
    (directory / tile_name(None, 0, 22)).write_bytes(bundle(entries))


def test_gate_log_passes(published, gate_log):
    result = audit(published, anchors=[gate_log.principal])

    assert result.ok
    assert result.findings == []
    assert result.entries == 22
    assert result.computed_root == result.checkpoint.root
    assert result.records == {
        "key": 1,
        "policy": 1,
        "delegation": 2,
        "decision": 9,
        "outcome": 5,
        "approval-request": 1,
        "approval": 2,
        "revocation": 1,
    }
    assert result.verdicts == {"allow": 5, "hold": 1, "deny": 3}


def test_wrong_trust_anchor_flags_allows(published, gate_log):
    result = audit(published, anchors=[RESIGNER.verifier_key])
    assert result.first_bad()["decision.chain"] == 4
    assert "chain.anchor" in result.errors[0].message


def test_checkpoint_by_other_key_fails(published):
    other = TestSigner.from_seed_text("agentgate.test/gate", "not the log key")
    with pytest.raises(UnknownKey):
        audit_log(str(published), [parse_verifier_key(other.verifier_key)])


def test_changed_entry(published, gate_log):
    entries = list(gate_log.entries)
    entries[6] = entries[6].replace(b'"send_money"', b'"read_money"')
    rewrite_bundle(published, entries)
    result = audit(published)

    assert result.first_bad()["log.entry"] == 6
    assert "log.root" in result.first_bad()
    assert not result.ok


def test_deleted_entry(published, gate_log):
    entries = list(gate_log.entries)
    del entries[6]
    rewrite_bundle(published, entries)
    result = audit(published)

    assert result.first_bad()["log.entry"] == 6
    assert result.first_bad()["log.bundle"] == 21
    assert result.first_bad()["log.truncated"] == 21


def test_reordered_entries(published, gate_log):
    entries = list(gate_log.entries)
    entries[8], entries[9] = entries[9], entries[8]
    rewrite_bundle(published, entries)
    assert audit(published).first_bad()["log.entry"] == 8


def test_inserted_entry(published, gate_log):
    entries = list(gate_log.entries)
    entries.insert(11, entries[10])
    rewrite_bundle(published, entries)
    result = audit(published)
    assert result.first_bad()["log.entry"] == 11
    assert result.first_bad()["log.bundle"] == 22


def test_truncated_bundle(published, gate_log):
    data = bundle(gate_log.entries)
    (published / tile_name(None, 0, 22)).write_bytes(data[:-10])
    result = audit(published)
    assert result.first_bad()["log.bundle"] == 21
    assert "claims" in next(
        f.message for f in result.findings if f.kind == "log.bundle"
    )
    assert result.first_bad()["log.truncated"] == 21


def test_resigned_fork_found_by_records(tmp_path, gate_log):
    # The operator rewrites an allowed payment and signs the new tree.
    entries = list(gate_log.entries)
    record = json.loads(entries[6])
    record["arguments"]["amount"] = "0" * 64
    entries[6] = json.dumps(record, separators=(",", ":"), sort_keys=True).encode()
    write_tiles(tmp_path / "log", entries, resign(entries))
    result = audit(tmp_path / "log")

    assert result.first_bad()["session.previous"] == 6
    assert "record 6 was changed or a record is missing" in result.errors[0].message


def test_resigned_fork_found_by_monitor_state(tmp_path, gate_log):
    honest = tmp_path / "honest"
    write_tiles(honest, gate_log.entries, gate_log.checkpoint)
    state = tmp_path / "monitor.json"
    assert Monitor(TiledLog(str(honest)), [KEY], state).check().ok

    entries = list(gate_log.entries)
    entries[14] = entries[14].replace(b'"fetch"', b'"fetch2"')
    write_tiles(tmp_path / "forked", entries, resign(entries))
    result = audit(tmp_path / "forked", monitor_state=state)

    assert result.first_bad()["log.fork"] == 14
    assert "log.root" not in result.first_bad()


def test_rollback_found_by_monitor_state(tmp_path, gate_log):
    honest = tmp_path / "honest"
    write_tiles(honest, gate_log.entries, gate_log.checkpoint)
    state = tmp_path / "monitor.json"
    Monitor(TiledLog(str(honest)), [KEY], state).check()

    entries = gate_log.entries[:15]
    write_tiles(tmp_path / "short", entries, resign(entries))
    result = audit(tmp_path / "short", monitor_state=state)
    assert result.first_bad()["log.rollback"] == 15


def test_served_by_ledger_over_http(tmp_path, gate_log):
    with serve_directory(tmp_path) as url:
        write_tiles(tmp_path / "log", gate_log.entries, gate_log.checkpoint)
        result = audit_log(url + "/log", [KEY])
    assert result.ok
    assert result.source == "tiles"


def test_ledger_server_tiles_and_api(tmp_path, gate_log):
    signer = Signer.from_seed(
        "agentgate.test/gate", RESIGNER.private_key.private_bytes_raw()
    )
    (tmp_path / "served").mkdir()
    ledger = Ledger.open(tmp_path / "served" / "log.db", signer)
    ledger.append_batch(
        [(e, None) for e in gate_log.entries if b'"type":"key"' not in e]
    )
    ledger.close()
    server = start(tmp_path / "served", signers=[signer])
    try:
        tiles = audit_log(server.base_url, [KEY])
        api = audit_log(server.base_url, [KEY], source="api")
    finally:
        server.stop()

    assert tiles.source == "tiles"
    assert api.source == "api"
    assert tiles.computed_root == api.computed_root == tiles.checkpoint.root
    assert tiles.entries == api.entries


def test_large_entry_read_from_api(tmp_path):
    signer = Signer.from_seed(
        "agentgate.test/gate", RESIGNER.private_key.private_bytes_raw()
    )
    (tmp_path / "served").mkdir()
    ledger = Ledger.open(tmp_path / "served" / "log.db", signer)
    large = b'{"padding":"' + b"x" * 70_000 + b'","type":"note","version":1}'
    ledger.append_batch([(b'{"n":1}', None), (large, None)])
    ledger.close()
    server = start(tmp_path / "served", signers=[signer])
    try:
        result = audit_log(server.base_url, [KEY])
    finally:
        server.stop()

    assert result.source == "tiles"
    assert result.entries == 3
    assert result.computed_root == result.checkpoint.root
    assert "log.bundle" not in result.first_bad()


def run_cli(*args):
    result = CliRunner().invoke(audit_command, list(args))
    assert result.exception is None or isinstance(result.exception, SystemExit)
    return result


def test_cli_writes_reports(tmp_path, published, gate_log):
    key_file = tmp_path / "log.pub"
    key_file.write_text(gate_log.log_key + "\n")
    out = tmp_path / "out"
    result = run_cli(
        str(published),
        "--key",
        str(key_file),
        "--trust-anchor",
        gate_log.principal,
        "--out",
        str(out),
        "--no-progress",
    )

    assert result.exit_code == 0, result.output
    assert result.stdout.splitlines()[-2] == "PASS"
    document = json.loads((out / "audit.json").read_text())
    assert document["ok"] is True
    assert document["entries"] == 22
    assert document["root_matches"] is True
    page = (out / "audit.html").read_text()
    assert "PASS: no errors found" in page
    assert "<script" not in page


def test_cli_failure_names_first_bad_index(tmp_path, published, gate_log):
    entries = list(gate_log.entries)
    entries[8] = entries[8].replace(b"hold", b"allow")
    rewrite_bundle(published, entries)
    out = tmp_path / "out"
    result = run_cli(
        str(published), "--key", gate_log.log_key, "--out", str(out), "--progress"
    )

    assert result.exit_code == 1
    assert "  log.entry: first at index 8" in result.stdout
    assert result.stdout.splitlines()[-2] == "FAIL"
    assert "22/22 entries" in result.stderr
    document = json.loads((out / "audit.json").read_text())
    assert document["first_bad"]["log.entry"] == 8
    assert "log.entry" in (out / "audit.html").read_text()


def test_cli_unreadable_log(tmp_path, gate_log):
    result = run_cli(str(tmp_path), "--key", gate_log.log_key)
    assert result.exit_code == 3
    assert "the log could not be read: no checkpoint at" in result.stdout
