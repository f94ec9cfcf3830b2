"""Constraint kinds of a capability and when a child's is within its parent's.

Each kind is parsed into a normal form, and ``kind_within`` compares a
child's value with its parent's as the table in ``specs/delegation.md``
defines:

- ``max``/``min``: the child's bound is no looser;
- ``one_of``: every child value is a parent value, by RFC 8785 bytes;
- ``path_prefix``: every child prefix lies under a parent prefix by whole
  components, and the child names no ``base`` or the parent's;
- ``url_prefix``: every child prefix has the scheme, host and port of a
  parent prefix and a path equal to or below its path;
- ``domains``: every child entry is covered by a parent entry;
- ``commands``: every child entry is covered by a parent entry.

The auditor needs only the prefixes and entries that certificates write,
never argument values, so nothing here reads the filesystem.
"""

import ipaddress
import re
import unicodedata
from typing import Any
from urllib.parse import unquote

from verifier._encoding import shorten
from verifier._shell import parse_command_entry
from verifier.errors import MalformedInput
from verifier.jcs import canonicalize

KINDS = frozenset(
    {"max", "min", "one_of", "path_prefix", "url_prefix", "domains", "commands"}
)

_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
_LABEL = re.compile(r"[a-z0-9_](?:[a-z0-9_-]{0,61}[a-z0-9_])?")
_SCHEMES = {"http": 80, "https": 443, "ws": 80, "wss": 443, "ftp": 21}
_URL = re.compile(r"([A-Za-z][A-Za-z0-9+.-]*)://([^/?#]*)([^?#]*)(\?[^#]*)?(#.*)?")
_UNRESERVED = frozenset(
    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-._~"
)
_PATH_SAFE = _UNRESERVED | frozenset("!$&'()*+,;=:@/%")
_ESCAPE = re.compile(r"%([0-9A-Fa-f]{2})")
_DIGITS = re.compile(r"[0-9]+")
_IPV4_LIKE = re.compile(r"[0-9]+|0[xX][0-9A-Fa-f]*")
MAX_URL_LENGTH = 8192
# Unicode categories of the code points an IDNA label may hold.
_LABEL_CATEGORIES = frozenset({"Ll", "Lo", "Lm", "Mn", "Mc", "Nd"})
# Maximum length of a domain name without its trailing dot (RFC 1035).
_MAX_DOMAIN_LENGTH = 253


def parse_kind(kind: str, raw: Any, where: str) -> Any:
    """Return the normal form of one constraint kind, or raise ``MalformedInput``."""
    label = f"{where} {kind}"
    if kind in ("max", "min"):
        if not isinstance(raw, (int, float)) or isinstance(raw, bool):
            raise MalformedInput(f"{label}: expected a number, got {shorten(raw)}")
        return raw
    if kind == "one_of":
        if not isinstance(raw, list) or not raw:
            raise MalformedInput(f"{label}: expected a non-empty list of JSON values")
        return frozenset(canonicalize(value) for value in raw)
    if kind == "path_prefix":
        return _parse_path_prefix(raw, label)
    entries = _strings(raw, label)
    if kind == "url_prefix":
        return tuple(canonical_url_prefix(entry, label) for entry in entries)
    if kind == "domains":
        return tuple(_domain_entry(entry, label) for entry in entries)
    if kind == "commands":
        return tuple(parse_command_entry(entry, label) for entry in entries)
    raise MalformedInput(f"{label}: unknown constraint kind")


def kind_within(kind: str, child: Any, parent: Any) -> str | None:
    """Return None when the child's value of ``kind`` is within the parent's."""
    if kind == "max":
        return None if child <= parent else f"max {child} exceeds the parent's {parent}"
    if kind == "min":
        return (
            None if child >= parent else f"min {child} is below the parent's {parent}"
        )
    if kind == "one_of":
        extra = sorted(value.decode() for value in child - parent)
        return None if not extra else f"one_of adds {', '.join(extra)}"
    if kind == "path_prefix":
        prefixes, base = child
        parent_prefixes, parent_base = parent
        if base is not None and base != parent_base:
            return f"path_prefix names base {base!r}, not the parent's {parent_base!r}"
        for prefix in prefixes:
            if not any(_path_under(prefix, theirs) for theirs in parent_prefixes):
                return f"path_prefix {prefix!r} lies under no parent prefix"
        return None
    if kind == "url_prefix":
        for prefix in child:
            if not any(_url_under(prefix, theirs) for theirs in parent):
                return f"url_prefix {_url_text(prefix)} lies under no parent prefix"
        return None
    if kind == "domains":
        for entry in child:
            if not any(_domain_covers(theirs, entry) for theirs in parent):
                return f"domain {_domain_text(entry)} is covered by no parent entry"
        return None
    if kind == "commands":
        for entry in child:
            if not any(_command_covers(theirs, entry) for theirs in parent):
                return f"command {' '.join(entry)!r} is covered by no parent entry"
        return None
    return f"unknown constraint kind {kind!r}"


