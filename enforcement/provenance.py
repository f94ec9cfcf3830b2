"""Where the values in a session came from.

The gate records the declared purpose, values the principal supplied, and
every tool output. When a later call passes a value to an argument that
decides where data or money goes, ``Provenance.source_of`` returns which of
these it can be traced to, trying them in this order:

- ``trusted``: the purpose text or a principal value holds it;
- ``instruction``: a tool output holds it inside text that reads as
  instructions addressed to the agent (a prompt injection);
- ``structured``: a short structured field of a tool output holds it (an IBAN
  in a transaction's recipient field, an address in a contact list);
- ``text``: only free text in a tool output holds it (a message body, a web
  page, a file's contents);
- ``unknown``: nothing recorded holds it; the agent produced it.

A value found in instruction text counts as ``instruction`` even when a
structured field holds it too, because the injected text may be why the
agent chose it.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any

SOURCES = ("trusted", "instruction", "structured", "text", "unknown")
# The sources from most to least trusted, in the order of the default scorer's
# factors. A list of values gets the least trusted source of its items, so an
# injected recipient cannot be diluted by adding one that nothing explains.
TRUST_ORDER = ("trusted", "structured", "unknown", "text", "instruction")

# Field names whose string values are free text, whatever their length.
FREE_TEXT_FIELDS = frozenset({
    "body", "content", "text", "message", "subject", "description", "note",
    "notes", "comment", "comments", "summary", "snippet", "html", "bio",
    "review", "reviews", "details", "information", "title", "contents",
})
_STRUCTURED_MAX_LENGTH = 120
_WHOLE_OUTPUT = "\x00whole output"
# Joins the free texts of a session, so that one regular-expression search
# covers all of them. A value that contains it is searched text by text.
_SEPARATOR = "\x00"
_TRACED_MAX = 4096

# Cues that text is addressed to the agent as instructions. Each pattern is a
# category; text with cues from two categories, or one strong cue, counts as
# instructions. The lists name generic phrasing, never a benchmark's template.
_CUE_PATTERNS = {
    "address": re.compile(
        r"\b(to you|you must|you should|you need to|you have to|you are now|"
        r"dear (assistant|ai|agent|model)|(ai|language model|assistant|agent|"
        r"chatbot)\b[^.\n]{0,40}\b(must|should|please))",
        re.IGNORECASE,
    ),
    "override": re.compile(
        r"\b(ignore (all |any |the )?(previous|prior|above|earlier)|disregard|"
        r"new instructions?|instead of (the|your)|forget (the|your|all)|"
        r"important (message|instructions?|notice)|system prompt|"
        r"before you (can|continue|proceed|solve|do|start|finish)|"
        r"after you do that|do the following|the following (first|instead))",
        re.IGNORECASE,
    ),
    "task": re.compile(
        r"\b(the task (that )?(i|we) gave you|your (task|instructions|goal)|"
        r"solve the task|original task|user'?s? (task|request))",
        re.IGNORECASE,
    ),
}
_STRONG_CUE = re.compile(
    r"\b(ignore (all |any )?(previous|prior) instructions|new instructions:)",
    re.IGNORECASE,
)


def looks_like_instructions(text: str) -> bool:
    """Return True when text reads as instructions addressed to the agent."""
    if _STRONG_CUE.search(text):
        return True
    categories = sum(1 for p in _CUE_PATTERNS.values() if p.search(text))
    return categories >= 2


def normalize(value: Any) -> str | None:
    """Return the form used for matching, or None for values never matched."""
    if isinstance(value, bool) or value is None:
        return None
    if isinstance(value, (int, float)):
        number = float(value)
        return str(int(number)) if number.is_integer() else repr(number)
    if isinstance(value, str):
        stripped = value.strip().casefold()
        return stripped or None
    return None


@lru_cache(maxsize=4096)
def _bounded_pattern(needle: str) -> re.Pattern[str]:
    # A match must not be part of a longer word or number: "13" is not in
    # "2013" or "13.5", but a sentence may end right after it.
    return re.compile(r"(?<![\w.@/-])" + re.escape(needle) + r"(?![\w@/-]|\.\d)")


_NUMBER = re.compile(r"(?<![\w.])-?\d+(?:[.,]\d+)?(?![\w])")
LINK_OR_ADDRESS = re.compile(
    r"(?:https?://)?(?:[\w-]+\.)+[a-z]{2,}(?:/[^\s'\"<>)]*)?"
    r"|[\w.+-]+@[\w-]+(?:\.[\w-]+)+",
    re.IGNORECASE,
)


def to_plain(value: Any, depth: int = 0) -> Any:
    """Convert a tool result to plain JSON-like data (models, dataclasses)."""
    if depth > 32:
        return repr(value)
    if hasattr(value, "model_dump"):
        try:
            return to_plain(value.model_dump(mode="json"), depth + 1)
        except Exception:  # noqa: BLE001 - any model failure falls back to text
            return repr(value)
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return to_plain(dataclasses.asdict(value), depth + 1)
    if isinstance(value, Mapping):
        return {str(k): to_plain(v, depth + 1) for k, v in value.items()}
    if isinstance(value, (list, tuple, set, frozenset)):
        return [to_plain(v, depth + 1) for v in value]
    if value is None or isinstance(value, (str, int, float, bool)):
        return value
    return str(value)


@dataclass
class _Text:
    tool: str
    folded: str
    instructions: bool


@dataclass
class Provenance:
    """What one session has seen, to trace argument values to their source."""

    purpose: str = ""
    principal_values: tuple[str, ...] = ()
    _trusted_text: str = ""
    _trusted_numbers: set[str] = field(default_factory=set)
    _structured: dict[str, set[str]] = field(default_factory=dict)
    _texts: list[_Text] = field(default_factory=list)
    # The folded free texts, joined by _SEPARATOR: those that read as
    # instructions, and the others.
    _instruction_texts: str = ""
    _plain_texts: str = ""
    # Sources already traced since the last observed output, by normalized
    # value and whether the value is a number.
    _traced: dict[tuple[str, bool], str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self._trusted_text = "\n".join(
            [self.purpose.casefold(), *(v.casefold() for v in self.principal_values)]
        )
        self._trusted_numbers = {
            normalize(float(n.replace(",", ".")))
            for n in _NUMBER.findall(self._trusted_text)
        }

    def observe(self, tool: str, output: Any, trusted: bool = False) -> None:
        """Record a tool output; ``trusted`` marks a source the policy trusts."""
        self._traced.clear()
        self._walk(tool, to_plain(output), _WHOLE_OUTPUT, trusted)

    def _walk(self, tool: str, value: Any, field_name: str | None,
              trusted: bool) -> None:
        if isinstance(value, Mapping):
            for key, item in value.items():
                self._walk(tool, item, str(key).lower(), trusted)
            return
        if isinstance(value, list):
            # Items of a list are fields of their own, named by the list's field.
            item_field = None if field_name is _WHOLE_OUTPUT else field_name
            for item in value:
                self._walk(tool, item, item_field, trusted)
            return
        if isinstance(value, str):
            # A whole output that is one string is a document, not a field.
            is_text = (
                field_name is _WHOLE_OUTPUT
                or field_name in FREE_TEXT_FIELDS
                or len(value) > _STRUCTURED_MAX_LENGTH
                or "\n" in value
            )
            if trusted:
                self._trusted_text += "\n" + value.casefold()
                return
            if is_text:
                text = _Text(tool, value.casefold(), looks_like_instructions(value))
                self._texts.append(text)
                if text.instructions:
                    self._instruction_texts += _SEPARATOR + text.folded
                else:
                    self._plain_texts += _SEPARATOR + text.folded
                return
        key = normalize(value)
        if key is None:
            return
        if trusted:
            self._trusted_text += "\n" + key
            self._trusted_numbers.add(key)
            return
        self._structured.setdefault(key, set()).add(tool)

    def source_of(self, value: Any) -> str:
        """Return the most trusted source that explains ``value`` (see module doc).

        A list, or an object's names and values, gets the least trusted source
        of its items. Only values that can name no destination (None, booleans,
        blank strings) are ``trusted`` without a match.
        """
        if isinstance(value, Mapping):
            value = [*value.keys(), *value.values()]
        if isinstance(value, Sequence) and not isinstance(value, (str, bytes)):
            sources = [self.source_of(item) for item in value]
            return max(sources, key=TRUST_ORDER.index) if sources else "unknown"
        key = normalize(value)
        if key is None:
            return "trusted"
        traced = (key, isinstance(value, (int, float)))
        source = self._traced.get(traced)
        if source is None:
            source = self._trace(key, value)
            if len(self._traced) >= _TRACED_MAX:
                self._traced.clear()
            self._traced[traced] = source
        return source

    def _trace(self, key: str, value: Any) -> str:
        """Return the source of a scalar value whose normalized form is ``key``."""
        if self._in_trusted(key, value):
            return "trusted"
        pattern = _bounded_pattern(key)
        if _SEPARATOR in key:
            in_texts = [t for t in self._texts if pattern.search(t.folded)]
            in_instructions = any(t.instructions for t in in_texts)
            in_plain = bool(in_texts)
        else:
            # A match cannot span two joined texts, because the value does
            # not contain the separator, and the separator is no word
            # character, so a match at a text's edge is bounded as before.
            in_instructions = bool(pattern.search(self._instruction_texts))
            in_plain = None
        if in_instructions:
            return "instruction"
        if key in self._structured:
            return "structured"
        if in_plain is None:
            in_plain = bool(pattern.search(self._plain_texts))
        if in_plain:
            return "text"
        return "unknown"

    def _in_trusted(self, key: str, value: Any) -> bool:
        if isinstance(value, (int, float)):
            return key in self._trusted_numbers
        return bool(_bounded_pattern(key).search(self._trusted_text))

    def embedded_destinations(self, text: str) -> list[str]:
        """Return links and e-mail addresses written inside a content argument."""
        return [m.group(0).rstrip(".,;:") for m in LINK_OR_ADDRESS.finditer(text)]

    def sources(self, values: Iterable[Any]) -> dict[str, str]:
        return {str(v): self.source_of(v) for v in values}
