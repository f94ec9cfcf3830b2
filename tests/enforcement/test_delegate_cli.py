"""``agentgate delegate``: certificates issued from key files, through the CLI."""

import json
import os
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from click.testing import CliRunner

from enforcement.cli import main
from enforcement.delegation import Certificate, ChainVerifier
from enforcement.gate_config import load_gate_config
from enforcement.timeutil import format_seconds

NOW = datetime.now(UTC).replace(microsecond=0)
START = format_seconds(NOW - timedelta(hours=1))
END = format_seconds(NOW + timedelta(days=1))


def run(*args):
    return CliRunner().invoke(main, [str(arg) for arg in args])


@pytest.fixture
def keys(tmp_path):
    directory = tmp_path / "keys"
    for name in ("principal.test", "agent.test", "helper.test"):
        result = run("keygen", "--name", name, "--out", directory)
        assert result.exit_code == 0, result.output
    return directory


def write_scope(directory: Path, name: str, text: str) -> Path:
    path = directory / name
    path.write_text(text)
    return path


def issue(keys, out, scope, *extra, issuer="principal.test", subject="agent.test"):
    return run("delegate", "--issuer", keys / f"{issuer}.key",
               "--subject", keys / f"{subject}.pub", "--scope", scope,
               "--purpose", "test delegation", "--not-before", START,
               "--not-after", END, "--out", out, *extra)


def test_root_and_child_verify(tmp_path, keys):
    root_scope = write_scope(tmp_path, "root.json",
                             '{"capabilities": [{"tool": "read_*"}]}')
    child_scope = write_scope(tmp_path, "child.toml",
                              '[[capabilities]]\ntool = "read_balance"\n')

    root = issue(keys, tmp_path / "root.cert.json", root_scope, "--max-depth", "1")
    child = issue(keys, tmp_path / "child.cert.json", child_scope,
                  "--parent", tmp_path / "root.cert.json",
                  issuer="agent.test", subject="helper.test")

    assert root.exit_code == 0, root.output
    assert child.exit_code == 0, child.output
    chain = [Certificate.from_bytes((tmp_path / name).read_bytes())
             for name in ("root.cert.json", "child.cert.json")]
    assert root.stdout.strip() == chain[0].hash
    assert child.stdout.strip() == chain[1].hash
    principal = (keys / "principal.test.pub").read_text().strip()
    verified = ChainVerifier([principal]).verify(chain, NOW)
    assert verified.agent.verifier_key == (keys / "helper.test.pub").read_text().strip()
    assert [c.to_json() for c in verified.scope.capabilities] == [
        {"tool": "read_balance"}]


def test_subject_as_key_text(tmp_path, keys):
    scope = write_scope(tmp_path, "scope.json", '{"capabilities": [{"tool": "*"}]}')
    subject = (keys / "agent.test.pub").read_text().strip()

    result = run("delegate", "--issuer", keys / "principal.test.key",
                 "--subject", subject, "--scope", scope, "--purpose", "p",
                 "--not-after", END, "--out", tmp_path / "c.json")

    assert result.exit_code == 0, result.output
    certificate = Certificate.from_bytes((tmp_path / "c.json").read_bytes())
    assert certificate.subject == subject
    assert certificate.body["max_depth"] == 0
    assert certificate.body["parent"] is None


def test_widened_child_rejected(tmp_path, keys):
    narrow = write_scope(tmp_path, "narrow.json",
                         '{"capabilities": [{"tool": "read_*"}]}')
    wide = write_scope(tmp_path, "wide.json", '{"capabilities": [{"tool": "*"}]}')
    assert issue(keys, tmp_path / "root.json", narrow, "--max-depth", "1").exit_code == 0

    result = issue(keys, tmp_path / "child.json", wide,
                   "--parent", tmp_path / "root.json",
                   issuer="agent.test", subject="helper.test")

    assert result.exit_code == 2
    assert "does not attenuate --parent" in result.output
    assert "wider than every capability of the parent scope" in result.output
    assert "Traceback" not in result.output
    assert not (tmp_path / "child.json").exists()


def test_child_beyond_depth_rejected(tmp_path, keys):
    scope = write_scope(tmp_path, "scope.json", '{"capabilities": [{"tool": "*"}]}')
    assert issue(keys, tmp_path / "root.json", scope).exit_code == 0

    result = issue(keys, tmp_path / "child.json", scope,
                   "--parent", tmp_path / "root.json",
                   issuer="agent.test", subject="helper.test")

    assert result.exit_code == 2
    assert "allows 0 further links but 1 follow" in result.output
    assert not (tmp_path / "child.json").exists()


