"""Canonical forms of the resources that scope constraints compare.

A constraint judges what a tool will act on, not how the caller spelled it.
This module turns file paths, URLs, host names and e-mail addresses into
one canonical form each, or raises ``ValueError`` with a sentence naming
what cannot be judged. Shell command lines are parsed in
``enforcement.shell``. Nothing here touches the network, and only
``resolve_path`` touches the filesystem (``os.path.realpath`` follows
symbolic links). The rules are specified in ``specs/delegation.md``.
"""

from __future__ import annotations

import base64
import ipaddress
import os
import re
import string
import unicodedata
from dataclasses import dataclass
from functools import lru_cache
from urllib.parse import unquote

import idna

MAX_PATH_LENGTH = 4096
MAX_URL_LENGTH = 8192
# A path still changing after this many rounds of percent-decoding is rejected.
_MAX_DECODING_ROUNDS = 3
_CACHE_SIZE = 4096

DEFAULT_PORTS = {"http": 80, "https": 443, "ws": 80, "wss": 443, "ftp": 21}
_UNRESERVED = frozenset(string.ascii_letters + string.digits + "-._~")
_PATH_SAFE = _UNRESERVED | frozenset("!$&'()*+,;=:@")
_HEX = frozenset(string.hexdigits)
_SCHEME = re.compile(r"([A-Za-z][A-Za-z0-9+.-]*)://")
_DOUBLE_ENCODED = re.compile(r"%25[0-9A-Fa-f]{2}")
_LABEL = re.compile(r"[a-z0-9_](?:[a-z0-9_-]{0,61}[a-z0-9_])?")
_IPV4_LIKE = re.compile(r"[0-9]+|0[xX][0-9A-Fa-f]*")
# RFC 5322 atext without '!' and '%', which some mail servers still treat as
# routing through another host.
_LOCAL_PART = frozenset(string.ascii_letters + string.digits + "#$&'*+-/=?^_`{|}~.")


def decode_base64(text: object) -> bytes:
    """Decode standard base64 written in its one canonical form.

    ``base64.b64decode`` ignores the unused low bits of the last character,
    so up to 16 texts decode to the same bytes. Signed objects are hashed as
    text, and another spelling of the same signature would give the same
    certificate another hash, so any other spelling raises ``ValueError``.
    """
    if not isinstance(text, str) or not text.isascii():
        raise ValueError(f"expected an ASCII base64 string, got {text!r}")
    raw = base64.b64decode(text, validate=True)
    canonical = base64.b64encode(raw).decode("ascii")
    if canonical != text:
        raise ValueError(
            f"{text!r} is not in canonical base64 (expected {canonical!r}): the "
            "unused bits of its last character must be zero"
        )
    return raw


def check_text(text: object, description: str, limit: int) -> str:
    """Return ``text`` when it is a non-empty string of at most ``limit``
    characters; otherwise raise ``ValueError`` naming the ``description``."""
    if not isinstance(text, str):
        raise ValueError(
            f"expected a {description} string, got {type(text).__name__}")
    if not text:
        raise ValueError(f"the {description} is empty")
    if len(text) > limit:
        raise ValueError(
            f"the {description} has {len(text)} characters; at most {limit}")
    return text


def control_character(text: str, allowed: str = "") -> str | None:
    """Return the first C0 control character or DEL in ``text`` that is not
    in ``allowed``, or None when there is none."""
    for character in text:
        if (ord(character) < 0x20 or ord(character) == 0x7F) and (
                character not in allowed):
            return character
    return None


# -- file paths -----------------------------------------------------------------


def normalize_path(path: str) -> str:
    """Return an absolute POSIX path with '.', '..' and empty components removed.

    The work is lexical: '..' removes the previous component whatever it is,
    and '..' at the root stays at the root.
    """
    components: list[str] = []
    for component in path.split("/"):
        if component in ("", "."):
            continue
        if component == "..":
            if components:
                components.pop()
            continue
        components.append(component)
    return "/" + "/".join(components)


def path_is_under(path: str, prefix: str) -> bool:
    """Return True when normalized ``path`` is ``prefix`` or lies below it."""
    return prefix == "/" or path == prefix or path.startswith(prefix + "/")


def canonical_path_prefix(text: object) -> str:
    """Return the normal form of a path prefix from a scope, or raise ``ValueError``."""
    text = check_text(text, "path prefix", MAX_PATH_LENGTH)
    if not text.startswith("/"):
        raise ValueError(f"path prefix {text!r} must be absolute (start with '/')")
    for marker, reason in (("..", "'..' is never allowed in a scope"),
                           ("\\", "some tools read '\\' as a separator"),
                           ("%", "arguments are also judged percent-decoded")):
        if marker in text:
            raise ValueError(f"path prefix {text!r} contains {marker!r}: {reason}")
    if control_character(text) is not None:
        raise ValueError(f"path prefix {text!r} contains a control character")
    if unicodedata.normalize("NFKC", text) != text:
        raise ValueError(
            f"path prefix {text!r} changes under Unicode NFKC normalization; "
            f"write it as {unicodedata.normalize('NFKC', text)!r}"
        )
    return normalize_path(text)


