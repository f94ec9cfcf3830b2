"""Canonical forms: tables of paths, URLs, hosts and e-mail addresses.

Each row is one spelling an attacker (or a careless agent) might use, with
the canonical reading or the sentence that rejects it.
"""

from __future__ import annotations

import os

import pytest

from enforcement import canonical

PREFIXES = ("/srv/data",)


# -- paths ------------------------------------------------------------------------


@pytest.mark.parametrize("path", [
    "/srv/data",
    "/srv/data/",
    "/srv/data/x",
    "/srv/data/sub/report.txt",
    "/srv/./data/./x",
    "/srv//data//x",
    "/srv/data/sub/../x",
    "/srv/data/a%20b",
    "/srv/data/café",
])
def test_path_inside(path):
    assert canonical.path_outside(path, PREFIXES, None) is None


@pytest.mark.parametrize(("path", "reason"), [
    ("/srv/database", "it reads as /srv/database"),
    ("/srv/dat", "it reads as /srv/dat"),
    ("/srv", "it reads as /srv"),
    ("/srv/data/../etc/passwd", "it reads as /srv/etc/passwd"),
    ("/srv/data/..", "it reads as /srv"),
    ("/srv//data/../../etc", "it reads as /etc"),
    ("/srv/data/%2e%2e/etc", "it reads as /srv/etc"),
    ("/srv/data/%2E%2E/etc", "it reads as /srv/etc"),
    ("/srv/data/%252e%252e/etc", "it reads as /srv/etc"),
    ("/srv/data/..%2f..%2fetc", "it reads as /etc"),
    ("%2fsrv%2fdata", None),
    ("/srv/data/\uff0e\uff0e/etc", "it reads as /srv/etc"),
    ("/srv/data/a\x00b", "contains a NUL byte"),
    ("/srv/data/a%00b", "contains a NUL byte"),
    ("/srv/data/..\\..\\etc", "contains '\\', which some tools read as a separator"),
    ("/srv/data/a%5cb", "contains '\\'"),
    ("/srv/data/a\nb", "contains a control character"),
    ("data/x", "is relative and the constraint names no base directory"),
    ("./data", "is relative"),
    ("~/data", "starts with '~'"),
    ("", "the path is empty"),
    ("/srv/data/%2525252e", "percent-encoded more than 3 times"),
    ("/srv/data/%ff", "percent-decodes to bytes that are not UTF-8"),
])
def test_path_outside(path, reason):
    found = canonical.path_outside(path, PREFIXES, None)
    if reason is None:
        # Relative as given, absolute once decoded: both readings are judged.
        assert found is not None
    else:
        assert found is not None and reason in found, found


def test_path_not_string_rejected():
    assert canonical.path_outside(7, PREFIXES, None) == \
        "expected a path string, got int"


def test_path_too_long_rejected():
    found = canonical.path_outside("/srv/data/" + "a" * 5000, PREFIXES, None)
    assert found == "the path has 5010 characters; at most 4096"


def test_relative_path_joined_to_base():
    assert canonical.path_outside("x/y", PREFIXES, "/srv/data") is None
    assert canonical.path_outside("../y", PREFIXES, "/srv/data") == \
        "it reads as /srv/y"


def test_root_prefix_allows_every_absolute_path():
    assert canonical.path_outside("/etc/passwd", ("/",), None) is None


@pytest.mark.parametrize(("prefix", "normal"), [
    ("/srv/data", "/srv/data"),
    ("/srv/data/", "/srv/data"),
    ("/srv//data/./", "/srv/data"),
    ("/", "/"),
])
def test_path_prefix_normal_form(prefix, normal):
    assert canonical.canonical_path_prefix(prefix) == normal