def test_child_wrong_issuer_rejected(tmp_path, keys):
    scope = write_scope(tmp_path, "scope.json", '{"capabilities": [{"tool": "*"}]}')
    assert issue(keys, tmp_path / "root.json", scope, "--max-depth", "1").exit_code == 0

    result = issue(keys, tmp_path / "child.json", scope,
                   "--parent", tmp_path / "root.json",
                   issuer="helper.test", subject="helper.test")

    assert result.exit_code == 2
    assert "issuer is not the subject of link 0" in result.output
    assert not (tmp_path / "child.json").exists()


@pytest.mark.parametrize("mode", [0o644, 0o640, 0o604])
def test_readable_issuer_key_rejected(tmp_path, keys, mode):
    scope = write_scope(tmp_path, "scope.json", '{"capabilities": [{"tool": "*"}]}')
    os.chmod(keys / "principal.test.key", mode)

    result = issue(keys, tmp_path / "c.json", scope)

    assert result.exit_code == 2
    assert str(keys / "principal.test.key") in result.output
    assert "others can read it. Run: chmod 600" in result.output
    assert not (tmp_path / "c.json").exists()


@pytest.mark.parametrize("not_before, not_after, message", [
    (START, "tomorrow", "--not-after: expected an RFC 3339 UTC time"),
    ("2026-01-01T00:00:00+01:00", END, "--not-before: expected an RFC 3339"),
    ("2026-02-30T00:00:00Z", END, "is not a valid date"),
    (START, format_seconds(NOW + timedelta(days=1)).replace("Z", ".5Z"),
     "has a fraction of a second"),
    (END, START, "must be later than --not-before"),
    ("2020-01-01T00:00:00Z", "2020-01-02T00:00:00Z", "is in the past"),
])
def test_bad_times_rejected(tmp_path, keys, not_before, not_after, message):
    scope = write_scope(tmp_path, "scope.json", '{"capabilities": [{"tool": "*"}]}')

    result = run("delegate", "--issuer", keys / "principal.test.key",
                 "--subject", keys / "agent.test.pub", "--scope", scope,
                 "--purpose", "p", "--not-before", not_before,
                 "--not-after", not_after, "--out", tmp_path / "c.json")

    assert result.exit_code == 2
    assert message in result.output
    assert "Traceback" not in result.output
    assert not (tmp_path / "c.json").exists()


def test_existing_out_rejected(tmp_path, keys):
    scope = write_scope(tmp_path, "scope.json", '{"capabilities": [{"tool": "*"}]}')
    out = tmp_path / "c.json"
    out.write_text("keep me")

    result = issue(keys, out, scope)

    assert result.exit_code == 2
    assert "already exists" in result.output
    assert out.read_text() == "keep me"


@pytest.mark.parametrize("name, text, message", [
    ("s.json", '{"capabilities": [{"tool": "*"}], "extra": 1}',
     "scope must be an object with only 'capabilities'"),
    ("s.json", '{"capabilities": [', "is not valid JSON"),
    ("s.toml", "capabilities = [", "is not valid TOML"),
    ("s.toml", '[[capabilities]]\ntool = "*"\nwhen = 2026-01-01\n',
     "is a TOML date or time"),
])
def test_bad_scope_rejected(tmp_path, keys, name, text, message):
    scope = write_scope(tmp_path, name, text)

    result = issue(keys, tmp_path / "c.json", scope)

    assert result.exit_code == 2
    assert message in result.output
    assert not (tmp_path / "c.json").exists()


@pytest.mark.parametrize("subject, message", [
    ("missing.pub", "is neither a verifier key nor a readable key file"),
    ("PRIVATE+KEY+x+00000000+AAAA", "got a signer (private) key"),
])
def test_bad_subject_rejected(tmp_path, keys, subject, message):
    scope = write_scope(tmp_path, "scope.json", '{"capabilities": [{"tool": "*"}]}')

    result = run("delegate", "--issuer", keys / "principal.test.key",
                 "--subject", tmp_path / subject if subject.endswith(".pub")
                 else subject, "--scope", scope, "--purpose", "p",
                 "--not-after", END, "--out", tmp_path / "c.json")

    assert result.exit_code == 2
    assert message in result.output
    assert not (tmp_path / "c.json").exists()


