"""Key and token files: written with mode 0600, rejected when others can read them.

Every command that writes a private key is run with umask 000, so a mode
of 0600 comes from the code and not from the environment. Every command
that reads a private key or a token is given a file of mode 0644, 0640 and
0604 and must stop with exit code 2 and a message naming the file and
``chmod 600``. ``test_every_key_parser_is_guarded`` finds the code that
parses private keys by searching the source, so a new reader that skips
the mode check fails it.
"""

from __future__ import annotations

import os
import re
import stat
import subprocess
from pathlib import Path

import click
import pytest
from click.testing import CliRunner

from enforcement.approvals_store import ApprovalStore
from enforcement.cli import main
from enforcement.identity import Identity
from ledger import Ledger, Signer, write_key_pair

from .servers import (
    AGENTGATE,
    APPROVALS_TOKEN,
    APPROVER_SEED,
    GATE_TOKEN,
    LOG_SEED,
    LOG_TOKEN,
    MCP_TOKEN,
    ORIGIN,
    ROOT,
    secret_file,
    write_witness_files,
)
from tests.enforcement.test_gate_http import write_gate_files

OPEN_MODES = [0o644, 0o640, 0o604, 0o660, 0o606]


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def _run_with_umask_zero(*arguments: str, cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run(
        [AGENTGATE, *arguments], cwd=cwd, capture_output=True, text=True,
        timeout=120, preexec_fn=lambda: os.umask(0),
    )


# -- writers ----------------------------------------------------------------------


def test_keygen_writes_0600(tmp_path):
    completed = _run_with_umask_zero("keygen", "--name", "agentgate.test/w",
                                     "--out", "keys", cwd=tmp_path)

    assert completed.returncode == 0, completed.stderr
    assert _mode(tmp_path / "keys" / "agentgate.test_w.key") == 0o600
    assert _mode(tmp_path / "keys") == 0o700


def test_witness_keygen_writes_0600(tmp_path):
    completed = _run_with_umask_zero("witness", "keygen", "--name", "witness.test/w",
                                     "--out", "keys", cwd=tmp_path)

    assert completed.returncode == 0, completed.stderr
    assert _mode(tmp_path / "keys" / "witness.test_w.key") == 0o600


def test_library_writers_write_0600(tmp_path):
    previous = os.umask(0)
    try:
        key_path, _ = write_key_pair(Signer.from_seed(ORIGIN, LOG_SEED), tmp_path)
        Identity.from_seed("approver.test", APPROVER_SEED).save(tmp_path / "a.key")
    finally:
        os.umask(previous)

    assert _mode(key_path) == 0o600
    assert _mode(tmp_path / "a.key") == 0o600


def test_writers_never_overwrite(tmp_path):
    """A key file that exists is never replaced, so its mode never widens."""
    path = tmp_path / "a.key"
    path.write_text("kept\n")

    with pytest.raises(FileExistsError):
        Identity.from_seed("approver.test", APPROVER_SEED).save(path)
    assert path.read_text() == "kept\n"


# -- readers ----------------------------------------------------------------------


class Files:
    """A directory with every key and token file a command may read, mode 0600."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        signer = Signer.from_seed(ORIGIN, LOG_SEED)
        self.log_key = secret_file(directory / "log.key", signer.signer_key())
        new_signer = Signer.from_seed(ORIGIN, bytes(range(64, 96)))
        self.new_log_key = secret_file(directory / "new.key", new_signer.signer_key())
        self.new_log_pub = directory / "new.pub"
        self.new_log_pub.write_text(f"{new_signer.verifier_key}\n")
        Ledger.open(str(directory / "log.db"), signer).close()
        self.approver_key = directory / "approver.key"
        Identity.from_seed("approver.test", APPROVER_SEED).save(self.approver_key)
        self.witness = write_witness_files(directory / "witness")
        self.log_token = secret_file(directory / "log.token", LOG_TOKEN)
        self.gate_token = secret_file(directory / "gate.token", GATE_TOKEN)
        self.approvals_token = secret_file(directory / "approvals.token",
                                           APPROVALS_TOKEN)
        self.mcp_token = secret_file(directory / "mcp.token", MCP_TOKEN)
        ApprovalStore.open(str(directory / "vault.db")).close()
        self.gate = write_gate_files(directory / "gate")
        self.gate_log_key = next((directory / "gate" / "keys").glob("*.key"))
        (directory / "entry.json").write_text('{"n":1,"type":"decision","version":1}')
        (directory / "scope.json").write_text('{"capabilities": [{"tool": "*"}]}')


READERS = (
    "serve --key", "serve --token-file", "log init --key", "log append --key",
    "log add-key --key", "log add-key --new-key", "log retire-key --key",
    "log checkpoint --key", "publish --key", "export --key",
    "gate serve --token-file", "gate serve --approvals-token-file",
    "gate serve --approver-key", "gate serve, [log] key",
    "approvals approve --key", "approvals deny --key", "approvals serve --key",
    "approvals serve --token-file", "witness serve --key", "mcp-proxy --token-file",
    "delegate --issuer",
)


def _readers(files: Files) -> list[tuple[str, Path, list[str]]]:
    """Return (name, the file read, arguments) for every command that reads a secret."""
    gate_serve = ["gate", "serve", "--config", str(files.gate.config), "--port", "0",
                  "--token-file", str(files.gate_token)]
    return [
        ("serve --key", files.log_key,
         ["serve", "--db", "log.db", "--key", str(files.log_key), "--port", "0",
          "--token-file", str(files.log_token)]),
        ("serve --token-file", files.log_token,
         ["serve", "--db", "log.db", "--key", str(files.log_key), "--port", "0",
          "--token-file", str(files.log_token)]),
        ("log init --key", files.log_key,
         ["log", "init", "--db", "new.db", "--key", str(files.log_key)]),
        ("log append --key", files.log_key,
         ["log", "append", "--db", "log.db", "--key", str(files.log_key),
          "entry.json"]),
        ("log add-key --key", files.log_key,
         ["log", "add-key", "--db", "log.db", "--key", str(files.log_key),
          "--new-key", str(files.new_log_key)]),
        ("log add-key --new-key", files.new_log_key,
         ["log", "add-key", "--db", "log.db", "--key", str(files.log_key),
          "--new-key", str(files.new_log_key)]),
        ("log retire-key --key", files.log_key,
         ["log", "retire-key", "--db", "log.db", "--key", str(files.log_key),
          "--old-key", str(files.new_log_pub)]),
        ("log checkpoint --key", files.log_key,
         ["log", "checkpoint", "--db", "log.db", "--key", str(files.log_key)]),
        ("publish --key", files.log_key,
         ["publish", "--db", "log.db", "--out", "tiles", "--key",
          str(files.log_key)]),
        ("export --key", files.log_key,
         ["export", "--db", "log.db", "--since", "2026-01-01T00:00:00Z",
          "--until", "2027-01-01T00:00:00Z", "--out", "bundle", "--key",
          str(files.log_key)]),
        ("gate serve --token-file", files.gate_token, gate_serve),
        ("gate serve --approvals-token-file", files.approvals_token,
         [*gate_serve, "--approvals-token-file", str(files.approvals_token)]),
        ("gate serve --approver-key", files.approver_key,
         [*gate_serve, "--approvals-token-file", str(files.approvals_token),
          "--approver-key", str(files.approver_key)]),
        ("gate serve, [log] key", files.gate_log_key, gate_serve),
        ("approvals approve --key", files.approver_key,
         ["approvals", "approve", "q-0", "--store", "vault.db", "--key",
          str(files.approver_key)]),
        ("approvals deny --key", files.approver_key,
         ["approvals", "deny", "q-0", "--store", "vault.db", "--key",
          str(files.approver_key)]),
        ("approvals serve --key", files.approver_key,
         ["approvals", "serve", "--store", "vault.db", "--port", "0", "--key",
          str(files.approver_key), "--token-file", str(files.approvals_token)]),
        ("approvals serve --token-file", files.approvals_token,
         ["approvals", "serve", "--store", "vault.db", "--port", "0",
          "--token-file", str(files.approvals_token)]),
        ("witness serve --key", files.witness.key,
         ["witness", "serve", "--key", str(files.witness.key), "--config",
          str(files.witness.config), "--state", str(files.witness.state),
          "--port", "0"]),
        ("mcp-proxy --token-file", files.mcp_token,
         ["mcp-proxy", "--config", str(files.gate.config), "--purpose", "p",
          "--listen", "http://127.0.0.1:0/mcp", "--token-file",
          str(files.mcp_token), "--", "true"]),
        ("delegate --issuer", files.approver_key,
         ["delegate", "--issuer", str(files.approver_key), "--subject",
          Identity.from_seed("approver.test", APPROVER_SEED).verifier_key,
          "--scope", "scope.json", "--purpose", "p",
          "--not-after", "2099-01-01T00:00:00Z", "--out", "delegated.json"]),
    ]


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    return Files(tmp_path_factory.mktemp("secrets"))


@pytest.mark.parametrize("mode", OPEN_MODES[:3])
@pytest.mark.parametrize("name", READERS)
def test_reader_rejects_open_mode(files, name, mode, monkeypatch):
    _, path, arguments = next(r for r in _readers(files) if r[0] == name)
    monkeypatch.chdir(files.directory)
    for variable in ("AGENTGATE_WRITE_TOKEN", "AGENTGATE_GATE_TOKEN",
                     "AGENTGATE_APPROVALS_TOKEN", "AGENTGATE_MCP_TOKEN"):
        monkeypatch.delenv(variable, raising=False)
    path.chmod(mode)
    try:
        result = CliRunner().invoke(main, arguments)
    finally:
        path.chmod(0o600)

    # Bad input exits 2, from every command.
    assert result.exit_code == 2, result.output
    assert str(path) in result.output
    assert "chmod 600" in result.output
    assert "Traceback" not in result.output


def test_readers_table_complete(files):
    assert tuple(name for name, _, _ in _readers(files)) == READERS


def test_readers_cover_every_secret_option():
    """Every CLI option whose help names mode 0600 or a signer key is in READERS."""
    options = {" ".join((*path, option)) for path, option in _secret_options(main, ())}
    # keygen commands write key files; they are tested above.
    options -= {"witness keygen --out"}

    assert len(options) >= 15
    assert options - set(READERS) == set()


def _secret_options(command: click.Command, path: tuple[str, ...]):
    """Yield (command path, option) for options that read a secret file."""
    if isinstance(command, click.Group):
        context = click.Context(command)
        for name in command.list_commands(context):
            yield from _secret_options(command.get_command(context, name),
                                       (*path, name))
        return
    for parameter in command.params:
        help_text = getattr(parameter, "help", "") or ""
        if "0600" in help_text or "signer key" in help_text.lower():
            yield path, parameter.opts[0]


# -- the code that parses private keys ---------------------------------------------

# Functions that turn private key text into a key. Each may be called only
# from a reader that checks the file's mode first (GUARDED below).
KEY_PARSERS = re.compile(
    r"\b(Signer\.parse|from_signer_key|parse_cosigner_signer_key|"
    r"Ed25519PrivateKey\.from_private_bytes)\(")
GUARDED = {
    # load_signer: _read_key_text checks the mode of the opened file.
    ("ledger/keys.py", "Signer.parse"),
    # Identity.load checks the mode of the opened file.
    ("enforcement/identity.py", "from_signer_key"),
    # witness serve reads the key through read_secret_file, which checks it.
    ("verifier/witness_cli.py", "parse_cosigner_signer_key"),
}
# Places that build keys from bytes in memory, never from a file.
IN_MEMORY = {
    ("ledger/keys.py", "Ed25519PrivateKey.from_private_bytes"),
    ("enforcement/identity.py", "Ed25519PrivateKey.from_private_bytes"),
    ("verifier/cosignature.py", "Ed25519PrivateKey.from_private_bytes"),
    ("verifier/note.py", "Ed25519PrivateKey.from_private_bytes"),
}


def test_every_key_parser_is_guarded():
    found = set()
    for package in ("ledger", "enforcement", "verifier"):
        for source in sorted((ROOT / package).rglob("*.py")):
            relative = source.relative_to(ROOT).as_posix()
            for line in source.read_text().splitlines():
                if line.lstrip().startswith(("def ", "#")):
                    continue
                for match in KEY_PARSERS.finditer(line):
                    found.add((relative, match.group(1)))

    unexpected = found - GUARDED - IN_MEMORY
    assert unexpected == set(), (
        "private keys parsed outside the mode-checking readers; read the file "
        "with ledger.load_signer, Identity.load or verifier read_secret_file"
    )
    assert GUARDED <= found