@pytest.mark.parametrize(("prefix", "message"), [
    ("srv/data", "must be absolute"),
    ("/srv/../etc", "contains '..': '..' is never allowed in a scope"),
    ("/srv/data..old", "contains '..'"),
    ("/srv\\data", "contains '\\\\'"),
    ("/srv/%2e", "contains '%': arguments are also judged percent-decoded"),
    ("/srv/\ufb01les", "changes under Unicode NFKC normalization; write it as "
                       "'/srv/files'"),
    ("/srv/a\x00", "contains a control character"),
    (5, "expected a path prefix string, got int"),
])
def test_path_prefix_rejected(prefix, message):
    with pytest.raises(ValueError) as caught:
        canonical.canonical_path_prefix(prefix)
    assert message in str(caught.value)


@pytest.fixture
def tree(tmp_path):
    """A prefix directory with links inside it: one escaping, one staying in."""
    real = tmp_path.resolve()
    data = real / "data"
    (data / "sub").mkdir(parents=True)
    (real / "outside").mkdir()
    (real / "outside" / "secret").write_text("x")
    (data / "escape").symlink_to(real / "outside")
    (data / "inner").symlink_to(data / "sub")
    (data / "up").symlink_to("..")
    # A link two levels down whose '..' leaves the prefix only physically.
    (data / "sub" / "deep").mkdir()
    (data / "hop").symlink_to(data / "sub" / "deep")
    return data


def test_symlink_escaping_prefix_rejected(tree):
    found = canonical.path_outside(str(tree / "escape" / "secret"), (str(tree),), None)
    assert found == (f"it resolves through a symbolic link to "
                     f"{tree.parent / 'outside' / 'secret'}")


def test_symlink_to_missing_child_still_resolved(tree):
    found = canonical.path_outside(str(tree / "escape" / "new-file"), (str(tree),),
                                   None)
    assert found is not None and "resolves through a symbolic link" in found


def test_symlink_parent_link_rejected(tree):
    found = canonical.path_outside(str(tree / "up" / "outside"), (str(tree),), None)
    assert found == (f"it resolves through a symbolic link to "
                     f"{tree.parent / 'outside'}")


def test_symlink_inside_prefix_allowed(tree):
    assert canonical.path_outside(str(tree / "inner" / "x"), (str(tree),), None) \
        is None


def test_dotdot_after_symlink_read_both_ways(tree):
    # Lexically hop/.. is the prefix itself; the kernel reads it as sub.
    assert canonical.path_outside(str(tree / "hop" / ".."), (str(tree),), None) \
        is None
    found = canonical.path_outside(str(tree / "hop" / ".." / ".." / "x"),
                                   (str(tree),), None)
    assert found == f"it reads as {tree.parent / 'x'}"


def test_prefix_that_is_symlink_matches_nothing_below(tmp_path):
    real = tmp_path.resolve()
    (real / "target").mkdir()
    (real / "target" / "file").write_text("x")
    os.symlink(real / "target", real / "alias")

    found = canonical.path_outside(str(real / "alias" / "file"), (str(real / "alias"),),
                                   None)

    assert found == f"it resolves through a symbolic link to {real / 'target' / 'file'}"


# -- hosts --------------------------------------------------------------------------


@pytest.mark.parametrize(("host", "expected"), [
    ("example.com", "example.com"),
    ("EXAMPLE.Com", "example.com"),
    ("example.com.", "example.com"),
    ("Bücher.example", "xn--bcher-kva.example"),
    ("xn--bcher-kva.example", "xn--bcher-kva.example"),
    ("ＥＸＡＭＰＬＥ.com", "example.com"),
    ("example\u3002com", "example.com"),
    ("my_host.example", "my_host.example"),
    ("192.0.2.1", "192.0.2.1"),
    ("[2001:DB8::0:1]", "[2001:db8::1]"),
])
def test_host_canonical(host, expected):
    assert canonical.canonical_host(host) == expected


