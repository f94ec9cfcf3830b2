"""Policy files in TOML, YAML and JSON, mutated and random.

Loading raises only ``ConfigError``. A file that loads means the same in
every format: its document written as YAML and as JSON loads to the same
policy hash, and the policy's own document loads back to that hash.
"""

import json
import tomllib

import yaml
from click.testing import CliRunner
from hypothesis import given
from hypothesis import strategies as st

from enforcement.cli import main
from enforcement.errors import ConfigError
from enforcement.policy import load_policy, parse_policy, parse_yaml
from tests.fuzz.mutations import FAST, SLOW, json_values, mutated_json, mutated_text
from tests.fuzz.samples import POLICY_DIRECTORY, scratch_directory

TOML = (POLICY_DIRECTORY / "default.toml").read_text()
DOCUMENT = tomllib.loads(TOML)


def load(text: str, suffix: str):
    """Load ``text`` as a policy file with ``suffix``; return the policy or None.

    A rejection must be one plain message: pydantic's own wording (its
    links, "type=", "input_value=") and tracebacks stay out of it.
    """
    path = scratch_directory() / f"policy{suffix}"
    path.write_text(text, encoding="utf-8", errors="surrogateescape")
    try:
        return load_policy(path)
    except ConfigError as err:
        check_message(str(err))
        return None


def check_message(message: str) -> None:
    assert message, "empty message"
    for fragment in ("pydantic", "Traceback", "input_value=", "[type="):
        assert fragment not in message, message


def check_same_everywhere(policy, document) -> None:
    as_yaml = load(yaml.safe_dump(document, allow_unicode=True), ".yaml")
    as_json = load(json.dumps(document), ".json")
    assert as_yaml is not None
    assert as_json is not None
    assert as_yaml.hash == as_json.hash == policy.hash
    assert parse_policy(policy.document()).hash == policy.hash


@SLOW
@given(mutated_text(TOML, max_edits=2))
def test_mutated_toml_policy(text):
    policy = load(text, ".toml")
    if policy is not None:
        check_same_everywhere(policy, tomllib.loads(text))


@SLOW
@given(mutated_json(DOCUMENT))
def test_mutated_policy_document(document):
    policy = load(json.dumps(document), ".json")
    if policy is not None:
        check_same_everywhere(policy, document)


YAML = yaml.safe_dump(DOCUMENT)


@SLOW
@given(mutated_text(YAML, max_edits=2))
def test_mutated_yaml_policy(text):
    policy = load(text, ".yaml")
    if policy is not None:
        check_same_everywhere(policy, parse_yaml(text))


@FAST
@given(st.text(max_size=300), st.sampled_from([".toml", ".yaml", ".yml", ".json"]))
def test_random_policy_file_rejected_cleanly(text, suffix):
    assert load(text, suffix) is None


@FAST
@given(json_values)
def test_random_policy_document_rejected_cleanly(document):
    try:
        parse_policy(document)
    except ConfigError as err:
        check_message(str(err))


def test_invalid_policy_file_through_cli(tmp_path):
    path = tmp_path / "policy.toml"
    path.write_text(TOML.replace("version = 1", 'version = "one"', 1))

    result = CliRunner().invoke(main, ["demo", "--policy", str(path)])

    assert result.exit_code == 2
    assert "Invalid value for --policy" in result.output
    assert "version: Input should be 1 (got 'one')" in result.output
    assert "Traceback" not in result.output
