"""Policy files in YAML restricted to JSON, validation of the new rule kinds
and of the approval settings, and the checked-in JSON Schema."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
import yaml

from enforcement.errors import ConfigError
from enforcement.policy import (
    DEFAULT_POLICY,
    load_policy,
    parse_policy,
    parse_yaml,
    policy_json_schema,
)
from tests.enforcement.conftest import seeded_identity

SPECS = Path(__file__).resolve().parents[2] / "specs"
MINIMAL = {"version": 1, "name": "test"}
ALICE = seeded_identity("alice.approver").verifier_key
BOB = seeded_identity("bob.approver").verifier_key


def write(tmp_path, text: str, suffix: str = ".yaml") -> Path:
    path = tmp_path / f"policy{suffix}"
    path.write_text(text)
    return path


# -- YAML -------------------------------------------------------------------------


def test_yaml_hash_equals_toml(tmp_path):
    document = load_policy().document()
    path = write(tmp_path, yaml.safe_dump(document, sort_keys=False))

    assert load_policy(path).hash == load_policy(DEFAULT_POLICY).hash


def test_yml_suffix_loads(tmp_path):
    path = write(tmp_path, "version: 1\nname: short\n", ".yml")

    assert load_policy(path).name == "short"


@pytest.mark.parametrize(("text", "message"), [
    ("version: 1\nname: a\nname: b\n", "duplicate key 'name'"),
    ("version: 1\nname: &n a\nrules: []\nalias: *n\n",
     "anchors and aliases are not allowed in a policy"),
    ("version: 1\nname: a\nstarted: 2026-12-04\n",
     "dates and times are not JSON values; quote them as strings"),
    ("version: 1\nname: a\nalignment: {hold_below: .inf}\n",
     ".inf and .nan are not JSON numbers"),
    ("version: 1\nname: yes\n", "yes/no/on/off are not booleans here"),
    ("version: 1\nname: !!binary aGk=\n",
     "tag tag:yaml.org,2002:binary is not allowed in a policy"),
    ("version: 1\nname: a\nprofiles: !!set {x}\n",
     "tag tag:yaml.org,2002:set is not allowed in a policy"),
    ("version: 1\nname: !!python/object/apply:os.getcwd []\n",
     "could not determine a constructor for the tag"),
    ("version: 1\n1: a\n", "mapping key 1 is a int; keys must be strings"),
    ("version: 1\n---\nversion: 1\n", "expected a single document in the stream"),
    ("version: 1\nname: [a\n", "while parsing a flow sequence"),
])
def test_yaml_rejected(tmp_path, text, message):
    path = write(tmp_path, text)

    with pytest.raises(ConfigError, match=f"^policy file {re.escape(str(path))} is "
                       "not valid policy YAML: .*" + re.escape(message)):
        load_policy(path)


def test_yaml_top_level_list_rejected(tmp_path):
    path = write(tmp_path, "- version: 1\n")

    with pytest.raises(ConfigError, match="expected a mapping at the top level, got "
                       "list"):
        load_policy(path)


def test_yaml_plain_scalars_are_json():
    parsed = parse_yaml("a: ~\nb:\nc: 1e3\nd: '2026-01-01'\ne: 0x10\nf: 1_000\n"
                        "g: 1:30\nh: -7\ni: True\n")

    assert parsed == {"a": None, "b": None, "c": 1000.0, "d": "2026-01-01",
                      "e": "0x10", "f": "1_000", "g": "1:30", "h": -7, "i": True}


def test_toml_date_rejected(tmp_path):
    path = write(tmp_path, 'version = 1\nname = "a"\nstarted = 2026-12-04\n', ".toml")

    with pytest.raises(ConfigError, match=r"policy\.started: a date is not a JSON "
                       r"value.*write the value as a quoted string"):
        load_policy(path)


def test_non_utf8_rejected(tmp_path):
    path = tmp_path / "policy.yaml"
    path.write_bytes(b"name: \xff\n")

    with pytest.raises(ConfigError, match="is not UTF-8"):
        load_policy(path)


# -- rule kinds ---------------------------------------------------------------------


@pytest.mark.parametrize(("rule", "message"), [
    ({"kind": "sequence", "steps": []},
     r"rules\.0\.sequence\.steps: List should have at least 1 item"),
    ({"kind": "sequence", "steps": [{"min_count": 2}]},
     r"a call pattern needs at least one of tools, labels or data_classes"),
    ({"kind": "sequence", "steps": [{"labels": ["teleport"]}]},
     r"unknown label 'teleport'"),
    ({"kind": "sequence", "steps": [{"tools": ["a*b"]}]},
     r"rules\.0\.sequence\.steps\.0\.tools\.0: String should match pattern "
     r".*\(got 'a\*b'\)"),
    ({"kind": "sequence", "steps": [{"tools": ["x"], "min_count": 0}]},
     r"min_count: Input should be greater than or equal to 1 \(got 0\)"),
    ({"kind": "data_flow", "roles": ["boss"]}, r"unknown role 'boss'"),
    ({"kind": "data_flow", "roles": ["recipient"], "sources": ["trusted"]},
     r"sources\.0: Input should be 'instruction', 'text', 'structured' or "
     r"'unknown' \(got 'trusted'\)"),
    ({"kind": "data_flow", "roles": ["recipient"], "sources": []},
     r"sources: List should have at least 1 item"),
    ({"kind": "volume", "data_classes": ["financial"], "unit": "pages",
      "limit": 1, "window_seconds": 1},
     r"unit: Input should be 'records' or 'bytes' \(got 'pages'\)"),
    ({"kind": "volume", "data_classes": ["gossip"], "unit": "records",
      "limit": 1, "window_seconds": 1}, r"unknown data class 'gossip'"),
])
def test_bad_rule_rejected(rule, message):
    with pytest.raises(ConfigError, match=message):
        parse_policy({**MINIMAL, "rules": [{"id": "r", **rule}]})


def test_alignment_rule_id_reserved():
    rule = {"id": "alignment", "kind": "amount_threshold", "max_amount": 1}

    with pytest.raises(ConfigError, match="rule id 'alignment' is reserved"):
        parse_policy({**MINIMAL, "rules": [rule]})


# -- approvals ----------------------------------------------------------------------


def approvals(**changes) -> dict:
    return {**MINIMAL, "rules": [
        {"id": "value.large", "kind": "amount_threshold", "max_amount": 10}],
        "approvals": {"approvers": [ALICE, BOB], **changes}}


def test_approvals_defaults():
    policy = parse_policy(approvals())

    assert policy.approvals.quorum == 1
    assert policy.approvals.rules == ["*"]
    assert policy.approvals.expiry_seconds == 3600
    assert policy.approvals.wait_seconds == 0
    assert policy.approvals.covers({"value.large", "alignment"})


def test_approvals_cover_listed_rules_only():
    policy = parse_policy(approvals(rules=["value.large"]))

    assert policy.approvals.covers({"value.large"})
    assert not policy.approvals.covers({"value.large", "alignment"})


@pytest.mark.parametrize(("changes", "message"), [
    ({"approvers": []}, r"approvals\.approvers: List should have at least 1 item"),
    ({"approvers": ["alice+00000000+AAAA"]},
     r"approvals: Value error, approvers: key 'alice\+00000000\+AAAA': expected "
     r"33 bytes"),
    ({"approvers": [ALICE, ALICE]}, r"an approver key is listed twice"),
    ({"quorum": 3}, r"quorum 3 exceeds the 2 approver key\(s\) listed"),
    ({"quorum": 0}, r"quorum: Input should be greater than or equal to 1"),
    ({"rules": ["value.tiny"]},
     r"approvals\.rules names 'value\.tiny', which is not a rule id of this "
     r"policy; known: \*, alignment, value\.large"),
    ({"expiry_seconds": 0}, r"expiry_seconds: Input should be greater than 0"),
    ({"wait_seconds": -1}, r"wait_seconds: Input should be greater than or equal"),
    ({"approve_all": True}, r"approvals\.approve_all: Extra inputs are not permitted"),
])
def test_bad_approvals_rejected(changes, message):
    with pytest.raises(ConfigError, match=message):
        parse_policy(approvals(**changes))


# -- documentation --------------------------------------------------------------------


def test_schema_file_is_current():
    checked_in = (SPECS / "policy.schema.json").read_text()

    assert checked_in == policy_json_schema(), (
        "specs/policy.schema.json differs from the model; regenerate it with: "
        ".venv/bin/python -c 'from enforcement.policy import policy_json_schema; "
        "print(policy_json_schema(), end=\"\")' > specs/policy.schema.json")


def test_schema_lists_rule_kinds():
    schema = json.loads(policy_json_schema())

    kinds = sorted(schema["properties"]["rules"]["items"]["discriminator"]
                   ["mapping"])
    assert kinds == ["amount_threshold", "amount_total", "data_flow", "rate_limit",
                     "sensitive_read_then_egress", "sequence", "volume"]


def test_spec_example_loads(tmp_path):
    text = (SPECS / "policy.md").read_text()
    (example,) = re.findall(r"```yaml\n(.*?)```", text, re.DOTALL)
    path = write(tmp_path, example)

    policy = load_policy(path)

    assert [rule.id for rule in policy.rules] == [
        "sequence.bulk-read-then-send", "flow.recipient-from-output",
        "volume.personal-records", "limit.session-rate", "value.large-amount"]
    assert policy.approvals.quorum == 2
