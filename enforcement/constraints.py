"""Constraint kinds: the conditions a capability puts on one argument.

Each constrained argument has one or more kinds, all of which must hold.
Every kind defines a strict parse, ``check`` (does an argument value satisfy
it) and ``within`` (is it at least as tight as a parent's constraint of the
same kind). Parsing is strict: an unknown kind or a malformed value raises
``DelegationError``, so a checker never skips a field it does not
understand. The kinds are specified in ``specs/delegation.md``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any, ClassVar

from enforcement import canonical, jcs, shell
from enforcement.errors import DelegationError, InvalidRequest


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _values_of(argument: Any) -> list[Any]:
    """Return the values a constraint checks: the items of a list, else the value."""
    return list(argument) if isinstance(argument, list) else [argument]


def _canonical_or_none(value: Any) -> bytes | None:
    try:
        return jcs.canonical(value)
    except InvalidRequest:
        return None


_scalar_key = lru_cache(maxsize=4096, typed=True)(_canonical_or_none)


def _json_key(value: Any) -> bytes | None:
    """Return the RFC 8785 bytes of a value, cached for scalars."""
    if value is None or isinstance(value, (str, int, float)):
        return _scalar_key(value)
    return _canonical_or_none(value)


def _string_list(name: str, argument: str, raw: Any) -> list[str]:
    if not isinstance(raw, list) or not raw or not all(
            isinstance(item, str) for item in raw):
        raise DelegationError(
            f"constraint {name} on {argument!r} must be a non-empty list of "
            f"strings, got {raw!r}",
            rule="scope.constraint",
        )
    return raw


def _definition_error(name: str, argument: str, err: ValueError) -> DelegationError:
    return DelegationError(f"constraint {name} on {argument!r}: {err}",
                           rule="scope.constraint")


def _first_failure(argument: Any, check_one) -> str | None:
    """Apply ``check_one`` to each value of the argument; return the first reason."""
    for item in _values_of(argument):
        if not isinstance(item, str):
            return f"expected a string, got {type(item).__name__}"
        reason = check_one(item)
        if reason is not None:
            return reason
    return None


# -- constraint kinds -------------------------------------------------------------
# ``check`` returns None when the value satisfies the kind, else a reason: ""
# when the kind's own JSON explains the failure, or a sentence about the value.


@dataclass(frozen=True)
class Maximum:
    name: ClassVar[str] = "max"
    limit: float

    @classmethod
    def parse(cls, argument: str, raw: Any) -> Maximum:
        if not _is_number(raw):
            raise DelegationError(
                f"constraint {cls.name} on {argument!r} must be a number, got {raw!r}",
                rule="scope.constraint",
            )
        return cls(raw)

    def check(self, value: Any) -> str | None:
        return None if _is_number(value) and value <= self.limit else ""

    def within(self, parent: Maximum) -> bool:
        return self.limit <= parent.limit

    def to_json(self) -> Any:
        return self.limit


@dataclass(frozen=True)
class Minimum(Maximum):
    name: ClassVar[str] = "min"

    def check(self, value: Any) -> str | None:
        return None if _is_number(value) and value >= self.limit else ""

    def within(self, parent: Minimum) -> bool:
        return self.limit >= parent.limit


@dataclass(frozen=True)
class OneOf:
    """Allowed values, compared as JSON by their RFC 8785 bytes.

    Python's ``==`` finds ``True == 1``; JSON does not, while ``1`` and
    ``1.0`` are one number. A value that is not JSON matches nothing.
    """

    name: ClassVar[str] = "one_of"
    values: tuple[Any, ...] = field(compare=False)
    keys: frozenset[bytes] = frozenset()

    @classmethod
    def parse(cls, argument: str, raw: Any) -> OneOf:
        if not isinstance(raw, list) or not raw:
            raise DelegationError(
                f"constraint one_of on {argument!r} must be a non-empty list, "
                f"got {raw!r}",
                rule="scope.constraint",
            )
        keys = [_canonical_or_none(item) for item in raw]
        if None in keys:
            raise DelegationError(
                f"constraint one_of on {argument!r} contains a value that is not JSON",
                rule="scope.constraint",
            )
        return cls(tuple(raw), frozenset(keys))

    def check(self, value: Any) -> str | None:
        allowed = all(_json_key(item) in self.keys for item in _values_of(value))
        return None if allowed else ""

    def within(self, parent: OneOf) -> bool:
        return self.keys <= parent.keys

    def to_json(self) -> Any:
        return list(self.values)


@dataclass(frozen=True)
class PathPrefix:
    """Absolute path prefixes matched by whole components; see ``canonical``."""

    name: ClassVar[str] = "path_prefix"
    prefixes: tuple[str, ...]
    base: str | None
    raw: Any = field(compare=False)

    @classmethod
    def parse(cls, argument: str, raw: Any) -> PathPrefix:
        base = None
        entries = raw
        if isinstance(raw, Mapping):
            if set(raw) != {"prefixes", "base"}:
                raise DelegationError(
                    f"constraint path_prefix on {argument!r}: an object form must "
                    f"have exactly 'prefixes' and 'base', got {sorted(raw)}",
                    rule="scope.constraint",
                )
            entries = raw["prefixes"]
            try:
                base = canonical.canonical_path_prefix(raw["base"])
            except ValueError as err:
                raise _definition_error(cls.name, argument, err) from err
        try:
            prefixes = tuple(canonical.canonical_path_prefix(p) for p in
                             _string_list(cls.name, argument, entries))
        except ValueError as err:
            raise _definition_error(cls.name, argument, err) from err
        return cls(prefixes, base, raw)

    def check(self, value: Any) -> str | None:
        return _first_failure(value, lambda item: canonical.path_outside(
            item, self.prefixes, self.base))

    def within(self, parent: PathPrefix) -> bool:
        # A base lets relative paths through, so a child may not add one or
        # move it.
        if self.base is not None and self.base != parent.base:
            return False
        return all(any(canonical.path_is_under(own, theirs)
                       for theirs in parent.prefixes) for own in self.prefixes)

    def to_json(self) -> Any:
        return self.raw


@dataclass(frozen=True)
class UrlPrefix:
    """URL prefixes compared on canonical scheme, host, port and path segments."""

    name: ClassVar[str] = "url_prefix"
    prefixes: tuple[canonical.Url, ...]
    raw: tuple[str, ...] = field(compare=False)

    @classmethod
    def parse(cls, argument: str, raw: Any) -> UrlPrefix:
        entries = _string_list(cls.name, argument, raw)
        try:
            prefixes = tuple(canonical.canonical_url_prefix(p) for p in entries)
        except ValueError as err:
            raise _definition_error(cls.name, argument, err) from err
        return cls(prefixes, tuple(entries))

    def _outside(self, item: str) -> str | None:
        try:
            url = canonical.canonical_url(item)
        except ValueError as err:
            return str(err)
        if any(url.is_under(prefix) for prefix in self.prefixes):
            return None
        return f"it reads as {url}"

    def check(self, value: Any) -> str | None:
        return _first_failure(value, self._outside)

    def within(self, parent: UrlPrefix) -> bool:
        return all(any(own.is_under(theirs) for theirs in parent.prefixes)
                   for own in self.prefixes)

    def to_json(self) -> Any:
        return list(self.raw)


@dataclass(frozen=True)
class Domains:
    """Domain names; ``*.name`` allows the proper subdomains of ``name``."""

    name: ClassVar[str] = "domains"
    patterns: tuple[tuple[str, bool], ...]
    raw: tuple[str, ...] = field(compare=False)

    @classmethod
    def parse(cls, argument: str, raw: Any) -> Domains:
        patterns = []
        for entry in _string_list(cls.name, argument, raw):
            wildcard = entry.startswith("*.")
            try:
                host = canonical.canonical_host(entry[2:] if wildcard else entry)
            except ValueError as err:
                raise _definition_error(cls.name, argument, err) from err
            if canonical.is_ip_host(host) or ".." in entry:
                raise DelegationError(
                    f"constraint domains on {argument!r}: {entry!r} must be a domain "
                    "name without '..' (use url_prefix for IP addresses)",
                    rule="scope.constraint",
                )
            patterns.append((host, wildcard))
        return cls(tuple(patterns), tuple(raw))

    @staticmethod
    def _covers(pattern: tuple[str, bool], host: str) -> bool:
        name, wildcard = pattern
        return host.endswith("." + name) if wildcard else host == name

    def _outside(self, item: str) -> str | None:
        try:
            host = canonical.domain_of(item)
        except ValueError as err:
            return str(err)
        if any(self._covers(pattern, host) for pattern in self.patterns):
            return None
        return f"its domain is {host}"

    def check(self, value: Any) -> str | None:
        return _first_failure(value, self._outside)

    def within(self, parent: Domains) -> bool:
        def covered(own: tuple[str, bool]) -> bool:
            name, wildcard = own
            if not wildcard:
                return any(self._covers(theirs, name) for theirs in parent.patterns)
            # Only a wildcard covers a wildcard: the same name or one above it.
            return any(theirs[1] and (name == theirs[0] or self._covers(theirs, name))
                       for theirs in parent.patterns)
        return all(covered(own) for own in self.patterns)

    def to_json(self) -> Any:
        return list(self.raw)


@dataclass(frozen=True)
class Commands:
    """Allowed shell commands; every simple command of a line must match one.

    Put it on the arguments that a tool runs as a shell command line: the
    ones whose profile role is ``command`` (see ``enforcement.profiles``).
    The parsing rules are in ``enforcement.shell``.
    """

    name: ClassVar[str] = "commands"
    patterns: tuple[shell.CommandPattern, ...]

    @classmethod
    def parse(cls, argument: str, raw: Any) -> Commands:
        try:
            patterns = tuple(shell.CommandPattern.parse(entry) for entry in
                             _string_list(cls.name, argument, raw))
        except ValueError as err:
            raise _definition_error(cls.name, argument, err) from err
        return cls(patterns)

    def _outside(self, item: str) -> str | None:
        try:
            commands = shell.parse_command_line(item)
        except ValueError as err:
            return str(err)
        for words in commands:
            if not any(pattern.matches(words) for pattern in self.patterns):
                return f"{' '.join(words)!r} matches no allowed command"
        return None

    def check(self, value: Any) -> str | None:
        return _first_failure(value, self._outside)

    def within(self, parent: Commands) -> bool:
        return all(any(own.within(theirs) for theirs in parent.patterns)
                   for own in self.patterns)

    def to_json(self) -> Any:
        return [pattern.text for pattern in self.patterns]


KINDS = {kind.name: kind for kind in
         (Maximum, Minimum, OneOf, PathPrefix, UrlPrefix, Domains, Commands)}


@dataclass(frozen=True)
class Constraint:
    """The constraint kinds on one argument, all of which must hold."""

    kinds: tuple[Any, ...]

    @classmethod
    def parse(cls, argument: str, raw: Any) -> Constraint:
        if not isinstance(raw, Mapping) or not raw:
            raise DelegationError(
                f"constraint on {argument!r} must be an object of one or more "
                f"constraint kinds, got {raw!r}",
                rule="scope.constraint",
            )
        kinds = []
        for name in sorted(raw):
            if name not in KINDS:
                raise DelegationError(
                    f"unknown constraint kind {name!r} on {argument!r}; this gate "
                    f"understands {', '.join(sorted(KINDS))}",
                    rule="scope.constraint",
                )
            kinds.append(KINDS[name].parse(argument, raw[name]))
        return cls(tuple(kinds))

    def failures(self, value: Any) -> list[tuple[Any, str]]:
        """Return each kind the value breaks, with the reason."""
        found = []
        for kind in self.kinds:
            reason = kind.check(value)
            if reason is not None:
                found.append((kind, reason))
        return found

    def holds(self, value: Any) -> bool:
        """Return True when the value satisfies every kind."""
        return all(kind.check(value) is None for kind in self.kinds)

    def within(self, parent: Constraint) -> bool:
        """Return True when every kind of ``parent`` is here and at least as tight."""
        own = {kind.name: kind for kind in self.kinds}
        return all(kind.name in own and own[kind.name].within(kind)
                   for kind in parent.kinds)

    def merged_with(self, parent: Constraint) -> Constraint:
        """Return this constraint with the kinds of ``parent`` it lacks added."""
        merged = {kind.name: kind for kind in parent.kinds}
        merged.update({kind.name: kind for kind in self.kinds})
        return Constraint(tuple(merged[name] for name in sorted(merged)))

    def to_json(self) -> dict[str, Any]:
        return {kind.name: kind.to_json() for kind in self.kinds}
