"""Hypothesis strategies that mutate a valid input, and the shared settings.

A mutation is a few edits of bytes or whole lines: a flipped bit, a byte
removed or added (from characters the formats give meaning to), the input
cut short, a line removed, repeated or swapped with another. Inputs close
to valid reach deeper into a parser than random bytes do.
"""

from __future__ import annotations

import json
import os
from typing import Any

from hypothesis import HealthCheck, settings
from hypothesis import strategies as st

# Bytes that the text formats give meaning to: line ends, separators, base64
# and decimal characters, the em dash's bytes, JSON punctuation, NUL, and a
# byte that is never UTF-8.
SPECIAL_BYTES = b"\n\r\t =+/-_.:,\"{}[]\\0129Aaz\x00\xe2\x80\x94\xff"

# Every fuzz test runs without a deadline (the machine is shared) and with a
# fixed number of examples, so the whole suite takes a bounded time. A long
# run by hand multiplies the counts: AGENTGATE_FUZZ_SCALE=100 runs 15,000
# examples of a fast test and 4,000 of a slow one.
SCALE = int(os.environ.get("AGENTGATE_FUZZ_SCALE", "1"))
FAST = settings(
    max_examples=150 * SCALE,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
SLOW = settings(FAST, max_examples=40 * SCALE)


def _edit_bytes(draw, data: bytearray) -> None:
    position = draw(st.integers(min_value=0, max_value=max(len(data) - 1, 0)))
    action = draw(st.sampled_from(["flip", "delete", "insert", "replace", "cut"]))
    if not data:
        data.extend(draw(st.binary(min_size=1, max_size=4)))
    elif action == "flip":
        data[position] ^= 1 << draw(st.integers(min_value=0, max_value=7))
    elif action == "delete":
        del data[position]
    elif action == "insert":
        data.insert(position, draw(st.sampled_from(SPECIAL_BYTES)))
    elif action == "replace":
        data[position] = draw(st.sampled_from(SPECIAL_BYTES))
    else:
        del data[position:]


def _edit_lines(draw, data: bytearray) -> None:
    lines = bytes(data).split(b"\n")
    first = draw(st.integers(min_value=0, max_value=len(lines) - 1))
    second = draw(st.integers(min_value=0, max_value=len(lines) - 1))
    action = draw(st.sampled_from(["drop", "repeat", "swap", "blank"]))
    if action == "drop" and len(lines) > 1:
        del lines[first]
    elif action == "repeat":
        lines.insert(second, lines[first])
    elif action == "swap":
        lines[first], lines[second] = lines[second], lines[first]
    else:
        lines.insert(first, b"")
    data[:] = b"\n".join(lines)


@st.composite
def mutated(draw, valid: bytes, max_edits: int = 3) -> bytes:
    """Return ``valid`` after one to ``max_edits`` byte or line edits."""
    data = bytearray(valid)
    for _ in range(draw(st.integers(min_value=1, max_value=max_edits))):
        if draw(st.booleans()):
            _edit_bytes(draw, data)
        else:
            _edit_lines(draw, data)
    return bytes(data)


def mutated_text(valid: str, max_edits: int = 3) -> st.SearchStrategy[str]:
    """Return mutations of ``valid`` that are still UTF-8, as text."""
    return mutated(valid.encode(), max_edits).map(
        lambda data: data.decode("utf-8", "replace")
    )


# JSON values, for parsers of JSON documents.
json_scalars = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**60), max_value=2**60)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=20)
)
json_values = st.recursive(
    json_scalars,
    lambda children: st.lists(children, max_size=4)
    | st.dictionaries(st.text(max_size=8), children, max_size=4),
    max_leaves=12,
)

# JSON values whose integers every JSON implementation reads exactly.
safe_json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**53 - 1), max_value=2**53 - 1)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=20),
    lambda children: st.lists(children, max_size=4)
    | st.dictionaries(st.text(max_size=8), children, max_size=4),
    max_leaves=12,
)


@st.composite
def mutated_json(draw, valid: Any) -> Any:
    """Return ``valid`` with one member replaced, removed or added, somewhere."""
    document = json.loads(json.dumps(valid))
    containers = [document]
    target = document
    # Walk down a random path of objects and arrays.
    while True:
        children = (
            list(target.values()) if isinstance(target, dict) else list(target)
        )
        nested = [child for child in children if isinstance(child, dict | list)]
        if not nested or draw(st.booleans()):
            break
        target = draw(st.sampled_from(nested))
        containers.append(target)
    action = draw(st.sampled_from(["replace", "remove", "add"]))
    if isinstance(target, dict):
        keys = sorted(target)
        if keys and action != "add":
            key = draw(st.sampled_from(keys))
            if action == "remove":
                del target[key]
            else:
                target[key] = draw(json_values)
        else:
            target[draw(st.text(max_size=8))] = draw(json_values)
    elif target and action != "add":
        position = draw(st.integers(min_value=0, max_value=len(target) - 1))
        if action == "remove":
            del target[position]
        else:
            target[position] = draw(json_values)
    else:
        target.append(draw(json_values))
    return document
