"""Tool profiles: what a tool does, what data it touches, what its arguments mean.

A profile carries labels (``read``, ``write``, ``egress``, ``financial``,
``destructive``, ``credential``), the data classes the tool reads or writes,
and a role for each argument (``recipient``, ``url``, ``path``, ``amount``,
``content``, ``credential``, ``identifier``, ``command``). Profiles can be
derived from a function's name, signature and docstring with
``derive_profile`` and then overridden in the policy. Derivation uses word
lists only; it never looks at argument values.

An argument with the ``command`` role is a command line that the tool runs,
in a shell or as a script. The scope constraint for it is ``commands``
(``enforcement.constraints``). A derived profile of a tool that takes a
command is labelled ``destructive``, whatever the tool's name, because a
shell can delete, overwrite or send anything its user can. The gate treats
such a tool as the most dangerous kind until a profile override in the
policy sets other labels.
"""

from __future__ import annotations

import inspect
import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field, replace

LABELS = frozenset(
    {"read", "write", "egress", "financial", "destructive", "credential"}
)
ROLES = frozenset(
    {"recipient", "url", "path", "amount", "content", "credential", "identifier",
     "command", "other"}
)
DATA_CLASSES = frozenset(
    {"financial", "messages", "personal", "files", "calendar", "credentials",
     "web", "travel"}
)
# Labels whose arguments decide where data or money goes, or what is lost.
HIGH_RISK_LABELS = frozenset({"egress", "financial", "destructive", "credential"})

_READ_VERBS = {
    "get", "read", "search", "list", "find", "fetch", "lookup", "query", "check",
    "show", "view", "count", "download", "browse", "open", "retrieve", "load",
}
_WRITE_VERBS = {
    "create", "update", "append", "add", "set", "edit", "modify", "reschedule",
    "schedule", "rename", "move", "write", "save", "reserve", "book", "change",
    "insert", "put", "patch", "register", "mark",
}
_EGRESS_VERBS = {
    "send", "post", "share", "invite", "email", "publish", "forward", "reply",
    "notify", "upload", "submit", "tweet", "broadcast", "message", "transmit",
}
_DESTRUCTIVE_VERBS = {
    "delete", "remove", "cancel", "drop", "purge", "erase", "revoke", "destroy",
    "wipe", "truncate", "uninstall", "kill", "terminate", "unsubscribe",
}
_FINANCIAL_WORDS = {
    "money", "payment", "payments", "pay", "transaction", "transactions",
    "transfer", "iban", "invoice", "purchase", "buy", "refund", "wire", "charge",
    "reserve", "reservation", "book", "booking", "order", "checkout",
}
_CREDENTIAL_WORDS = {"password", "passcode", "credential", "credentials", "token",
                     "secret", "apikey", "pin", "2fa", "otp"}
_DATA_CLASS_WORDS = {
    "financial": {"transaction", "transactions", "balance", "iban", "payment",
                  "payments", "bank", "money", "invoice", "scheduled"},
    "messages": {"email", "emails", "inbox", "message", "messages", "channel",
                 "channels", "chat", "mail", "dm", "slack", "draft", "drafts"},
    "personal": {"user", "users", "info", "contact", "contacts", "profile",
                 "address", "phone", "account"},
    "files": {"file", "files", "document", "documents", "drive", "folder"},
    "calendar": {"calendar", "event", "events", "appointment", "appointments",
                 "day"},
    "credentials": _CREDENTIAL_WORDS,
    "web": {"webpage", "website", "web", "url", "page", "link"},
    "travel": {"hotel", "hotels", "flight", "flights", "car", "rental",
               "restaurant", "restaurants"},
}
_ROLE_NAMES = {
    "recipient": {"recipient", "recipients", "to", "cc", "bcc", "email", "emails",
                  "user_email", "participants", "participant", "attendees",
                  "channel", "user", "users", "member", "invitee", "destination",
                  "iban", "account", "phone", "address_to"},
    "url": {"url", "link", "website", "uri", "endpoint", "webpage", "href"},
    "path": {"path", "file_path", "filepath", "filename", "directory", "folder",
             "dir", "file_name"},
    "amount": {"amount", "sum", "price", "total", "value", "quantity"},
    "content": {"body", "content", "text", "message", "subject", "description",
                "note", "comment", "title", "summary"},
    "credential": _CREDENTIAL_WORDS | {"new_password", "api_key"},
    "identifier": {"id"},
    "command": {"command", "cmd", "shell_command", "script"},
}


