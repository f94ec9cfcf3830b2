"""Constraint kinds: each kind's checks, its strict parse and its ``within``
rule, judged through a scope as the gate judges them."""

from __future__ import annotations

import re

import pytest

from enforcement.constraints import Constraint
from enforcement.errors import DelegationError
from enforcement.scope import Scope


def scope_of(*capabilities: dict) -> Scope:
    return Scope.parse({"capabilities": list(capabilities)})


PAY = scope_of({"tool": "send_money", "constraints": {
    "amount": {"max": 500}, "recipient": {"one_of": ["GB29", "DE89"]}}})


# -- max ------------------------------------------------------------------------


@pytest.mark.parametrize("amount", [0, 499.99, 500, 500.0, -3])
def test_max_allows_up_to_limit(amount):
    assert PAY.check("send_money", {"amount": amount, "recipient": "GB29"}) == []


def test_max_refuses_above_limit():
    problems = PAY.check("send_money", {"amount": 500.01, "recipient": "GB29"})
    assert problems == ["argument 'amount'=500.01 breaks {'max': 500}"]


@pytest.mark.parametrize("amount", ["100", True, None, [100], {"value": 100}])
def test_max_refuses_non_number(amount):
    problems = PAY.check("send_money", {"amount": amount, "recipient": "GB29"})
    assert problems == [f"argument 'amount'={amount!r} breaks {{'max': 500}}"]


def test_max_must_be_number():
    with pytest.raises(DelegationError, match="constraint max on 'amount' must be "
                       "a number, got '500'") as caught:
        Constraint.parse("amount", {"max": "500"})
    assert caught.value.rule == "scope.constraint"


# -- one_of ---------------------------------------------------------------------


def test_one_of_scalar_allowed():
    assert PAY.check("send_money", {"amount": 1, "recipient": "DE89"}) == []


def test_one_of_scalar_refused():
    problems = PAY.check("send_money", {"amount": 1, "recipient": "FR76"})
    assert problems == [
        "argument 'recipient'='FR76' breaks {'one_of': ['GB29', 'DE89']}"
    ]


def test_one_of_list_all_inside_allowed():
    assert PAY.check("send_money", {"amount": 1, "recipient": ["GB29", "DE89"]}) == []


def test_one_of_list_one_outside_refused():
    problems = PAY.check("send_money",
                         {"amount": 1, "recipient": ["GB29", "FR76"]})
    assert problems == [
        "argument 'recipient'=['GB29', 'FR76'] breaks {'one_of': ['GB29', 'DE89']}"
    ]


@pytest.mark.parametrize(("allowed", "value"), [([1], True), ([0], False),
                                                ([True], 1), (["1"], 1)])
def test_one_of_compares_json_types(allowed, value):
    scope = scope_of({"tool": "t", "constraints": {"flag": {"one_of": allowed}}})
    assert scope.check("t", {"flag": value}) != []


def test_one_of_integer_equals_float():
    scope = scope_of({"tool": "t", "constraints": {"n": {"one_of": [2]}}})
    assert scope.check("t", {"n": 2.0}) == []


def test_one_of_object_values():
    scope = scope_of({"tool": "t", "constraints": {
        "to": {"one_of": [{"iban": "GB29"}]}}})
    assert scope.check("t", {"to": {"iban": "GB29"}}) == []
    assert scope.check("t", {"to": {"iban": "FR76"}}) != []


@pytest.mark.parametrize("value", [[], "GB29"])
def test_one_of_must_be_non_empty_list(value):
    with pytest.raises(DelegationError, match="one_of on 'to' must be a non-empty "
                       "list"):
        Constraint.parse("to", {"one_of": value})


# -- min and several kinds on one argument ------------------------------------------


RANGE = scope_of({"tool": "t", "constraints": {"n": {"min": 1, "max": 10}}})


@pytest.mark.parametrize("value", [1, 5.5, 10])
def test_min_and_max_allow_range(value):
    assert RANGE.check("t", {"n": value}) == []


def test_below_min_refused():
    assert RANGE.check("t", {"n": 0}) == ["argument 'n'=0 breaks {'min': 1}"]


def test_range_reports_each_broken_kind():
    assert RANGE.check("t", {"n": "5"}) == [
        "argument 'n'='5' breaks {'max': 10}",
        "argument 'n'='5' breaks {'min': 1}",
    ]