@lru_cache(maxsize=_CACHE_SIZE)
def path_readings(path: str, base: str | None = None) -> tuple[str, ...]:
    """Return each way a tool may read ``path``, as absolute, unnormalized paths.

    The readings are the path as given, the path after each round of
    percent-decoding, and the NFKC form of each. A relative reading is joined
    to ``base``; without a base it raises ``ValueError``, because the gate
    does not know the tool's working directory.
    """
    path = check_text(path, "path", MAX_PATH_LENGTH)
    forms = [path]
    for _ in range(_MAX_DECODING_ROUNDS):
        try:
            decoded = unquote(forms[-1], errors="strict")
        except UnicodeDecodeError as err:
            raise ValueError(
                f"path {path!r} percent-decodes to bytes that are not UTF-8"
            ) from err
        if decoded == forms[-1]:
            break
        forms.append(decoded)
    else:
        if unquote(forms[-1]) != forms[-1]:
            raise ValueError(
                f"path {path!r} is percent-encoded more than "
                f"{_MAX_DECODING_ROUNDS} times"
            )
    forms += [unicodedata.normalize("NFKC", form) for form in forms]
    readings: list[str] = []
    for form in dict.fromkeys(forms):
        if "\x00" in form:
            raise ValueError(f"path {path!r} contains a NUL byte")
        if "\\" in form:
            raise ValueError(
                f"path {path!r} contains '\\', which some tools read as a separator"
            )
        if control_character(form) is not None:
            raise ValueError(f"path {path!r} contains a control character")
        if form.startswith("~"):
            raise ValueError(
                f"path {path!r} starts with '~', which a tool may expand to a home "
                "directory"
            )
        if not form.startswith("/"):
            if base is None:
                raise ValueError(
                    f"path {path!r} is relative and the constraint names no base "
                    "directory; pass an absolute path"
                )
            form = f"{base}/{form}"
        readings.append(form)
    return tuple(readings)


def resolve_path(path: str) -> str:
    """Return ``os.path.realpath(path)``: symbolic links followed where they exist.

    Components that do not exist are kept as written, and '..' after a
    symbolic link leaves the link's target, as the kernel does.
    """
    return os.path.realpath(path)


def path_outside(path: str, prefixes: tuple[str, ...], base: str | None) -> str | None:
    """Return why ``path`` is not under one of ``prefixes``, or None when it is.

    Every reading of the path must lie under a prefix twice: as normalized
    text, and after resolving symbolic links against the filesystem.
    """
    try:
        readings = path_readings(path, base)
    except ValueError as err:
        return str(err)
    for reading in readings:
        lexical = normalize_path(reading)
        if not any(path_is_under(lexical, prefix) for prefix in prefixes):
            return f"it reads as {lexical}"
        resolved = resolve_path(reading)
        if not any(path_is_under(resolved, prefix) for prefix in prefixes):
            return f"it resolves through a symbolic link to {resolved}"
    return None


# -- host names -----------------------------------------------------------------


def _canonical_label(label: str, host: str) -> str:
    if not label:
        raise ValueError(f"host {host!r} has an empty label")
    if not label.isascii():
        try:
            label = idna.alabel(label).decode("ascii")
        except idna.IDNAError as err:
            raise ValueError(f"host {host!r}: label {label!r} is not valid IDNA: "
                             f"{err}") from err
    elif label.startswith("xn--"):
        try:
            unicode_form = idna.ulabel(label)
            round_trip = idna.alabel(unicode_form).decode("ascii")
        except (idna.IDNAError, UnicodeError) as err:
            raise ValueError(f"host {host!r}: label {label!r} is not valid "
                             f"punycode: {err}") from err
        if round_trip != label:
            raise ValueError(f"host {host!r}: label {label!r} is not in canonical "
                             f"punycode (expected {round_trip!r})")
    if not _LABEL.fullmatch(label):
        raise ValueError(
            f"host {host!r}: label {label!r} must be 1 to 63 letters, digits, '-' "
            "or '_', not starting or ending with '-'"
        )
    return label


def _canonical_ipv4(host: str, original: str) -> str:
    parts = host.split(".")
    if len(parts) == 4 and all(
            p.isascii() and p.isdigit() and len(p) <= 3
            and (p == "0" or not p.startswith("0"))
            and int(p) <= 255 for p in parts):
        return host
    raise ValueError(
        f"numeric host {original!r} is ambiguous (clients read octal, hex and "
        "short forms differently); write an IPv4 address as four decimal numbers"
    )


