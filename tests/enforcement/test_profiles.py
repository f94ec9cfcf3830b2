"""Tool profiles: argument roles derived from names, and the labels derived
for tools that take a command line."""

from __future__ import annotations

import pytest

from enforcement.profiles import ROLES, argument_role, derive_profile
from tests.enforcement.conftest import policy_with


@pytest.mark.parametrize(("argument", "role"), [
    ("command", "command"),
    ("cmd", "command"),
    ("shell_command", "command"),
    ("script", "command"),
    ("Command", "command"),
    ("commandLine", "command"),
    ("command_id", "identifier"),
    ("script_path", "path"),
    ("recipient", "recipient"),
    ("reason", "other"),
])
def test_argument_role_from_name(argument, role):
    assert argument_role(argument) == role


def test_command_is_a_known_role():
    assert "command" in ROLES


@pytest.mark.parametrize(("tool", "arguments"), [
    ("run_command", ["command"]),
    ("execute", ["cmd", "cwd"]),
    ("run_script", ["script"]),
    ("list_files", ["shell_command"]),
])
def test_command_tool_derived_destructive(tool, arguments):
    profile = derive_profile(tool, arguments)

    assert "destructive" in profile.labels
    assert profile.high_risk


def test_tool_without_command_not_destructive():
    profile = derive_profile("list_files", ["directory"])

    assert profile.labels == frozenset({"read"})


def test_policy_override_replaces_command_labels(make_harness):
    harness = make_harness(policy=policy_with(profiles={
        "run_command": {"labels": ["read"]}}))

    profile = harness.gate.register_tool("run_command", arguments=["command"])

    assert profile.labels == frozenset({"read"})
    assert profile.role("command") == "command"


def test_policy_accepts_command_role():
    policy = policy_with(profiles={"deploy": {"roles": {"target": "command"}}})

    assert policy.profiles["deploy"].roles == {"target": "command"}


def test_arguments_with_roles_after_override():
    profile = derive_profile("send_money", ["recipient", "amount"])
    assert profile.arguments_with_roles({"amount"}) == ["amount"]

    changed = profile.with_overrides(roles={"recipient": "recipient",
                                            "amount": "other"})

    assert changed.arguments_with_roles({"amount"}) == []
    assert changed.arguments_with_roles(["amount", "recipient"]) == ["recipient"]
    assert profile.arguments_with_roles({"amount"}) == ["amount"]