def split_words(name: str) -> list[str]:
    """Split a snake_case or camelCase name into lowercase words."""
    spaced = re.sub(r"([a-z0-9])([A-Z])", r"\1 \2", name)
    return [w for w in re.split(r"[^A-Za-z0-9]+", spaced.lower()) if w]


@dataclass(frozen=True)
class ToolProfile:
    """A tool's labels, the data classes it touches and its argument roles."""

    name: str
    labels: frozenset[str]
    data_classes: frozenset[str] = frozenset()
    roles: Mapping[str, str] = field(default_factory=dict)
    description: str = ""
    trusted_output: bool = False
    # Results of ``arguments_with_roles`` by role set, because the gate looks
    # up the same few role sets of a profile on every call.
    _by_roles: dict[frozenset[str], tuple[str, ...]] = field(
        default_factory=dict, init=False, repr=False, compare=False)

    def role(self, argument: str) -> str:
        return self.roles.get(argument, "other")

    def arguments_with_roles(self, roles: Iterable[str]) -> list[str]:
        """Return the sorted names of the arguments whose role is in ``roles``."""
        wanted = roles if isinstance(roles, frozenset) else frozenset(roles)
        found = self._by_roles.get(wanted)
        if found is None:
            found = tuple(sorted(a for a, r in self.roles.items() if r in wanted))
            self._by_roles[wanted] = found
        return list(found)

    @property
    def high_risk(self) -> bool:
        return bool(self.labels & HIGH_RISK_LABELS)

    def with_overrides(self, **changes) -> ToolProfile:
        return replace(self, **{k: v for k, v in changes.items() if v is not None})

    def to_json(self) -> dict:
        return {
            "name": self.name,
            "labels": sorted(self.labels),
            "data_classes": sorted(self.data_classes),
            "roles": dict(sorted(self.roles.items())),
            "trusted_output": self.trusted_output,
        }


def argument_role(argument: str) -> str:
    """Derive an argument's role from its name."""
    lowered = argument.lower()
    for role, names in _ROLE_NAMES.items():
        if lowered in names:
            return role
    words = split_words(argument)
    if words and words[-1] == "id":
        return "identifier"
    for role in ("url", "credential", "amount", "recipient", "path", "command"):
        if any(w in _ROLE_NAMES[role] for w in words):
            return role
    return "other"


def derive_profile(
    name: str, arguments: Iterable[str] = (), description: str = ""
) -> ToolProfile:
    """Derive a profile from a tool's name, argument names and description.

    A tool with an argument in the ``command`` role is labelled
    ``destructive`` (see the module docstring).
    """
    words = split_words(name)
    verb = words[0] if words else ""
    word_set = set(words)
    roles = {argument: argument_role(argument) for argument in arguments}
    labels: set[str] = set()

    if verb in _READ_VERBS:
        labels.add("read")
    if verb in _WRITE_VERBS:
        labels.add("write")
    if verb in _EGRESS_VERBS or word_set & {"email", "message", "post"} and (
        verb not in _READ_VERBS
    ):
        labels.add("egress")
    # A command line can do anything its user can, deleting included.
    if verb in _DESTRUCTIVE_VERBS or "command" in roles.values():
        labels.add("destructive")
    acting = bool(labels - {"read"}) or not labels
    if acting and word_set & _FINANCIAL_WORDS:
        labels.add("financial")
    if acting and (word_set & _CREDENTIAL_WORDS or "credential" in roles.values()):
        labels.add("credential")
    # A call that names recipients hands them data (an invitation, a share).
    if acting and "recipient" in roles.values() and "destructive" not in labels:
        labels.add("egress")
    if not labels:
        # An unknown verb is treated as an action, never as a harmless read.
        labels.add("write")

    text_words = word_set | set(split_words(description.split("\n")[0]))
    data_classes = {
        data_class
        for data_class, vocabulary in _DATA_CLASS_WORDS.items()
        if text_words & vocabulary
    }
    return ToolProfile(
        name=name,
        labels=frozenset(labels),
        data_classes=frozenset(data_classes),
        roles=roles,
        description=description.strip(),
    )


def profile_from_function(func: Callable, name: str | None = None) -> ToolProfile:
    """Derive a profile from a Python function's name, signature and docstring."""
    parameters = [
        p.name
        for p in inspect.signature(func).parameters.values()
        if p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD)
    ]
    return derive_profile(name or func.__name__, parameters, inspect.getdoc(func) or "")