@lru_cache(maxsize=_CACHE_SIZE)
def canonical_host(text: str) -> str:
    """Return the canonical host: lowercase A-labels, an IPv4 or a bracketed IPv6.

    Labels are mapped with UTS 46 and encoded with IDNA 2008 (the ``idna``
    package), so ``Bücher.Example`` becomes ``xn--bcher-kva.example``. One
    trailing dot is removed.
    """
    host = check_text(text, "host", 255)
    if host.startswith("["):
        if not host.endswith("]") or "%" in host:
            raise ValueError(f"host {host!r}: expected [IPv6 address] without a zone")
        try:
            return f"[{ipaddress.IPv6Address(host[1:-1]).compressed}]"
        except ValueError as err:
            raise ValueError(f"host {host!r} is not an IPv6 address: {err}") from err
    bad = [c for c in host if c in "%@/\\:?#[] " or control_character(c)]
    if bad:
        raise ValueError(f"host {host!r} contains {bad[0]!r}")
    try:
        mapped = idna.uts46_remap(host, std3_rules=False, transitional=False)
    except idna.IDNAError as err:
        raise ValueError(f"host {host!r} is not a valid host name: {err}") from err
    if mapped.endswith("."):
        mapped = mapped[:-1]
    labels = mapped.split(".")
    if _IPV4_LIKE.fullmatch(labels[-1]):
        return _canonical_ipv4(mapped, host)
    canonical = ".".join(_canonical_label(label.lower(), host) for label in labels)
    if len(canonical) > 253:
        raise ValueError(f"host {host!r} is longer than 253 characters")
    return canonical


def is_ip_host(host: str) -> bool:
    """Return True when a canonical host is an IP address rather than a name."""
    return host.startswith("[") or _IPV4_LIKE.fullmatch(host.rsplit(".", 1)[-1]) \
        is not None


@lru_cache(maxsize=_CACHE_SIZE)
def email_domain(text: str) -> str:
    """Return the canonical domain of a bare e-mail address ``local@domain``.

    Display names, quoted local parts, comments, several addresses and source
    routes ('%' or '!' in the local part) are refused, because each can make
    a mail server deliver somewhere other than the domain after the last '@'.
    """
    address = check_text(text, "e-mail address", 320)
    if address.count("@") != 1:
        raise ValueError(
            f"e-mail address {address!r} must contain exactly one '@'; give a bare "
            "address such as alice@example.com"
        )
    local, domain = address.split("@")
    if not local or any(c not in _LOCAL_PART and c.isascii() for c in local) or (
            control_character(local) is not None or not local.isprintable()):
        raise ValueError(
            f"e-mail address {address!r}: the local part may hold letters, digits "
            "and #$&'*+-/=?^_`{|}~. only"
        )
    if local.startswith(".") or local.endswith(".") or ".." in local:
        raise ValueError(f"e-mail address {address!r}: misplaced '.' in the local part")
    if domain.startswith("[") or is_ip_host(canonical_host(domain)):
        raise ValueError(
            f"e-mail address {address!r} names an IP address, not a domain")
    return canonical_host(domain)


# -- URLs -----------------------------------------------------------------------


@dataclass(frozen=True)
class Url:
    """A URL in canonical form; ``port`` is None for the scheme's default port."""

    scheme: str
    host: str
    port: int | None
    path: str
    query: str | None = None

    def __str__(self) -> str:
        port = f":{self.port}" if self.port is not None else ""
        query = f"?{self.query}" if self.query is not None else ""
        return f"{self.scheme}://{self.host}{port}{self.path}{query}"

    def is_under(self, prefix: Url) -> bool:
        """Return True when this URL's origin equals the prefix's and its path
        is the prefix's path or lies below it, segment by segment."""
        if (self.scheme, self.host, self.port) != (
                prefix.scheme, prefix.host, prefix.port):
            return False
        base = prefix.path.rstrip("/")
        return not base or self.path == base or self.path.startswith(base + "/")