@pytest.mark.parametrize(("host", "message"), [
    ("127.1", "numeric host '127.1' is ambiguous"),
    ("0x7f.0.0.1", "is ambiguous"),
    ("2130706433", "is ambiguous"),
    ("0177.0.0.1", "is ambiguous"),
    ("256.0.0.1", "is ambiguous"),
    ("a..b", "has an empty label"),
    ("-a.example", "must be 1 to 63 letters"),
    ("xn--zz.example", "is not valid punycode"),
    ("evil.com%2f", "contains '%'"),
    ("a b", "contains ' '"),
    ("[fe80::1%eth0]", "without a zone"),
    ("[not-v6]", "is not an IPv6 address"),
    ("", "the host is empty"),
])
def test_host_rejected(host, message):
    with pytest.raises(ValueError) as caught:
        canonical.canonical_host(host)
    assert message in str(caught.value)


# -- e-mail addresses ---------------------------------------------------------------


@pytest.mark.parametrize(("address", "domain"), [
    ("alice@example.com", "example.com"),
    ("Alice.Smith+tag@Example.COM", "example.com"),
    ("a@bücher.de", "xn--bcher-kva.de"),
    ("a@mail.example.com.", "mail.example.com"),
])
def test_email_domain(address, domain):
    assert canonical.email_domain(address) == domain


@pytest.mark.parametrize(("address", "message"), [
    ("a@b@evil.com", "must contain exactly one '@'"),
    ('"a@b"@evil.com', "must contain exactly one '@'"),
    ("alice", "must contain exactly one '@'"),
    ("Alice <alice@example.com>", "the local part may hold"),
    ("a%evil.com@example.com", "the local part may hold"),
    ("evil.com!a@example.com", "the local part may hold"),
    ("a,b@example.com", "the local part may hold"),
    ("@example.com", "the local part may hold"),
    (".a@example.com", "misplaced '.'"),
    ("a..b@example.com", "misplaced '.'"),
    ("a@[192.0.2.1]", "names an IP address"),
    ("a@192.0.2.1", "names an IP address"),
])
def test_email_rejected(address, message):
    with pytest.raises(ValueError) as caught:
        canonical.email_domain(address)
    assert message in str(caught.value)


# -- URLs ---------------------------------------------------------------------------


@pytest.mark.parametrize(("url", "expected"), [
    ("https://api.example.com/v1/x", "https://api.example.com/v1/x"),
    ("HTTPS://API.Example.COM/v1/x", "https://api.example.com/v1/x"),
    ("https://api.example.com:443/v1/", "https://api.example.com/v1/"),
    ("http://api.example.com:80/", "http://api.example.com/"),
    ("https://api.example.com:8443/", "https://api.example.com:8443/"),
    ("https://api.example.com", "https://api.example.com/"),
    ("https://api.example.com./v1", "https://api.example.com/v1"),
    ("https://Bücher.example/a", "https://xn--bcher-kva.example/a"),
    ("https://api.example.com/%7Euser/%41", "https://api.example.com/~user/A"),
    ("https://api.example.com/a%3ab", "https://api.example.com/a%3Ab"),
    ("https://api.example.com/caf\u00e9", "https://api.example.com/caf%C3%A9"),
    ("https://api.example.com/v1/./x", "https://api.example.com/v1/x"),
    ("https://api.example.com/v1/../admin", "https://api.example.com/admin"),
    ("https://api.example.com/v1/%2e%2e/admin", "https://api.example.com/admin"),
    ("https://api.example.com/v1/.%2E/admin", "https://api.example.com/admin"),
    ("https://api.example.com/v1/x/..", "https://api.example.com/v1/"),
    ("https://api.example.com/..", "https://api.example.com/"),
    ("https://api.example.com/v1/x?a=/../b#frag",
     "https://api.example.com/v1/x?a=/../b"),
    ("https://api.example.com/v1#/../../admin", "https://api.example.com/v1"),
    ("http://[::FFFF:192.0.2.1]:8080/x", "http://[::ffff:c000:201]:8080/x"),
    ("wss://stream.example.com/", "wss://stream.example.com/"),
])
def test_url_canonical(url, expected):
    assert str(canonical.canonical_url(url)) == expected


