"""The policy: tool profiles, alignment thresholds, rules and approvals.

A policy is a YAML, TOML or JSON file validated by pydantic. Unknown fields,
unknown labels, roles or data classes, and duplicate rule ids stop it from
loading. Whatever the file format, the document must be plain JSON: YAML
anchors, aliases, dates and other types that JSON cannot carry are rejected,
so the hash is over the same JSON object whichever format was written. The
hash, ``SHA-256(JCS(document))``, is sealed into the log as a policy record
and cited by every decision made under it. ``specs/policy.md`` describes every
field.
"""

from __future__ import annotations

import json
import re
import tomllib
from pathlib import Path
from typing import Annotated, Literal, Union

import yaml
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    WithJsonSchema,
    model_validator,
)

from enforcement import jcs
from enforcement.errors import ConfigError, InvalidRequest
from enforcement.identity import parse_verifier_key
from enforcement.profiles import DATA_CLASSES, LABELS, ROLES

Verdict = Literal["allow", "hold", "deny"]
VERDICT_ORDER = {"allow": 0, "hold": 1, "deny": 2}
DEFAULT_POLICY = Path(__file__).parent / "policies" / "default.toml"
# Provenance sources a data-flow rule can reject (see enforcement.provenance).
UNTRUSTED_SOURCES = ("instruction", "text", "structured", "unknown")
# The rule id of the alignment check, which approvals may name like a rule's.
ALIGNMENT_RULE = "alignment"

# Names that the validators below check, so that an unknown one is reported
# with the list of known ones. The schema lists them as enums.
Label = Annotated[str, WithJsonSchema({"type": "string", "enum": sorted(LABELS)})]
DataClass = Annotated[
    str, WithJsonSchema({"type": "string", "enum": sorted(DATA_CLASSES)})
]
Role = Annotated[str, WithJsonSchema({"type": "string", "enum": sorted(ROLES)})]

RuleId = Annotated[
    str, Field(min_length=1, max_length=128, pattern=r"^[A-Za-z0-9_.:-]+$")
]
# A tool name, or a prefix ending in "*" ("read_*"); "*" alone is every tool.
ToolPattern = Annotated[str, Field(min_length=1, max_length=256, pattern=r"^[^*]*\*?$")]


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

    labels: list[Label] | None = None
    data_classes: list[DataClass] | None = None
    roles: dict[str, Role] | None = None
    trusted_output: bool | None = None

    @model_validator(mode="after")
    def _known_names(self) -> ProfileOverride:
        _check_names(self.labels or [], LABELS, "label")
        _check_names(self.data_classes or [], DATA_CLASSES, "data class")
        _check_names((self.roles or {}).values(), ROLES, "role")
        return self


def tool_matches(pattern: str, tool: str) -> bool:
    """Return True when ``tool`` is ``pattern`` or starts with its ``*`` prefix."""
    if pattern.endswith("*"):
        return tool.startswith(pattern[:-1])
    return tool == pattern


class CallPattern(_Strict):
    """A pattern of calls for a rule step: every non-empty field must match.

    Within a field any one entry is enough: ``labels = ["read", "write"]``
    matches a tool with either label.
    """

    tools: list[ToolPattern] = []
    labels: list[Label] = []
    data_classes: list[DataClass] = []

    @model_validator(mode="after")
    def _known_and_not_empty(self) -> CallPattern:
        _check_names(self.labels, LABELS, "label")
        _check_names(self.data_classes, DATA_CLASSES, "data class")
        if not (self.tools or self.labels or self.data_classes):
            raise ValueError(
                "a call pattern needs at least one of tools, labels or data_classes"
            )
        return self

    def matches(self, tool: str, labels: frozenset[str],
                data_classes: frozenset[str]) -> bool:
        if self.tools and not any(tool_matches(p, tool) for p in self.tools):
            return False
        if self.labels and not labels.intersection(self.labels):
            return False
        if self.data_classes and not data_classes.intersection(self.data_classes):
            return False
        return True


class SequenceStep(CallPattern):
    """One step of a sequence: at least ``min_count`` calls matching it."""

    min_count: int = Field(1, ge=1, le=100_000)