def _canonical_segment(segment: str, url: str) -> str:
    out: list[str] = []
    position = 0
    while position < len(segment):
        character = segment[position]
        if character == "%":
            digits = segment[position + 1:position + 3]
            if len(digits) != 2 or not set(digits) <= _HEX:
                raise ValueError(f"URL {url!r} has an invalid percent-encoding")
            byte = int(digits, 16)
            if byte in (0x2F, 0x5C):
                raise ValueError(
                    f"URL {url!r} has an encoded '/' or '\\' (%{digits}), which "
                    "servers may read as a path separator"
                )
            if byte == 0:
                raise ValueError(f"URL {url!r} has an encoded NUL byte (%00)")
            if byte < 0x80 and chr(byte) in _UNRESERVED:
                out.append(chr(byte))
            else:
                out.append("%" + digits.upper())
            position += 3
            continue
        if character in _PATH_SAFE:
            out.append(character)
        else:
            try:
                encoded = character.encode("utf-8")
            except UnicodeEncodeError as err:
                raise ValueError(f"URL {url!r} is not valid Unicode") from err
            out.append("".join(f"%{byte:02X}" for byte in encoded))
        position += 1
    return "".join(out)


def _canonical_url_path(path: str, url: str) -> str:
    """Percent-normalize each segment and remove dot segments (RFC 3986 5.2.4)."""
    if not path:
        return "/"
    if _DOUBLE_ENCODED.search(path):
        raise ValueError(
            f"URL {url!r} is percent-encoded twice (%25 followed by hex digits)"
        )
    segments = [_canonical_segment(s, url) for s in path.split("/")[1:]]
    if "" in segments[:-1]:
        raise ValueError(
            f"URL {url!r} has an empty path segment ('//'); servers disagree on "
            "whether it counts"
        )
    output: list[str] = []
    for position, segment in enumerate(segments):
        last = position == len(segments) - 1
        if segment in (".", ".."):
            if segment == ".." and output:
                output.pop()
            if last:
                output.append("")
            continue
        output.append(segment)
    return "/" + "/".join(output)


@lru_cache(maxsize=_CACHE_SIZE)
def canonical_url(text: str) -> Url:
    """Parse and canonicalize an absolute URL, or raise ``ValueError``.

    The scheme and host are lowercased, the host is IDNA-encoded, a default
    port is dropped, unreserved characters are percent-decoded, other escapes
    are uppercased, dot segments are removed and the fragment is dropped.
    User information, backslashes, whitespace, encoded '/' or '\\' and double
    encoding are refused.
    """
    url = check_text(text, "URL", MAX_URL_LENGTH)
    if control_character(url) is not None or " " in url:
        raise ValueError(f"URL {url!r} contains whitespace or a control character")
    if "\\" in url:
        raise ValueError(f"URL {url!r} contains '\\', which browsers read as '/'")
    match = _SCHEME.match(url)
    if match is None:
        raise ValueError(f"URL {url!r}: expected an absolute URL scheme://host/path")
    scheme = match.group(1).lower()
    if scheme not in DEFAULT_PORTS:
        raise ValueError(
            f"URL {url!r}: scheme {scheme!r} is not supported; supported: "
            f"{', '.join(sorted(DEFAULT_PORTS))}"
        )
    rest = url[match.end():].partition("#")[0]
    rest, has_query, query = rest.partition("?")
    authority, slash, path = rest.partition("/")
    if "@" in authority:
        raise ValueError(
            f"URL {url!r} contains user information (before '@'); the host would "
            f"be {authority.rpartition('@')[2]!r}"
        )
    if authority.startswith("["):
        host, _, after = authority.partition("]")
        host += "]"
        if after and not after.startswith(":"):
            raise ValueError(f"URL {url!r}: unexpected text after the IPv6 address")
        port_text = after[1:] if after else None
    elif ":" in authority:
        host, _, port_text = authority.partition(":")
    else:
        host, port_text = authority, None
    port = None
    if port_text is not None:
        if not port_text.isascii() or not port_text.isdigit() or not (
                0 < int(port_text) < 65536):
            raise ValueError(f"URL {url!r}: port {port_text!r} must be 1 to 65535")
        port = int(port_text)
        if port == DEFAULT_PORTS[scheme]:
            port = None
    return Url(
        scheme=scheme,
        host=canonical_host(host) if host else _no_host(url),
        port=port,
        path=_canonical_url_path(slash + path, url),
        query=query if has_query else None,
    )


def _no_host(url: str) -> str:
    raise ValueError(f"URL {url!r} has no host")


def canonical_url_prefix(text: object) -> Url:
    """Return the canonical form of a URL prefix from a scope."""
    url = canonical_url(check_text(text, "URL prefix", MAX_URL_LENGTH))
    if ".." in text or ".." in unquote(text):
        raise ValueError(f"URL prefix {text!r} contains '..', never allowed in a scope")
    if url.query is not None or "#" in text:
        raise ValueError(f"URL prefix {text!r} may not have a query or a fragment")
    return url


def domain_of(value: str) -> str:
    """Return the canonical host of a URL, an e-mail address or a host name."""
    if "://" in value:
        return canonical_url(value).host
    if "@" in value:
        return email_domain(value)
    return canonical_host(value)