@pytest.mark.parametrize(("url", "message"), [
    ("https://api.example.com@evil.com/", "contains user information (before "
     "'@'); the host would be 'evil.com'"),
    ("https://user:pw@api.example.com/", "contains user information"),
    ("https://api.example.com\\@evil.com/", "contains '\\', which browsers read"),
    ("https://api.example.com/v1\\..\\admin", "contains '\\'"),
    ("https://api.example.com/v1%2fadmin", "has an encoded '/' or '\\' (%2f)"),
    ("https://api.example.com/v1%2F..%2Fadmin", "(%2F)"),
    ("https://api.example.com/v1%5cadmin", "(%5c)"),
    ("https://api.example.com/v1/%252e%252e/", "percent-encoded twice"),
    ("https://api.example.com/a%zz", "invalid percent-encoding"),
    ("https://api.example.com/a%00", "encoded NUL"),
    ("https://api.example.com//admin", "empty path segment"),
    ("https://api.example.com/a b", "whitespace or a control character"),
    ("https://api.example.com/a\tb", "whitespace or a control character"),
    ("javascript:alert(1)", "expected an absolute URL"),
    ("file:///etc/passwd", "scheme 'file' is not supported"),
    ("data://text/plain", "scheme 'data' is not supported"),
    ("https:/api.example.com/", "expected an absolute URL"),
    ("https:///api.example.com/", "has no host"),
    ("//api.example.com/", "expected an absolute URL"),
    ("https://api.example.com:0/", "port '0' must be 1 to 65535"),
    ("https://api.example.com:99999/", "must be 1 to 65535"),
    ("https://api.example.com:/", "port '' must be"),
    ("https://api.example.com:x/", "port 'x'"),
    ("http://127.1/", "is ambiguous"),
    ("http://0x7f000001/", "is ambiguous"),
    ("https://api.example.com%2F@evil.com/", "contains user information"),
])
def test_url_rejected(url, message):
    with pytest.raises(ValueError) as caught:
        canonical.canonical_url(url)
    assert message in str(caught.value)


@pytest.mark.parametrize(("url", "inside"), [
    ("https://api.example.com/v1/", True),
    ("https://api.example.com/v1", True),
    ("https://api.example.com/v1/users?id=7", True),
    ("https://API.EXAMPLE.COM:443/v1/users", True),
    ("https://api.example.com/v1/../v1/x", True),
    ("https://api.example.com/v2/", False),
    ("https://api.example.com/v10/", False),
    ("https://api.example.com/v1/../admin", False),
    ("https://api.example.com/v1/%2e%2e/admin", False),
    ("http://api.example.com/v1/", False),
    ("https://api.example.com:8443/v1/", False),
    ("https://api.example.com.evil.com/v1/", False),
    ("https://evil.com/v1/", False),
])
def test_url_under_prefix(url, inside):
    prefix = canonical.canonical_url_prefix("https://api.example.com/v1/")
    assert canonical.canonical_url(url).is_under(prefix) is inside


@pytest.mark.parametrize(("prefix", "message"), [
    ("https://api.example.com/v1/../", "contains '..'"),
    ("https://api.example.com/v1/%2e%2e/", "contains '..'"),
    ("https://api.example.com/v1/?q=1", "may not have a query or a fragment"),
    ("https://api.example.com/v1/#top", "may not have a query or a fragment"),
    ("https://me@api.example.com/", "contains user information"),
])
def test_url_prefix_rejected(prefix, message):
    with pytest.raises(ValueError) as caught:
        canonical.canonical_url_prefix(prefix)
    assert message in str(caught.value)


@pytest.mark.parametrize(("value", "domain"), [
    ("https://Mail.Example.com/x", "mail.example.com"),
    ("bob@Example.com", "example.com"),
    ("Example.com", "example.com"),
])
def test_domain_of(value, domain):
    assert canonical.domain_of(value) == domain
