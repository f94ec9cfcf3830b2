"""The policy: alignment thresholds, tool profile overrides and sequence rules.

A policy is a TOML or JSON file validated by pydantic. Unknown fields, unknown
labels, roles or data classes, and duplicate rule ids stop it from loading.
Its hash, ``SHA-256(JCS(document))``, is sealed into the log as a policy record
and cited by every decision made under it.
"""

from __future__ import annotations

import json
import tomllib
from pathlib import Path
from typing import Annotated, Literal, Union

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from enforcement import jcs
from enforcement.errors import ConfigError, InvalidRequest
from enforcement.profiles import DATA_CLASSES, LABELS, ROLES

Verdict = Literal["allow", "hold", "deny"]
VERDICT_ORDER = {"allow": 0, "hold": 1, "deny": 2}
DEFAULT_POLICY = Path(__file__).parent / "policies" / "default.toml"


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class AlignmentPolicy(_Strict):
    """Scores below ``hold_below`` hold the call; below ``deny_below`` deny it."""

    hold_below: float = Field(0.5, ge=0.0, le=1.0)
    deny_below: float = Field(0.15, ge=0.0, le=1.0)

    @model_validator(mode="after")
    def _ordered(self) -> AlignmentPolicy:
        if self.deny_below > self.hold_below:
            raise ValueError(
                f"deny_below ({self.deny_below}) must not exceed hold_below "
                f"({self.hold_below})"
            )
        return self


class ProfileOverride(_Strict):
    """Replaces parts of a derived tool profile."""

    labels: list[str] | None = None
    data_classes: list[str] | None = None
    roles: dict[str, str] | None = None
    trusted_output: bool | None = None

    @model_validator(mode="after")
    def _known_names(self) -> ProfileOverride:
        _check_names(self.labels or [], LABELS, "label")
        _check_names(self.data_classes or [], DATA_CLASSES, "data class")
        _check_names((self.roles or {}).values(), ROLES, "role")
        return self


class _Rule(_Strict):
    id: str = Field(min_length=1, max_length=128, pattern=r"^[A-Za-z0-9_.:-]+$")
    verdict: Verdict = "hold"


class SensitiveThenEgress(_Rule):
    """At least ``min_reads`` reads of sensitive data, then an egress to a
    destination the purpose or the principal did not name."""

    kind: Literal["sensitive_read_then_egress"]
    data_classes: list[str] = Field(min_length=1)
    min_reads: int = Field(1, ge=1)
    window_seconds: float = Field(3600.0, gt=0)
    trusted_sources: list[Literal["trusted", "structured"]] = ["trusted"]

    @model_validator(mode="after")
    def _known_classes(self) -> SensitiveThenEgress:
        _check_names(self.data_classes, DATA_CLASSES, "data class")
        return self


class RateLimit(_Rule):
    """At most ``limit`` calls per ``window_seconds`` per agent, session or tool."""

    kind: Literal["rate_limit"]
    per: Literal["agent", "session", "tool"]
    limit: int = Field(ge=1)
    window_seconds: float = Field(gt=0)
    verdict: Verdict = "deny"


class AmountThreshold(_Rule):
    """An amount argument of a financial tool above ``max_amount``."""

    kind: Literal["amount_threshold"]
    max_amount: float = Field(gt=0)


class AmountTotal(_Rule):
    """The amounts of financial calls in one session adding up past ``max_total``."""

    kind: Literal["amount_total"]
    max_total: float = Field(gt=0)
    window_seconds: float = Field(86400.0, gt=0)


Rule = Annotated[
    Union[SensitiveThenEgress, RateLimit, AmountThreshold, AmountTotal],
    Field(discriminator="kind"),
]


class Policy(_Strict):
    """A whole policy document."""

    version: Literal[1]
    name: str = Field(min_length=1, max_length=200)
    alignment: AlignmentPolicy = AlignmentPolicy()
    profiles: dict[str, ProfileOverride] = {}
    rules: list[Rule] = []

    @model_validator(mode="after")
    def _unique_rule_ids(self) -> Policy:
        seen: set[str] = set()
        for rule in self.rules:
            if rule.id in seen:
                raise ValueError(f"rule id {rule.id!r} is used twice")
            seen.add(rule.id)
        return self

    def document(self) -> dict:
        """Return the policy as the JSON object that is hashed and sealed."""
        return self.model_dump(mode="json")

    @property
    def hash(self) -> str:
        return jcs.digest(self.document())


def _check_names(names, known: frozenset[str], what: str) -> None:
    unknown = sorted(set(names) - known)
    if unknown:
        raise ValueError(
            f"unknown {what} {unknown[0]!r}; known: {', '.join(sorted(known))}"
        )


def parse_policy(document: dict, source: str = "policy") -> Policy:
    """Validate a policy document, raising ``ConfigError`` with every problem."""
    try:
        return Policy.model_validate(document)
    except ValidationError as err:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in e['loc']) or '(top)'}: {e['msg']}"
            for e in err.errors()
        )
        raise ConfigError(f"{source} is not a valid policy: {problems}") from err


def load_policy(path: str | Path = DEFAULT_POLICY) -> Policy:
    """Load a policy from a ``.toml`` or ``.json`` file."""
    path = Path(path)
    try:
        data = path.read_bytes()
    except OSError as err:
        raise ConfigError(f"cannot read policy file {path}: {err}") from err
    if path.suffix == ".toml":
        try:
            document = tomllib.loads(data.decode("utf-8"))
        except (tomllib.TOMLDecodeError, UnicodeDecodeError) as err:
            raise ConfigError(f"policy file {path} is not valid TOML: {err}") from err
    elif path.suffix == ".json":
        try:
            document = jcs.parse_strict(data)
        except InvalidRequest as err:
            raise ConfigError(f"policy file {path}: {err}") from err
    else:
        raise ConfigError(
            f"policy file {path}: expected a .toml or .json file, got "
            f"{path.suffix or 'no suffix'!r}"
        )
    return parse_policy(document, source=str(path))


def policy_json_schema() -> str:
    return json.dumps(Policy.model_json_schema(), indent=2, sort_keys=True)
