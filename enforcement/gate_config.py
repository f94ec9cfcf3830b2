"""A gate described in a file: the log it seals into, its policy and its trust.

``agentgate gate serve`` and ``agentgate mcp-proxy`` start the same gate from
one TOML file. Relative paths are read from the file's directory::

    [log]
    database = "ledger.db"          # a local log: SQLite path or database URL
    key = "keys/log.key"            # its signer key (mode 0600)
    # or a log served by `agentgate serve`:
    # url = "http://127.0.0.1:8080"
    # token_file = "ledger.token"   # its write token (mode 0600)
    # verifier_key = "keys/log.pub" # pinned; required with url

    [gate]
    policy = "policy.toml"          # optional; the built-in default otherwise
    trust_anchors = ["keys/principal.pub"]
    chain = ["certificates/agent.json"]   # default chain, root first
    vault = "vault.db"              # raw arguments and approval requests

A key entry is either a verifier key itself or the path of a file holding
one. A certificate file contains one certificate object as JSON.
"""

from __future__ import annotations

import logging
import os
import tomllib
from collections.abc import Callable
from contextlib import ExitStack
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from enforcement.delegation import Certificate
from enforcement.errors import ConfigError, DelegationError, GateError
from enforcement.gate import Gate
from enforcement.identity import parse_verifier_key
from enforcement.policy import load_policy
from enforcement.timeutil import utc_now
from enforcement.vault import ArgumentVault

__all__ = ["GateConfig", "OpenGate", "load_gate_config"]

logger = logging.getLogger(__name__)

_LOG_KEYS = {"database", "key", "url", "token_file", "verifier_key", "timeout"}
_GATE_KEYS = {"policy", "trust_anchors", "chain", "vault"}


@dataclass(frozen=True)
class GateConfig:
    """The parts of a gate, as absolute paths and key texts."""

    source: Path
    trust_anchors: tuple[str, ...]
    chain: tuple[Certificate, ...]
    database: str | None = None
    signer_key: Path | None = None
    url: str | None = None
    token_file: Path | None = None
    verifier_keys: tuple[str, ...] = ()
    timeout: float = 10.0
    policy: Path | None = None
    vault: Path | None = None

    def open(self, *, clock: Callable[[], datetime] = utc_now) -> OpenGate:
        """Open the log and the vault and start the gate."""
        stack = ExitStack()
        try:
            client, log_keys = self._open_log(stack, clock)
            policy = load_policy(self.policy) if self.policy else load_policy()
            vault = ArgumentVault(str(self.vault) if self.vault else None)
            stack.callback(vault.close)
            gate = Gate(client, list(log_keys), policy, self.trust_anchors,
                        vault=vault, clock=clock, default_chain=self.chain)
        except BaseException:
            stack.close()
            raise
        logger.info("gate from %s sealing into log %s", self.source, client.origin)
        return OpenGate(gate=gate, stack=stack)

    def _open_log(self, stack: ExitStack,
                  clock: Callable[[], datetime]) -> tuple[Any, tuple[str, ...]]:
        from ledger import LedgerError, load_signer, open_ledger
        from ledger.client import LocalLedgerClient

        try:
            if self.database is not None:
                signer = load_signer(self.signer_key)
                ledger = open_ledger(self.database, signer, now=clock())
                stack.callback(ledger.close)
                keys = self.verifier_keys or (str(signer.verifier_key),)
                return LocalLedgerClient(ledger), keys
            from ledger.http_client import HttpLedgerClient
            from ledger.server import load_write_token

            token = load_write_token(self.token_file) if self.token_file else None
            client = HttpLedgerClient(self.url, token, self.timeout)
            stack.callback(client.close)
            return client, self.verifier_keys
        except LedgerError as err:
            raise ConfigError(f"{self.source}: cannot open the log: {err}") from err


@dataclass
class OpenGate:
    """A started gate and what must be closed when it stops."""

    gate: Gate
    stack: ExitStack = field(repr=False)

    def close(self) -> None:
        self.stack.close()

    def __enter__(self) -> OpenGate:
        return self

    def __exit__(self, *exc_info: Any) -> None:
        self.close()