def _strings(raw: Any, label: str) -> list[str]:
    if not isinstance(raw, list) or not raw or not all(isinstance(x, str) for x in raw):
        raise MalformedInput(f"{label}: expected a non-empty list of strings")
    for entry in raw:
        if ".." in entry or "%2e%2e" in entry.lower():
            raise MalformedInput(f"{label}: {shorten(entry)} contains '..'")
    return raw


# -- paths ------------------------------------------------------------------------


def _parse_path_prefix(raw: Any, label: str) -> tuple[tuple[str, ...], str | None]:
    base = None
    entries = raw
    if isinstance(raw, dict):
        if set(raw) != {"prefixes", "base"}:
            raise MalformedInput(
                f"{label}: the object form has exactly 'prefixes' and 'base', got "
                f"{sorted(raw)}"
            )
        entries = raw["prefixes"]
        base = _path_prefix(raw["base"], label)
    return tuple(_path_prefix(p, label) for p in _strings(entries, label)), base


def _path_prefix(text: Any, label: str) -> str:
    """Return a prefix in normal form: absolute, no '.', empty parts or trailing '/'."""
    if not isinstance(text, str) or not text.startswith("/"):
        raise MalformedInput(f"{label}: expected an absolute path, got {shorten(text)}")
    if ".." in text or "\\" in text or "%" in text or _CONTROL.search(text):
        raise MalformedInput(
            f"{label}: {shorten(text)} may not contain '..', '\\', '%' or control "
            "characters"
        )
    if unicodedata.normalize("NFKC", text) != text:
        raise MalformedInput(f"{label}: {shorten(text)} changes under NFKC")
    parts = [part for part in text.split("/") if part not in ("", ".")]
    return "/" + "/".join(parts)


def _path_under(path: str, prefix: str) -> bool:
    return prefix == "/" or path == prefix or path.startswith(prefix + "/")


# -- URLs -------------------------------------------------------------------------


def canonical_url_prefix(text: str, label: str) -> tuple[str, str, int, str]:
    """Return ``(scheme, host, port, path)`` of a URL prefix in canonical form."""
    if not text or len(text) > MAX_URL_LENGTH:
        raise MalformedInput(
            f"{label}: expected a URL prefix of 1 to {MAX_URL_LENGTH} characters, "
            f"got {len(text)}"
        )
    if ".." in text or ".." in unquote(text):
        raise MalformedInput(f"{label}: URL prefix {shorten(text)} contains '..'")
    if _CONTROL.search(text) or "\\" in text or any(c.isspace() for c in text):
        raise MalformedInput(
            f"{label}: {shorten(text)} contains white space, a control character "
            "or '\\'"
        )
    match = _URL.fullmatch(text)
    if match is None:
        raise MalformedInput(
            f"{label}: expected scheme://host/path, got {shorten(text)}"
        )
    scheme, authority, path, query, fragment = match.groups()
    scheme = scheme.lower()
    if scheme not in _SCHEMES:
        raise MalformedInput(
            f"{label}: scheme {scheme!r} is not one of {sorted(_SCHEMES)}"
        )
    if query is not None or fragment is not None:
        raise MalformedInput(f"{label}: a URL prefix has no query or fragment")
    if "@" in authority:
        raise MalformedInput(f"{label}: {shorten(text)} has user information")
    host, port = _split_authority(authority, scheme, label)
    return scheme, host, port, _canonical_path(path, label)


def _split_authority(authority: str, scheme: str, label: str) -> tuple[str, int]:
    port = _SCHEMES[scheme]
    if authority.startswith("["):
        end = authority.find("]")
        if end < 0:
            raise MalformedInput(f"{label}: unterminated IPv6 address")
        host, rest = authority[: end + 1].lower(), authority[end + 1 :]
        if rest and not rest.startswith(":"):
            raise MalformedInput(f"{label}: unexpected text after the IPv6 address")
        port_text = rest[1:] if rest else None
        try:
            host = f"[{ipaddress.IPv6Address(host[1:-1]).compressed}]"
        except ValueError as err:
            raise MalformedInput(f"{label}: invalid IPv6 address {host}") from err
    else:
        host, colon, port_text = authority.rpartition(":")
        if not colon:
            host, port_text = authority, None
        host = _canonical_host(host, label)
    if port_text is not None:
        # ASCII digits only: str.isdigit() and int() also take other scripts'
        # digits and superscripts, which the gate rejects.
        digits = port_text.lstrip("0")
        if (
            not _DIGITS.fullmatch(port_text)
            or len(digits) > 5
            or not 1 <= int(digits or "0") <= 65535
        ):
            raise MalformedInput(f"{label}: port must be 1 to 65535, got {port_text!r}")
        port = int(digits)
    return host, port


def _canonical_host(host: str, label: str) -> str:
    host = host[:-1] if host.endswith(".") else host
    # A last label of digits (or 0x and hex) makes clients read the host as an
    # IPv4 address, so it must be one in dotted decimal.
    if _IPV4_LIKE.fullmatch(host.rpartition(".")[2]):
        parts = host.split(".")
        if len(parts) != 4 or not all(
            _DIGITS.fullmatch(part)
            and len(part) <= 3
            and int(part) <= 255
            and str(int(part)) == part
            for part in parts
        ):
            raise MalformedInput(
                f"{label}: an IPv4 address must be four decimal numbers, got {host!r}"
            )
        return host
    return _domain_name(host, label)