def test_min_must_be_number():
    with pytest.raises(DelegationError, match="constraint min on 'n' must be a "
                       "number, got True") as caught:
        Constraint.parse("n", {"min": True})
    assert caught.value.rule == "scope.constraint"


def test_empty_constraint_object_rejected():
    with pytest.raises(DelegationError, match="constraint on 'n' must be an object "
                       "of one or more constraint kinds, got {}"):
        Constraint.parse("n", {})


def test_unknown_kind_lists_known_kinds():
    with pytest.raises(DelegationError, match="unknown constraint kind 'regex' on "
                       "'n'; this gate understands commands, domains, max, min, "
                       "one_of, path_prefix, url_prefix"):
        Constraint.parse("n", {"max": 1, "regex": ".*"})


@pytest.mark.parametrize(("child", "parent", "within"), [
    ({"min": 2}, {"min": 1}, True),
    ({"min": 0}, {"min": 1}, False),
    ({"min": 2, "max": 5}, {"min": 1, "max": 10}, True),
    ({"min": 2, "max": 11}, {"min": 1, "max": 10}, False),
    ({"max": 5}, {"min": 1, "max": 10}, False),
    ({"max": 5, "one_of": [3]}, {"max": 10}, True),
])
def test_constraint_within(child, parent, within):
    assert Constraint.parse("n", child).within(Constraint.parse("n", parent)) \
        is within


def test_child_adds_kind_to_inherited_one():
    parent = scope_of({"tool": "t", "constraints": {"n": {"max": 10}}})

    effective = parent.attenuate(scope_of({"tool": "t", "constraints": {
        "n": {"min": 3}}}))

    assert effective.to_json() == {"capabilities": [{
        "tool": "t", "constraints": {"n": {"max": 10, "min": 3}}}]}
    assert effective.check("t", {"n": 11}) == ["argument 'n'=11 breaks {'max': 10}"]


# -- path_prefix ----------------------------------------------------------------------


FILES = scope_of({"tool": "read_file", "constraints": {
    "path": {"path_prefix": ["/srv/data", "/srv/shared/"]}}})


@pytest.mark.parametrize("path", ["/srv/data", "/srv/data/x", "/srv/shared/a/b",
                                  ["/srv/data/a", "/srv/shared/b"], []])
def test_path_prefix_allows(path):
    assert FILES.check("read_file", {"path": path}) == []


@pytest.mark.parametrize(("path", "detail"), [
    ("/srv/database", "it reads as /srv/database"),
    ("/srv/data/../etc/passwd", "it reads as /srv/etc/passwd"),
    ("/srv/data/%2e%2e/etc", "it reads as /srv/etc"),
    ("/srv//data/../../etc", "it reads as /etc"),
    ("/srv/data/a\x00", "path '/srv/data/a\\x00' contains a NUL byte"),
    ("report.txt", "path 'report.txt' is relative and the constraint names no base "
                   "directory; pass an absolute path"),
    (["/srv/data/a", "/etc/b"], "it reads as /etc/b"),
    (7, "expected a string, got int"),
])
def test_path_prefix_refuses(path, detail):
    assert FILES.check("read_file", {"path": path}) == [
        f"argument 'path'={path!r} breaks {{'path_prefix': ['/srv/data', "
        f"'/srv/shared/']}}: {detail}"
    ]


def test_path_prefix_base_resolves_relative():
    scope = scope_of({"tool": "t", "constraints": {"path": {"path_prefix": {
        "prefixes": ["/srv/data"], "base": "/srv/data"}}}})

    assert scope.check("t", {"path": "reports/q1.txt"}) == []
    assert scope.check("t", {"path": "../etc/passwd"}) != []


@pytest.mark.parametrize(("raw", "message"), [
    (["srv"], "constraint path_prefix on 'p': path prefix 'srv' must be absolute"),
    (["/srv/../etc"], "'..' is never allowed in a scope"),
    ([], "must be a non-empty list of strings"),
    ("/srv", "must be a non-empty list of strings"),
    ({"prefixes": ["/srv"]}, "must have exactly 'prefixes' and 'base'"),
    ({"prefixes": ["/srv"], "base": "rel"}, "path prefix 'rel' must be absolute"),
])
def test_path_prefix_definition_rejected(raw, message):
    with pytest.raises(DelegationError, match=re.escape(message)) as caught:
        Constraint.parse("p", {"path_prefix": raw})
    assert caught.value.rule == "scope.constraint"


