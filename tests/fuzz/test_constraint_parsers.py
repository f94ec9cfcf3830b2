"""Constraint values of certificates, read by the gate and by the verifier.

A certificate's constraints are parsed by ``enforcement.constraints`` when
the gate uses it and by ``verifier.constraints`` when an auditor checks it.
The verifier must never accept a value that the gate rejects: an auditor
would then pass a chain that no honest gate could have used. The reverse
is allowed in one place only: the verifier rejects host names outside ASCII
(it has no IDNA tables), where the gate maps them to A-labels.
"""

import pytest
from hypothesis import given
from hypothesis import strategies as st

from enforcement.canonical import canonical_host
from enforcement.constraints import Constraint
from enforcement.errors import GateError
from tests.fuzz.mutations import FAST
from verifier import MalformedInput, VerificationError
from verifier.constraints import parse_kind

# Characters that shells, URLs and host names give meaning to, in ASCII.
SHELL_AND_URL = "ab/.-_:*?![]{}()#~$`;&|<> \t\"'\\%2FxnAZ09@=,"
# The same with digits and letters outside ASCII: superscript two, an
# Arabic-Indic digit, a full-width digit, and an accented letter.
WITH_UNICODE = SHELL_AND_URL + "\u00b2\u0661\uff11\u00e9"
STARTS = {
    "commands": ["git status", "*/ls -l", "/usr/bin/git", ""],
    "url_prefix": ["https://api.example.com/v1/", "http://1.2.3.4:8080/", "https://"],
    "domains": ["*.example.com", "example.com", "xn--bcher-kva.example", "xn--", ""],
    "path_prefix": ["/srv/data", "/", ""],
}


def gate_accepts(kind: str, value: str) -> bool:
    try:
        Constraint.parse("argument", {kind: [value]})
    except GateError:
        return False
    return True


def verifier_accepts(kind: str, value: str) -> bool:
    try:
        parse_kind(kind, [value], "constraint")
    except VerificationError:
        return False
    return True


@st.composite
def constraint_values(draw, alphabet: str):
    kind = draw(st.sampled_from(sorted(STARTS)))
    start = draw(st.sampled_from(STARTS[kind]))
    if draw(st.booleans()):
        start = start[: draw(st.integers(min_value=0, max_value=len(start)))]
    return kind, start + draw(st.text(alphabet, max_size=8))


@FAST
@given(constraint_values(SHELL_AND_URL))
def test_parsers_agree_on_ascii_values(case):
    kind, value = case
    assert verifier_accepts(kind, value) == gate_accepts(kind, value), case


@FAST
@given(constraint_values(WITH_UNICODE))
def test_verifier_never_looser_than_gate(case):
    kind, value = case
    if verifier_accepts(kind, value):
        assert gate_accepts(kind, value), case


# Found by fuzzing. Each value was accepted by the verifier and rejected by
# the gate, or made the verifier raise ValueError. Both now reject each one,
# the verifier with MalformedInput.
REJECTED_BY_BOTH = [
    # Digits outside ASCII pass str.isdigit(); int() reads some and not others.
    ("url_prefix", "https://api.example.com:\u00b2/v1/"),
    ("url_prefix", "https://api.example.com:\u0668\u0660/v1/"),
    ("url_prefix", "https://\u0661.\u0662.\u0663.4/v1/"),
    # An empty port after the colon.
    ("url_prefix", "https://api.example.com:/v1/"),
    # A host whose last label is numeric is read as an IPv4 address.
    ("url_prefix", "https://api.1/v1/"),
    ("url_prefix", "https://api.0x1f/v1/"),
    # '..' is never allowed in a scope, not even where it would normalize.
    ("url_prefix", "https://api.example.com/v1/../admin"),
    ("url_prefix", "https://api.example.com/v1/%2e%2e/admin"),
    ("url_prefix", "https://api.example.com/" + "a" * 8192),
    ("domains", "0"),
    ("domains", "example.9"),
    ("domains", "1.2.3.4"),
    ("domains", "xn--a"),
    ("domains", "xn--bcher-a"),
    ("domains", "a" * 250 + ".com"),
    ("commands", "git!status"),
    ("commands", "git status?"),
    ("commands", "ls *"),
    ("commands", "ls [ab]"),
    ("commands", "echo {a,b}"),
    ("commands", "ls ~"),
    ("commands", "ls #comment"),
    ("commands", "git status\x00"),
    ("commands", "PATH=/tmp ls"),
    ("commands", "if true"),
    ("commands", "sudo ls"),
    ("commands", "/usr/bin/env ls"),
    ("commands", "*/bin/ls"),
    ("commands", "./ls"),
    ("commands", "bin/ls"),
    ("commands", 'echo "\\$HOME"'),
    ("commands", "ls \\"),
    ("commands", "ls\n"),
]


@pytest.mark.parametrize(("kind", "value"), REJECTED_BY_BOTH)
def test_found_value_rejected_by_both(kind, value):
    assert not gate_accepts(kind, value)
    with pytest.raises(MalformedInput):
        parse_kind(kind, [value], "constraint")


@pytest.mark.parametrize(
    ("kind", "value"),
    [
        ("url_prefix", "https://api.example.com:0443/v1/"),
        ("url_prefix", "http://1.2.3.4:8080/"),
        ("domains", "*.xn--bcher-kva.example"),
        ("commands", "*/ls -l"),
        ("commands", "echo ';' \\;"),
        ("commands", "git log --format='%h %s'"),
    ],
)
def test_valid_value_accepted_by_both(kind, value):
    assert gate_accepts(kind, value)
    assert verifier_accepts(kind, value)


def test_verifier_rejects_superscript_host_cleanly():
    # Found by fuzzing: int("\u00b2") raised ValueError out of the parser. The
    # gate maps the host to 1.2.3.2 (UTS 46); the verifier rejects it as a
    # host outside ASCII.
    assert gate_accepts("url_prefix", "https://1.2.3.\u00b2/v1/")
    with pytest.raises(MalformedInput, match="is not ASCII"):
        parse_kind("url_prefix", ["https://1.2.3.\u00b2/v1/"], "constraint")


def test_gate_rejects_host_of_other_digits():
    # Found by fuzzing: every label passed str.isdigit(), so the gate took
    # Arabic-Indic digits for an IPv4 address.
    with pytest.raises(ValueError, match="four decimal numbers"):
        canonical_host("\u0661.\u0662.\u0663.4")
