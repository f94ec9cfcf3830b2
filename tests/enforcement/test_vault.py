"""The argument vault: commitments that open, and persistence in SQLite."""

from __future__ import annotations

import hashlib

import pytest
import rfc8785

from enforcement.vault import ArgumentVault, check_opening


def test_commitment_opens(tmp_path):
    vault = ArgumentVault(str(tmp_path / "vault.db"))
    value = {"iban": "GB29", "amount": 900.5}

    commitment = vault.commit_values("d-1", {"payee": value})["payee"]
    name, salt, opened = vault.open(commitment)

    assert name == "payee"
    assert opened == value
    assert commitment == hashlib.sha256(salt + rfc8785.dumps(value)).hexdigest()
    assert check_opening(commitment, salt, value)
    assert not check_opening(commitment, salt, {"iban": "GB29", "amount": 901})
    vault.close()


def test_openings_survive_reopen(tmp_path):
    path = str(tmp_path / "vault.db")
    vault = ArgumentVault(path)
    commitment = vault.commit_values("d-1", {"city": "Paris"})["city"]
    vault.close()

    reopened = ArgumentVault(path)

    assert reopened.open(commitment)[2] == "Paris"
    reopened.close()


def test_unknown_commitment_raises_key_error():
    vault = ArgumentVault()
    with pytest.raises(KeyError):
        vault.open("0" * 64)


def test_same_value_gets_fresh_salt():
    vault = ArgumentVault()
    first = vault.commit_values("d-1", {"x": 1})["x"]
    second = vault.commit_values("d-2", {"x": 1})["x"]
    assert first != second