@pytest.mark.parametrize(("child", "parent", "within"), [
    (["/srv/data/sub"], ["/srv/data"], True),
    (["/srv/data"], ["/srv/data/"], True),
    (["/srv/database"], ["/srv/data"], False),
    (["/srv"], ["/srv/data"], False),
    (["/srv/data/a", "/srv/other"], ["/srv/data"], False),
    ({"prefixes": ["/srv/data"], "base": "/srv/data"}, ["/srv/data"], False),
    (["/srv/data"], {"prefixes": ["/srv/data"], "base": "/srv/data"}, True),
    ({"prefixes": ["/srv/data/a"], "base": "/srv/data"},
     {"prefixes": ["/srv/data"], "base": "/srv/data"}, True),
    ({"prefixes": ["/srv/data"], "base": "/srv/data/a"},
     {"prefixes": ["/srv/data"], "base": "/srv/data"}, False),
])
def test_path_prefix_within(child, parent, within):
    own = Constraint.parse("p", {"path_prefix": child})
    assert own.within(Constraint.parse("p", {"path_prefix": parent})) is within


# -- url_prefix -----------------------------------------------------------------------


API = scope_of({"tool": "fetch", "constraints": {
    "url": {"url_prefix": ["https://api.example.com/v1/"]}}})


@pytest.mark.parametrize("url", [
    "https://api.example.com/v1/users",
    "HTTPS://Api.Example.com:443/v1/users?page=2#top",
    "https://api.example.com/v1/%7Euser",
])
def test_url_prefix_allows(url):
    assert API.check("fetch", {"url": url}) == []


@pytest.mark.parametrize(("url", "detail"), [
    ("https://api.example.com/v2/", "it reads as https://api.example.com/v2/"),
    ("https://api.example.com/v1/../admin",
     "it reads as https://api.example.com/admin"),
    ("https://api.example.com/v1/%2e%2e/admin",
     "it reads as https://api.example.com/admin"),
    ("https://api.example.com@evil.com/v1/",
     "URL 'https://api.example.com@evil.com/v1/' contains user information (before "
     "'@'); the host would be 'evil.com'"),
    ("http://api.example.com/v1/", "it reads as http://api.example.com/v1/"),
    ("ftp://api.example.com/v1/", "it reads as ftp://api.example.com/v1/"),
])
def test_url_prefix_refuses(url, detail):
    assert API.check("fetch", {"url": url}) == [
        f"argument 'url'={url!r} breaks {{'url_prefix': "
        f"['https://api.example.com/v1/']}}: {detail}"
    ]


@pytest.mark.parametrize(("child", "parent", "within"), [
    ("https://api.example.com/v1/users/", "https://api.example.com/v1/", True),
    ("https://API.example.com:443/v1", "https://api.example.com/v1/", True),
    ("https://api.example.com/", "https://api.example.com/v1/", False),
    ("https://api.example.com/v10/", "https://api.example.com/v1", False),
    ("http://api.example.com/v1/", "https://api.example.com/v1/", False),
    ("https://api.example.com:8443/v1/", "https://api.example.com/v1/", False),
])
def test_url_prefix_within(child, parent, within):
    own = Constraint.parse("u", {"url_prefix": [child]})
    assert own.within(Constraint.parse("u", {"url_prefix": [parent]})) is within


def test_url_prefix_definition_rejected():
    with pytest.raises(DelegationError, match=re.escape(
            "constraint url_prefix on 'u': URL prefix "
            "'https://api.example.com/v1/%2e%2e/' contains '..'")):
        Constraint.parse("u", {"url_prefix": ["https://api.example.com/v1/%2e%2e/"]})


# -- domains --------------------------------------------------------------------------


MAIL = scope_of({"tool": "send_email", "constraints": {
    "to": {"domains": ["example.com", "*.partner.example"]}}})


