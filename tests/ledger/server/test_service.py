"""The server's settings, write token and error mapping, without HTTP."""

import pytest

from ledger.errors import (
    InvalidEntry,
    InvalidKey,
    InvalidRequest,
    KeyFileError,
    LedgerError,
    StorageError,
)
from ledger.sequencer import SequencerClosed
from ledger.server import (
    LogService,
    ServerSettings,
    check_write_token,
    load_write_token,
)
from ledger.server.service import http_error_for

from .conftest import TOKEN


@pytest.mark.parametrize(
    ("token", "message"),
    [
        ("a" * 15, "write token is 15 characters; expected 16 to 1024"),
        ("a" * 1025, "write token is 1025 characters; expected 16 to 1024"),
        ("a" * 16 + " b", "contains a space, control or non-ASCII character"),
        ("a" * 16 + "\u00e9", "contains a space, control or non-ASCII character"),
        ("a" * 8 + "\n" + "b" * 8, "contains a space, control or non-ASCII"),
        (b"a" * 16, "write token must be a string, got bytes"),
    ],
)
def test_invalid_write_token(token, message):
    with pytest.raises(InvalidKey, match=message):
        check_write_token(token)


def test_valid_write_token():
    assert check_write_token("a" * 16) == "a" * 16
    assert check_write_token("~!" * 512) == "~!" * 512


@pytest.mark.parametrize("ending", ["", "\n", "\r\n"])
def test_load_write_token(tmp_path, ending):
    path = tmp_path / "token"
    path.write_bytes(TOKEN.encode() + ending.encode())
    path.chmod(0o600)
    assert load_write_token(path) == TOKEN


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (b"", "write token is 0 characters"),
        (TOKEN.encode() + b"\n\n", "contains a space, control or non-ASCII"),
        (b"\xff" * 20, "is not ASCII text"),
    ],
)
def test_invalid_token_file(tmp_path, content, message):
    path = tmp_path / "token"
    path.write_bytes(content)
    path.chmod(0o600)
    with pytest.raises(KeyFileError, match=f"token file {path}.*{message}"):
        load_write_token(path)


def test_token_file_group_readable(tmp_path):
    path = tmp_path / "token"
    path.write_text(TOKEN)
    path.chmod(0o640)
    with pytest.raises(KeyFileError, match=r"has mode 0640.*run: chmod 600"):
        load_write_token(path)


@pytest.mark.parametrize("limit", [0, (1 << 20) + 1])
def test_body_limit_bounds(signer, limit):
    with pytest.raises(InvalidRequest, match=f"body limit {limit} bytes is outside"):
        ServerSettings("log.db", [signer], TOKEN, max_body_bytes=limit)


def test_settings_hide_token(signer):
    assert TOKEN not in repr(ServerSettings("log.db", [signer], TOKEN))


@pytest.mark.parametrize(
    ("error", "status", "code"),
    [
        (InvalidEntry("bad"), 400, "invalid_entry"),
        (InvalidRequest("bad"), 400, "invalid_request"),
        (StorageError("disk full"), 503, "unavailable"),
        (SequencerClosed("closed"), 503, "unavailable"),
        (LedgerError("odd"), 500, "internal_error"),
    ],
)
def test_ledger_error_mapping(error, status, code):
    converted = http_error_for(error)
    assert (converted.status_code, converted.code) == (status, code)
    assert str(error) in converted.detail


def test_service_start_and_stop_are_idempotent(tmp_path, signer):
    service = LogService(ServerSettings(str(tmp_path / "log.db"), [signer], TOKEN))
    assert service.ledger is None

    service.start()
    ledger = service.ledger
    service.start()
    assert service.ledger is ledger
    found, size = service.read_at_size(lambda size: size)
    assert (found, size) == (1, 1)

    service.stop()
    service.stop()
    assert service.ledger is None