class _Rule(_Strict):
    id: RuleId
    verdict: Verdict = "hold"


class SensitiveThenEgress(_Rule):
    """At least ``min_reads`` reads of sensitive data, then an egress to a
    destination the purpose or the principal did not name."""

    kind: Literal["sensitive_read_then_egress"]
    data_classes: list[DataClass] = Field(min_length=1)
    min_reads: int = Field(1, ge=1)
    window_seconds: float = Field(3600.0, gt=0)
    trusted_sources: list[Literal["trusted", "structured"]] = ["trusted"]

    @model_validator(mode="after")
    def _known_classes(self) -> SensitiveThenEgress:
        _check_names(self.data_classes, DATA_CLASSES, "data class")
        return self


class SequenceRule(_Rule):
    """Executed calls matching ``steps`` in order, the current call matching
    the last step, all within ``window_seconds`` before the current call."""

    kind: Literal["sequence"]
    steps: list[SequenceStep] = Field(min_length=1, max_length=16)
    window_seconds: float = Field(3600.0, gt=0)


class DataFlowRule(_Rule):
    """An argument with one of ``roles``, on a tool matching ``labels`` and
    ``tools``, whose value came from one of ``sources``."""

    kind: Literal["data_flow"]
    roles: list[Role] = Field(min_length=1)
    labels: list[Label] = []
    tools: list[ToolPattern] = []
    sources: list[Literal["instruction", "text", "structured", "unknown"]] = Field(
        list(UNTRUSTED_SOURCES), min_length=1
    )

    @model_validator(mode="after")
    def _known_names(self) -> DataFlowRule:
        _check_names(self.roles, ROLES, "role")
        _check_names(self.labels, LABELS, "label")
        return self


class VolumeRule(_Rule):
    """At most ``limit`` records or bytes of a data class read per window."""

    kind: Literal["volume"]
    data_classes: list[DataClass] = Field(min_length=1)
    unit: Literal["records", "bytes"]
    limit: int = Field(ge=1, le=2**53 - 1)
    window_seconds: float = Field(gt=0)
    per: Literal["session", "agent"] = "session"
    verdict: Verdict = "deny"

    @model_validator(mode="after")
    def _known_classes(self) -> VolumeRule:
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
    Union[SensitiveThenEgress, SequenceRule, DataFlowRule, VolumeRule, RateLimit,
          AmountThreshold, AmountTotal],
    Field(discriminator="kind"),
]


class ApprovalPolicy(_Strict):
    """The approvers who may lift a hold, their quorum and the request expiry.

    A held call whose every hold reason comes from a rule in ``rules`` (or
    from any rule when ``rules`` is ``["*"]``) becomes an approval request. A
    deny is never approvable.
    """

    approvers: list[str] = Field(min_length=1, max_length=64)
    quorum: int = Field(1, ge=1)
    expiry_seconds: float = Field(3600.0, gt=0, le=30 * 86400)
    rules: list[Union[RuleId, Literal["*"]]] = Field(["*"], min_length=1)
    wait_seconds: float = Field(0.0, ge=0, le=86400)
    poll_seconds: float = Field(0.5, gt=0, le=60)

    @model_validator(mode="after")
    def _keys_and_quorum(self) -> ApprovalPolicy:
        names = set()
        for key in self.approvers:
            try:
                names.add(parse_verifier_key(key).key_id)
            except ConfigError as err:
                raise ValueError(f"approvers: {err}") from err
        if len(names) != len(self.approvers):
            raise ValueError("an approver key is listed twice")
        if self.quorum > len(self.approvers):
            raise ValueError(
                f"quorum {self.quorum} exceeds the {len(self.approvers)} "
                "approver key(s) listed"
            )
        return self

    def covers(self, rule_ids) -> bool:
        """Return True when an approval may lift a hold from these rules."""
        return "*" in self.rules or set(rule_ids) <= set(self.rules)


