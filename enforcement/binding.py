"""Argument binding: the mapping the gate judges for a call of a guarded function.

``Gate.guard`` receives a call as positional and keyword values. The gate judges
and commits a mapping of argument names to values, so each call is bound to
the function's signature first, with defaults applied, exactly as Python
will pass it. A value the gate judged is therefore the value the tool
receives, under the name its profile gives a role to.
"""

from __future__ import annotations

import inspect
from collections.abc import Mapping, Sequence
from typing import Any

from enforcement.errors import InvalidRequest


def bind_arguments(signature: inspect.Signature, args: Sequence[Any],
                   kwargs: Mapping[str, Any]) -> dict[str, Any]:
    """Return the call's arguments by name, or raise ``InvalidRequest``.

    ``*args`` is kept as one list under its parameter name, and the items of
    ``**kwargs`` are spread under their own names. A name that would then
    appear twice is rejected.
    """
    try:
        bound = signature.bind(*args, **kwargs)
    except TypeError as err:
        raise InvalidRequest(
            f"arguments do not match the tool's signature: {err}"
        ) from err
    bound.apply_defaults()
    arguments: dict[str, Any] = {}
    for parameter_name, value in bound.arguments.items():
        kind = signature.parameters[parameter_name].kind
        if kind is inspect.Parameter.VAR_KEYWORD:
            items = dict(value)
        elif kind is inspect.Parameter.VAR_POSITIONAL:
            items = {parameter_name: list(value)}
        else:
            items = {parameter_name: value}
        # A keyword caught by **kwargs may share the name of a positional-only
        # parameter or of *args. Merged, one value would hide the other, and
        # the gate would judge a value the tool never receives.
        for name, item in items.items():
            if name in arguments:
                raise InvalidRequest(
                    f"argument {name!r} is passed twice (once to a parameter, once "
                    "through **kwargs); rename one of them"
                )
            arguments[name] = item
    return arguments