def load_gate_config(path: str | os.PathLike[str]) -> GateConfig:
    """Read a gate configuration file; raise ``ConfigError`` naming what is wrong."""
    source = Path(path).resolve()
    try:
        document = tomllib.loads(source.read_text(encoding="utf-8"))
    except OSError as err:
        raise ConfigError(f"cannot read gate configuration {path}: "
                          f"{err.strerror}") from err
    except (UnicodeDecodeError, tomllib.TOMLDecodeError) as err:
        raise ConfigError(f"gate configuration {path} is not valid TOML: "
                          f"{err}") from err
    base = source.parent
    unknown = set(document) - {"log", "gate"}
    if unknown:
        raise ConfigError(f"{path}: unknown sections {sorted(unknown)}; expected "
                          "[log] and [gate]")
    log = _table(document, "log", _LOG_KEYS, path)
    gate = _table(document, "gate", _GATE_KEYS, path)

    if ("database" in log) == ("url" in log):
        raise ConfigError(f"{path}: [log] needs exactly one of database (a local "
                          "log) and url (a log served over HTTP)")
    verifier_keys = tuple(_key_text(value, base, "[log] verifier_key")
                          for value in _strings(log, "verifier_key", path))
    options: dict[str, Any] = {"verifier_keys": verifier_keys}
    if "database" in log:
        if "key" not in log:
            raise ConfigError(f"{path}: [log] database needs key, the log's "
                              "signer key file")
        database = _string(log, "database", path)
        options["database"] = (database if "://" in database
                               else str(base / database))
        options["signer_key"] = base / _string(log, "key", path)
    else:
        if not verifier_keys:
            raise ConfigError(f"{path}: [log] url needs verifier_key, the log's "
                              "verifier key to pin")
        options["url"] = _string(log, "url", path)
        if "token_file" in log:
            options["token_file"] = base / _string(log, "token_file", path)
        if "timeout" in log:
            timeout = log["timeout"]
            if not isinstance(timeout, int | float) or not timeout > 0:
                raise ConfigError(f"{path}: [log] timeout must be positive "
                                  f"seconds, got {timeout!r}")
            options["timeout"] = float(timeout)

    anchors = tuple(_key_text(value, base, "[gate] trust_anchors")
                    for value in _strings(gate, "trust_anchors", path))
    if not anchors:
        raise ConfigError(f"{path}: [gate] trust_anchors must name at least one "
                          "principal key")
    chain = tuple(_certificate(base / value, path)
                  for value in _strings(gate, "chain", path))
    if "policy" in gate:
        options["policy"] = base / _string(gate, "policy", path)
    if "vault" in gate:
        options["vault"] = base / _string(gate, "vault", path)
    return GateConfig(source=source, trust_anchors=anchors, chain=chain, **options)


def _table(document: dict[str, Any], name: str, allowed: set[str],
           path: Any) -> dict[str, Any]:
    table = document.get(name, {})
    if not isinstance(table, dict):
        raise ConfigError(f"{path}: [{name}] must be a table")
    unknown = set(table) - allowed
    if unknown:
        raise ConfigError(f"{path}: unknown keys in [{name}]: {sorted(unknown)}; "
                          f"expected some of {sorted(allowed)}")
    return table


def _string(table: dict[str, Any], key: str, path: Any) -> str:
    value = table[key]
    if not isinstance(value, str) or not value:
        raise ConfigError(f"{path}: {key} must be a non-empty string, got {value!r}")
    return value


def _strings(table: dict[str, Any], key: str, path: Any) -> list[str]:
    """Return a string or list of strings as a list (empty when missing)."""
    value = table.get(key, [])
    if isinstance(value, str):
        value = [value]
    if not isinstance(value, list) or not all(
            isinstance(item, str) and item for item in value):
        raise ConfigError(f"{path}: {key} must be a string or a list of strings, "
                          f"got {value!r}")
    return value


def _key_text(value: str, base: Path, what: str) -> str:
    """Return a verifier key given as text, or read from the file it names."""
    try:
        parse_verifier_key(value)
        return value
    except GateError:
        pass
    if value.startswith("PRIVATE+KEY+"):
        raise ConfigError(f"{what}: got a signer (private) key, not shown; pass "
                          "the public verifier key instead, the NAME.pub file")
    key_path = base / value
    try:
        text = key_path.read_text(encoding="utf-8").strip()
    except (OSError, UnicodeDecodeError) as err:
        raise ConfigError(f"{what}: {value!r} is neither a verifier key nor a "
                          f"readable key file ({err})") from err
    try:
        parse_verifier_key(text)
    except GateError as err:
        raise ConfigError(f"{what}: {key_path} does not hold a verifier key: "
                          f"{err}") from err
    return text


def _certificate(path: Path, source: Any) -> Certificate:
    try:
        return Certificate.from_bytes(path.read_bytes())
    except OSError as err:
        raise ConfigError(f"{source}: cannot read certificate {path}: "
                          f"{err.strerror}") from err
    except DelegationError as err:
        raise ConfigError(f"{source}: certificate {path} is invalid: {err}") from err