class Policy(_Strict):
    """A whole policy document."""

    version: Literal[1]
    name: str = Field(min_length=1, max_length=200)
    alignment: AlignmentPolicy = AlignmentPolicy()
    profiles: dict[str, ProfileOverride] = {}
    rules: list[Rule] = []
    approvals: ApprovalPolicy | None = None

    @model_validator(mode="after")
    def _unique_rule_ids(self) -> Policy:
        seen: set[str] = set()
        for rule in self.rules:
            if rule.id in seen:
                raise ValueError(f"rule id {rule.id!r} is used twice")
            if rule.id == ALIGNMENT_RULE:
                raise ValueError(
                    f"rule id {ALIGNMENT_RULE!r} is reserved for the alignment check"
                )
            seen.add(rule.id)
        if self.approvals is not None:
            known = seen | {ALIGNMENT_RULE, "*"}
            for rule_id in self.approvals.rules:
                if rule_id not in known:
                    raise ValueError(
                        f"approvals.rules names {rule_id!r}, which is not a rule "
                        f"id of this policy; known: {', '.join(sorted(known))}"
                    )
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


def _describe_error(error) -> str:
    where = ".".join(str(p) for p in error["loc"]) or "(top)"
    text = f"{where}: {error['msg']}"
    value = error.get("input")
    if error["type"] != "missing" and isinstance(value, (str, int, float, bool)):
        text += f" (got {value!r})"
    return text


def parse_policy(document: dict, source: str = "policy") -> Policy:
    """Validate a policy document, raising ``ConfigError`` with every problem."""
    try:
        return Policy.model_validate(document)
    except ValidationError as err:
        problems = "; ".join(_describe_error(e) for e in err.errors())
        raise ConfigError(f"{source} is not a valid policy: {problems}") from err


def load_policy(path: str | Path = DEFAULT_POLICY) -> Policy:
    """Load a policy from a ``.yaml``, ``.yml``, ``.toml`` or ``.json`` file."""
    path = Path(path)
    try:
        data = path.read_bytes()
    except OSError as err:
        raise ConfigError(f"cannot read policy file {path}: {err}") from err
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as err:
        raise ConfigError(f"policy file {path} is not UTF-8: {err}") from err
    if path.suffix == ".toml":
        try:
            document = tomllib.loads(text)
        except tomllib.TOMLDecodeError as err:
            raise ConfigError(f"policy file {path} is not valid TOML: {err}") from err
    elif path.suffix in (".yaml", ".yml"):
        document = parse_yaml(text, str(path))
    elif path.suffix == ".json":
        try:
            document = jcs.parse_strict(data)
        except InvalidRequest as err:
            raise ConfigError(f"policy file {path}: {err}") from err
    else:
        raise ConfigError(
            f"policy file {path}: expected a .yaml, .yml, .toml or .json file, "
            f"got {path.suffix or 'no suffix'!r}"
        )
    if not isinstance(document, dict):
        raise ConfigError(
            f"policy file {path}: expected a mapping at the top level, got "
            f"{type(document).__name__}"
        )
    try:
        # TOML dates and times parse to datetime objects, which JSON cannot carry.
        jcs.check_json_value(document, path="policy")
    except InvalidRequest as err:
        raise ConfigError(
            f"policy file {path}: {err}; write the value as a quoted string"
        ) from err
    return parse_policy(document, source=str(path))


# -- YAML restricted to JSON ---------------------------------------------------


