"""Policy: loading, every kind of bad policy, the hash and its policy record."""

from __future__ import annotations

import hashlib
import json

import pytest
import rfc8785

from enforcement.errors import ConfigError, Denied, Held
from enforcement.policy import DEFAULT_POLICY, load_policy, parse_policy
from tests.enforcement.conftest import issue, seeded_identity, verify

MINIMAL = {"version": 1, "name": "test"}


def test_default_policy_loads():
    policy = load_policy()

    assert policy.name == "agentgate-default"
    assert [rule.id for rule in policy.rules] == [
        "sequence.exfiltration", "limit.agent-rate", "limit.session-rate",
        "value.large-amount", "value.session-total",
    ]
    assert policy.alignment.hold_below == 0.5
    assert policy.alignment.deny_below == 0.15


def test_minimal_policy_defaults():
    policy = parse_policy(MINIMAL)

    assert policy.rules == []
    assert policy.document()["alignment"] == {"hold_below": 0.5, "deny_below": 0.15}


@pytest.mark.parametrize(("change", "message"), [
    ({"extra": 1}, r"extra: Extra inputs are not permitted"),
    ({"alignment": {"hold_below": 0.5, "hold_above": 0.9}},
     r"alignment\.hold_above: Extra inputs are not permitted"),
    ({"rules": [{"id": "r", "kind": "rate_limit", "per": "agent", "limit": 1,
                 "window_seconds": 1, "burst": 2}]},
     r"rules\.0\.rate_limit\.burst: Extra inputs are not permitted"),
    ({"profiles": {"send_money": {"labels": ["teleport"]}}},
     r"profiles\.send_money: Value error, unknown label 'teleport'; known: "
     r"credential, destructive, egress, financial, read, write"),
    ({"profiles": {"send_money": {"roles": {"to": "boss"}}}},
     r"profiles\.send_money: Value error, unknown role 'boss'"),
    ({"profiles": {"get_file": {"data_classes": ["secrets"]}}},
     r"profiles\.get_file: Value error, unknown data class 'secrets'"),
    ({"rules": [{"id": "x", "kind": "sensitive_read_then_egress",
                 "data_classes": ["gossip"]}]},
     r"unknown data class 'gossip'"),
    ({"rules": [{"id": "x", "kind": "amount_threshold", "max_amount": 1},
                {"id": "x", "kind": "amount_total", "max_total": 2}]},
     r"\(top\): Value error, rule id 'x' is used twice"),
    ({"rules": [{"id": "x", "kind": "teleport"}]},
     r"rules\.0: Input tag 'teleport' found using 'kind' does not match"),
    ({"rules": [{"id": "has space", "kind": "amount_threshold", "max_amount": 1}]},
     r"rules\.0\.amount_threshold\.id: String should match pattern"),
    ({"alignment": {"hold_below": 0.5, "deny_below": 0.6}},
     r"alignment: Value error, deny_below \(0\.6\) must not exceed hold_below "
     r"\(0\.5\)"),
    ({"alignment": {"hold_below": 1.5}},
     r"alignment\.hold_below: Input should be less than or equal to 1"),
    ({"version": 2}, r"version: Input should be 1"),
])
def test_bad_policy_rejected(change, message):
    with pytest.raises(ConfigError, match=r"^policy is not a valid policy: .*"
                       + message):
        parse_policy({**MINIMAL, **change})


def test_missing_name_rejected():
    with pytest.raises(ConfigError, match="name: Field required"):
        parse_policy({"version": 1})


def test_bad_toml_rejected(tmp_path):
    path = tmp_path / "policy.toml"
    path.write_text('version = 1\nname = "unterminated\n')

    with pytest.raises(ConfigError, match=f"policy file {path} is not valid TOML"):
        load_policy(path)


def test_wrong_suffix_rejected(tmp_path):
    path = tmp_path / "policy.ini"
    path.write_text("version: 1\n")

    with pytest.raises(ConfigError, match=r"expected a \.yaml, \.yml, \.toml or "
                       r"\.json file, got '\.ini'"):
        load_policy(path)


def test_no_suffix_rejected(tmp_path):
    path = tmp_path / "policy"
    path.write_text("version = 1\n")

    with pytest.raises(ConfigError, match="got 'no suffix'"):
        load_policy(path)


def test_missing_file_rejected(tmp_path):
    with pytest.raises(ConfigError, match="cannot read policy file .*absent.toml"):
        load_policy(tmp_path / "absent.toml")


def test_json_duplicate_member_rejected(tmp_path):
    path = tmp_path / "policy.json"
    path.write_text('{"version": 1, "name": "a", "name": "b"}')

    with pytest.raises(ConfigError, match="duplicate member name 'name'"):
        load_policy(path)


def test_file_errors_name_the_file(tmp_path):
    path = tmp_path / "policy.toml"
    path.write_text('version = 1\nname = "t"\nsurprise = true\n')

    with pytest.raises(ConfigError, match=f"^{path} is not a valid policy: "
                       "surprise: Extra inputs are not permitted"):
        load_policy(path)


# -- hash -----------------------------------------------------------------------


def test_hash_is_sha256_of_canonical_document():
    policy = load_policy()

    expected = hashlib.sha256(rfc8785.dumps(policy.document())).hexdigest()

    assert policy.hash == expected


def test_hash_same_from_toml_and_reordered_json(tmp_path):
    document = load_policy().document()
    reordered = json.dumps(dict(reversed(list(document.items()))), indent=3)
    path = tmp_path / "policy.json"
    path.write_text(reordered)

    assert load_policy(path).hash == load_policy(DEFAULT_POLICY).hash


def test_hash_changes_with_threshold():
    changed = parse_policy({**MINIMAL, "alignment": {"hold_below": 0.55}})
    assert changed.hash != parse_policy(MINIMAL).hash


def test_policy_record_is_first_sealed(harness):
    records = harness.records()
    keys = [r for r in records if r["type"] == "key"]
    first_sealed = records[len(keys)]

    assert records[:len(keys)] == keys
    assert harness.gate.policy_index == len(keys)
    assert first_sealed["type"] == "policy"
    assert first_sealed["hash"] == harness.gate.policy_hash
    assert first_sealed["hash"] == hashlib.sha256(
        rfc8785.dumps(first_sealed["document"])).hexdigest()
    assert first_sealed["document"] == harness.gate.policy.document()


def test_every_decision_cites_policy(harness, agent):
    gate = harness.gate

    @gate.guard
    def get_balance() -> float:
        return 10.0

    @gate.guard
    def send_money(recipient: str, amount: float) -> dict:
        return {}

    receipts = []
    with gate.session("pay the rent of 900 to GB29NWBK60161331926819"):
        get_balance()
        send_money("GB29NWBK60161331926819", 900)
        with pytest.raises(Held) as held:
            send_money("GB29NWBK60161331926819", 9000)
        receipts.append(held.value.receipt)
    untrusted_chain = [issue(seeded_identity("mallory.test"), agent)]
    with gate.session("check the balance", chain=untrusted_chain):
        with pytest.raises(Denied) as denied:
            get_balance()
        receipts.append(denied.value.receipt)

    decisions = harness.records_of("decision")
    assert [d["verdict"] for d in decisions] == ["allow", "allow", "hold", "deny"]
    assert {d["policy"] for d in decisions} == {gate.policy_hash}
    assert [verify(r).record["policy"] for r in receipts] == [gate.policy_hash] * 2