def test_subject_signer_key_file_rejected(tmp_path, keys):
    scope = write_scope(tmp_path, "scope.json", '{"capabilities": [{"tool": "*"}]}')

    result = run("delegate", "--issuer", keys / "principal.test.key",
                 "--subject", keys / "agent.test.key", "--scope", scope,
                 "--purpose", "p", "--not-after", END, "--out", tmp_path / "c.json")

    assert result.exit_code == 2
    assert "contains a signer (private) key" in result.output
    assert "PRIVATE+KEY" not in result.output
    assert not (tmp_path / "c.json").exists()


def test_bad_parent_rejected(tmp_path, keys):
    scope = write_scope(tmp_path, "scope.json", '{"capabilities": [{"tool": "*"}]}')
    (tmp_path / "parent.json").write_text('{"certificate": {}}')

    result = issue(keys, tmp_path / "c.json", scope,
                   "--parent", tmp_path / "parent.json", issuer="agent.test")

    assert result.exit_code == 2
    assert "is not a certificate" in result.output
    assert not (tmp_path / "c.json").exists()


def test_gate_config_accepts_files(tmp_path, keys):
    from tests.enforcement.test_gate_http import ORIGIN

    scope = write_scope(tmp_path, "scope.json",
                        '{"capabilities": [{"tool": "read_*"}]}')
    assert issue(keys, tmp_path / "agent.cert.json", scope).exit_code == 0
    log_key = run("keygen", "--name", ORIGIN, "--out", tmp_path / "log")
    assert log_key.exit_code == 0, log_key.output
    key_file = next((tmp_path / "log").glob("*.key"))
    assert run("log", "init", "--db", tmp_path / "ledger.db",
               "--key", key_file).exit_code == 0
    config = tmp_path / "gate.toml"
    config.write_text(
        "[log]\n"
        'database = "ledger.db"\n'
        f'key = "log/{key_file.name}"\n\n'
        "[gate]\n"
        'trust_anchors = ["keys/principal.test.pub"]\n'
        'chain = ["agent.cert.json"]\n'
        'vault = "vault.db"\n')

    loaded = load_gate_config(config)
    with loaded.open() as opened:
        decision = opened.gate.session("read the balance").decide("read_balance", {})

    principal = (keys / "principal.test.pub").read_text().strip()
    assert loaded.trust_anchors == (principal,)
    assert [c.hash for c in loaded.chain] == [
        Certificate.from_bytes((tmp_path / "agent.cert.json").read_bytes()).hash]
    assert decision.verdict == "allow"
    assert json.loads((tmp_path / "agent.cert.json").read_text())["certificate"][
        "purpose"] == "test delegation"


def test_grandchild_needs_whole_chain(tmp_path, keys):
    scope = write_scope(tmp_path, "scope.json", '{"capabilities": [{"tool": "*"}]}')
    assert issue(keys, tmp_path / "root.json", scope, "--max-depth", "2").exit_code == 0
    assert issue(keys, tmp_path / "child.json", scope, "--max-depth", "1",
                 "--parent", tmp_path / "root.json",
                 issuer="agent.test", subject="helper.test").exit_code == 0
    result = run("keygen", "--name", "worker.test", "--out", keys)
    assert result.exit_code == 0, result.output

    partial = issue(keys, tmp_path / "partial.json", scope,
                    "--parent", tmp_path / "child.json",
                    issuer="helper.test", subject="worker.test")
    whole = issue(keys, tmp_path / "whole.json", scope,
                  "--parent", tmp_path / "root.json",
                  "--parent", tmp_path / "child.json",
                  issuer="helper.test", subject="worker.test")

    assert partial.exit_code == 2
    assert "it is not a root; pass the whole chain, root first" in partial.output
    assert not (tmp_path / "partial.json").exists()
    assert whole.exit_code == 0, whole.output
    chain = [Certificate.from_bytes((tmp_path / name).read_bytes())
             for name in ("root.json", "child.json", "whole.json")]
    principal = (keys / "principal.test.pub").read_text().strip()
    assert ChainVerifier([principal]).verify(chain, NOW).agent.verifier_key == (
        keys / "worker.test.pub").read_text().strip()