class _JsonYamlLoader(yaml.SafeLoader):
    """A YAML loader whose results are always plain JSON values.

    Only the JSON types are resolved (the YAML 1.2 core forms: true/false,
    null, decimal integers and floats). Anchors and aliases, duplicate or
    non-string keys, explicit tags for binary, sets, ordered maps and dates,
    and the YAML 1.1 surprises (``yes``/``no`` as booleans, unquoted dates,
    ``.inf``) are rejected, because each would make the hashed document
    differ from what its author read.
    """

    yaml_implicit_resolvers: dict = {}

    def compose_node(self, parent, index):
        event = self.peek_event()
        if isinstance(event, yaml.AliasEvent) or getattr(event, "anchor", None):
            raise yaml.composer.ComposerError(
                None, None,
                "anchors and aliases are not allowed in a policy; write each "
                "value out", event.start_mark,
            )
        return super().compose_node(parent, index)

    def construct_mapping(self, node, deep=False):
        if not isinstance(node, yaml.MappingNode):
            raise yaml.constructor.ConstructorError(
                None, None, f"expected a mapping, got {node.id}", node.start_mark
            )
        mapping: dict[str, object] = {}
        for key_node, value_node in node.value:
            key = self.construct_object(key_node, deep=deep)
            if not isinstance(key, str):
                raise yaml.constructor.ConstructorError(
                    None, None,
                    f"mapping key {key!r} is a {type(key).__name__}; keys must be "
                    "strings (quote it)", key_node.start_mark,
                )
            if key in mapping:
                raise yaml.constructor.ConstructorError(
                    None, None, f"duplicate key {key!r}", key_node.start_mark
                )
            mapping[key] = self.construct_object(value_node, deep=deep)
        return mapping

    def construct_rejected(self, node):
        raise yaml.constructor.ConstructorError(
            None, None, _REJECTED_TAGS.get(node.tag, f"tag {node.tag} is not "
                                           "allowed in a policy; use plain JSON "
                                           "values"),
            node.start_mark,
        )


_REJECTED_TAGS = {
    "tag:yaml.org,2002:timestamp": "dates and times are not JSON values; quote "
                                   "them as strings",
    "tag:agentgate:yaml-1.1-bool": "yes/no/on/off are not booleans here; write "
                                   "true or false, or quote the string",
    "tag:agentgate:non-finite": ".inf and .nan are not JSON numbers",
}
_RESOLVERS = [
    ("tag:yaml.org,2002:bool", r"^(?:true|True|TRUE|false|False|FALSE)$",
     "tTfF"),
    ("tag:yaml.org,2002:null", r"^(?:~|null|Null|NULL|)$", "~nN"),
    ("tag:yaml.org,2002:int", r"^[-+]?[0-9]+$", "-+0123456789"),
    ("tag:yaml.org,2002:float",
     r"^[-+]?(?:[0-9]+\.[0-9]*|\.[0-9]+|[0-9]+)(?:[eE][-+]?[0-9]+)?$",
     "-+.0123456789"),
    ("tag:yaml.org,2002:timestamp",
     r"^[0-9]{4}-[0-9]{1,2}-[0-9]{1,2}(?:(?:[Tt]|[ \t]+).*)?$", "0123456789"),
    ("tag:agentgate:yaml-1.1-bool",
     r"^(?:y|Y|yes|Yes|YES|n|N|no|No|NO|on|On|ON|off|Off|OFF)$", "yYnNoO"),
    ("tag:agentgate:non-finite", r"^[-+]?\.(?:inf|Inf|INF|nan|NaN|NAN)$", "-+."),
]
for _tag, _regexp, _first in _RESOLVERS:
    _JsonYamlLoader.add_implicit_resolver(_tag, re.compile(_regexp), list(_first))
# The empty scalar resolves to null, as in the standard loader.
_JsonYamlLoader.add_implicit_resolver(
    "tag:yaml.org,2002:null", re.compile(r"^$"), [""]
)
for _tag in ("tag:yaml.org,2002:timestamp", "tag:yaml.org,2002:binary",
             "tag:yaml.org,2002:set", "tag:yaml.org,2002:omap",
             "tag:yaml.org,2002:pairs", "tag:agentgate:yaml-1.1-bool",
             "tag:agentgate:non-finite"):
    _JsonYamlLoader.add_constructor(_tag, _JsonYamlLoader.construct_rejected)


def parse_yaml(text: str, source: str = "policy") -> object:
    """Parse one YAML document into plain JSON values, or raise ``ConfigError``."""
    try:
        return yaml.load(text, Loader=_JsonYamlLoader)  # noqa: S506 - safe subclass
    except yaml.YAMLError as err:
        raise ConfigError(f"policy file {source} is not valid policy YAML: {err}") \
            from err


def policy_json_schema() -> str:
    """Return the JSON Schema of the policy model, as ``specs/policy.schema.json``."""
    return json.dumps(Policy.model_json_schema(), indent=2, sort_keys=True) + "\n"