def _canonical_path(path: str, label: str) -> str:
    def decode(match: re.Match) -> str:
        char = chr(int(match.group(1), 16))
        if char in "/\\\x00":
            raise MalformedInput(f"{label}: the path encodes '/', '\\' or NUL")
        if char == "%" and re.match(
            r"[0-9A-Fa-f]{2}", path[match.end() : match.end() + 2]
        ):
            raise MalformedInput(f"{label}: the path is percent-encoded twice")
        return char if char in _UNRESERVED else f"%{match.group(1).upper()}"

    if "%" in path and re.search(r"%(?![0-9A-Fa-f]{2})", path):
        raise MalformedInput(f"{label}: a '%' in the path is not an escape")
    decoded = _ESCAPE.sub(decode, path)
    encoded = "".join(
        c if c in _PATH_SAFE else "".join(f"%{b:02X}" for b in c.encode("utf-8"))
        for c in decoded
    )
    segments = encoded.split("/")[1:] if encoded else []
    if any(segment == "" for segment in segments[:-1]):
        raise MalformedInput(f"{label}: the path has an empty segment ('//')")
    output: list[str] = []
    for segment in segments:
        if segment == "..":
            if output:
                output.pop()
        elif segment != ".":
            output.append(segment)
    return "/" + "/".join(output)


def _url_under(
    url: tuple[str, str, int, str], prefix: tuple[str, str, int, str]
) -> bool:
    if url[:3] != prefix[:3]:
        return False
    base = prefix[3].rstrip("/")
    path = url[3].rstrip("/")
    return path == base or path.startswith(base + "/")


def _url_text(url: tuple[str, str, int, str]) -> str:
    scheme, host, port, path = url
    return f"{scheme}://{host}:{port}{path}"


# -- domains ----------------------------------------------------------------------


def _domain_entry(text: str, label: str) -> tuple[str, bool]:
    wildcard = text.startswith("*.")
    name = _domain_name(text[2:] if wildcard else text, label)
    if _IPV4_LIKE.fullmatch(name.rpartition(".")[2]):
        raise MalformedInput(
            f"{label}: {shorten(text)} must be a domain name; use url_prefix for "
            "IP addresses"
        )
    return name, wildcard


def _domain_name(text: str, label: str) -> str:
    name = text[:-1] if text.endswith(".") else text
    if not name.isascii():
        # NOTE: names outside ASCII need UTS 46 mapping and IDNA 2008, which the
        # standard library lacks, so they are rejected here (fail closed).
        raise MalformedInput(
            f"{label}: {shorten(text)} is not ASCII; write it as A-labels "
            "(xn--...) to have it checked"
        )
    name = name.lower()
    labels = name.split(".")
    if not name or not all(_LABEL.fullmatch(part) for part in labels):
        raise MalformedInput(f"{label}: {shorten(text)} is not a valid domain name")
    if len(name) > _MAX_DOMAIN_LENGTH:
        raise MalformedInput(
            f"{label}: {shorten(text)} is longer than {_MAX_DOMAIN_LENGTH} characters"
        )
    for part in labels:
        if part.startswith("xn--") and not _is_punycode(part):
            raise MalformedInput(
                f"{label}: {shorten(text)}: label {part!r} is not canonical punycode"
            )
    return name


def _is_punycode(label: str) -> bool:
    """Return True when an ``xn--`` label decodes to letters, marks, digits and
    '-' that normalization leaves as they are, and encodes back to itself.

    NOTE: this approximates the IDNA 2008 code point table by Unicode
    category. The contextual and bidi rules need data the standard library
    lacks, so a label that breaks only those rules passes here.
    """
    try:
        decoded = label[4:].encode("ascii").decode("punycode")
    except UnicodeError:
        return False
    if decoded.isascii() or unicodedata.normalize("NFC", decoded) != decoded:
        return False
    for char in decoded:
        if char != "-" and unicodedata.category(char) not in _LABEL_CATEGORIES:
            return False
        if unicodedata.normalize("NFKC", char.casefold()) != char:
            return False
    return "xn--" + decoded.encode("punycode").decode("ascii") == label


def _domain_covers(parent: tuple[str, bool], child: tuple[str, bool]) -> bool:
    parent_name, parent_wild = parent
    child_name, child_wild = child
    if not parent_wild:
        return not child_wild and child_name == parent_name
    below = child_name.endswith("." + parent_name)
    return below or (child_wild and child_name == parent_name)


def _domain_text(entry: tuple[str, bool]) -> str:
    return ("*." if entry[1] else "") + entry[0]


# -- commands ---------------------------------------------------------------------


def _command_covers(parent: tuple[str, ...], child: tuple[str, ...]) -> bool:
    program, own = parent[0], child[0]
    if program.startswith("*/"):
        name = program[2:]
        covered = own in (name, program) or own.endswith("/" + name)
    else:
        covered = own == program
    return (
        covered and child[1 : len(parent)] == parent[1:] and len(child) >= len(parent)
    )