@pytest.mark.parametrize("to", [
    "alice@example.com",
    "Bob@EXAMPLE.COM",
    "carol@mail.partner.example",
    "https://deep.sub.partner.example/x",
    ["alice@example.com", "dave@x.partner.example"],
])
def test_domains_allow(to):
    assert MAIL.check("send_email", {"to": to}) == []


@pytest.mark.parametrize(("to", "detail"), [
    ("eve@evil.example", "its domain is evil.example"),
    ("eve@mail.example.com", "its domain is mail.example.com"),
    ("eve@partner.example", "its domain is partner.example"),
    ("eve@example.com.evil.example", "its domain is example.com.evil.example"),
    ("Alice <alice@example.com>", "e-mail address 'Alice <alice@example.com>': the "
     "local part may hold letters, digits and #$&'*+-/=?^_`{|}~. only"),
    ("eve%evil.example@example.com", "e-mail address "
     "'eve%evil.example@example.com': the local part may hold letters, digits and "
     "#$&'*+-/=?^_`{|}~. only"),
])
def test_domains_refuse(to, detail):
    problems = MAIL.check("send_email", {"to": to})
    assert len(problems) == 1
    assert problems[0].startswith(f"argument 'to'={to!r} breaks {{'domains': ")
    assert problems[0].endswith(detail)


def test_domains_idna_entry_matches_unicode_address():
    scope = scope_of({"tool": "t", "constraints": {
        "to": {"domains": ["xn--bcher-kva.example"]}}})
    assert scope.check("t", {"to": "info@Bücher.example"}) == []


@pytest.mark.parametrize(("child", "parent", "within"), [
    (["a.example.com"], ["*.example.com"], True),
    (["*.a.example.com"], ["*.example.com"], True),
    (["*.example.com"], ["*.example.com"], True),
    (["example.com"], ["*.example.com"], False),
    (["*.example.com"], ["example.com"], False),
    (["*.example.com"], ["a.example.com"], False),
    (["EXAMPLE.com"], ["example.com"], True),
    (["example.com", "evil.example"], ["example.com"], False),
])
def test_domains_within(child, parent, within):
    own = Constraint.parse("d", {"domains": child})
    assert own.within(Constraint.parse("d", {"domains": parent})) is within


@pytest.mark.parametrize(("entries", "message"), [
    (["192.0.2.1"], "must be a domain name without '..' (use url_prefix for IP "
                    "addresses)"),
    (["*"], "host '*': label '*' must be 1 to 63 letters"),
    (["a..b"], "has an empty label"),
    (["*.*.example.com"], "host '*.example.com': label '*' must be"),
])
def test_domains_definition_rejected(entries, message):
    with pytest.raises(DelegationError, match=re.escape(message)):
        Constraint.parse("d", {"domains": entries})


# -- commands -------------------------------------------------------------------------


SHELL = scope_of({"tool": "run_shell", "constraints": {
    "command": {"commands": ["git status", "ls", "*/grep -r"]}}})


@pytest.mark.parametrize("command", [
    "git status",
    "git status --short",
    "ls -la /srv",
    "ls && git status",
    "/usr/bin/grep -r TODO src",
    "git status ';' rm -rf /",
])
def test_commands_allow(command):
    assert SHELL.check("run_shell", {"command": command}) == []


@pytest.mark.parametrize(("command", "detail"), [
    ("git push", "'git push' matches no allowed command"),
    ("git status; rm -rf /", "'rm -rf /' matches no allowed command"),
    ("ls | sh", "command 'ls | sh' runs 'sh', which runs its arguments as another "
                "command"),
    ("ls $(rm -rf /)", "command 'ls $(rm -rf /)' contains '$' (expansion or command "
                       "substitution)"),
    ("/tmp/ls", "'/tmp/ls' matches no allowed command"),
    ("grep x", "'grep x' matches no allowed command"),
])
def test_commands_refuse(command, detail):
    assert SHELL.check("run_shell", {"command": command}) == [
        f"argument 'command'={command!r} breaks {{'commands': ['git status', 'ls', "
        f"'*/grep -r']}}: {detail}"
    ]


def test_commands_within():
    parent = Constraint.parse("c", {"commands": ["git", "*/ls"]})

    assert Constraint.parse("c", {"commands": ["git status", "/bin/ls"]}).within(parent)
    assert not Constraint.parse("c", {"commands": ["rm"]}).within(parent)
