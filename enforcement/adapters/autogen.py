"""AutoGen 0.7 tools whose every run passes the gate.

``GatedTool`` wraps any ``autogen_core.tools.BaseTool`` (``FunctionTool``
included) and keeps its name, description and schema, so the model sees the
same tool. Its ``run`` (and so ``run_json``, which validates the arguments
and calls ``run``) judges the validated arguments, defaults applied, through
``Session.acall``: the wrapped tool runs only after a verified allow, and
its outcome is sealed. A refusal, or a decision that cannot be sealed,
raises ``ToolCallRefused``, whose message lists the reasons; AutoGen's
workbench turns it into the tool's error result (``is_error`` true), which
the model reads. ``gate_tools`` wraps a list of tools or plain functions::

    agent = AssistantAgent("agent", model_client, tools=gate_tools(tools, gate))
    with gate.session(purpose="Pay the March rent"):
        await agent.run(task="...")

Parallel tool calls in one model message each get their own decision and
receipt. The session is the one entered in the calling context (AutoGen
copies it into the tasks it starts), or the one passed as ``session=``.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Mapping
from typing import Any

from autogen_core import CancellationToken
from autogen_core.tools import BaseTool, FunctionTool, ToolSchema
from pydantic import BaseModel

from enforcement.adapters._common import (
    CALL_ERRORS,
    ProfileRegistry,
    find_session,
    refusal_data,
    refusal_text,
)
from enforcement.errors import ConfigError, GateError
from enforcement.gate import Gate
from enforcement.session import Session

__all__ = ["GatedTool", "ToolCallRefused", "gate_tools"]

logger = logging.getLogger(__name__)


class ToolCallRefused(Exception):
    """The gate did not let a tool call run; the message lists the reasons.

    ``error`` is the gate's exception (``Denied``, ``Held``, ``SealError``,
    ...) and ``data`` the refusal as JSON.
    """

    def __init__(self, error: GateError, tool: str) -> None:
        super().__init__(refusal_text(error, tool))
        self.error = error
        self.data = refusal_data(error)


class GatedTool(BaseTool[BaseModel, Any]):
    """An AutoGen tool that runs only after the gate allowed the call."""

    def __init__(self, tool: BaseTool, gate: Gate, *,
                 session: Session | None = None,
                 profiles: ProfileRegistry | None = None) -> None:
        if not isinstance(tool, BaseTool):
            raise ConfigError(f"expected an autogen_core BaseTool, got "
                              f"{type(tool).__name__}; wrap functions with "
                              "gate_tools()")
        super().__init__(tool.args_type(), tool.return_type(), tool.name,
                         tool.description)
        self.tool = tool
        self.gate = gate
        self._session = session
        self._profiles = profiles or ProfileRegistry(gate)

    @property
    def schema(self) -> ToolSchema:
        return self.tool.schema

    def state_type(self) -> type[BaseModel] | None:
        return self.tool.state_type()

    def return_value_as_string(self, value: Any) -> str:
        return self.tool.return_value_as_string(value)

    async def save_state_json(self) -> Mapping[str, Any]:
        return await self.tool.save_state_json()

    async def load_state_json(self, state: Mapping[str, Any]) -> None:
        await self.tool.load_state_json(state)

    async def run(self, args: BaseModel, cancellation_token: CancellationToken) -> Any:
        """Decide the call on ``args``; run the wrapped tool only on an allow."""
        session = find_session(self.gate, self._session)
        properties = self.tool.schema.get("parameters", {}).get("properties", {})
        self._profiles.register(self.name, list(properties), self.description)
        arguments = args.model_dump(mode="json")
        try:
            return await session.acall(
                self.name, arguments, lambda: self.tool.run(args, cancellation_token))
        except CALL_ERRORS as err:
            logger.info("session %s: %s refused: %s", session.id, self.name, err)
            raise ToolCallRefused(err, self.name) from err


def gate_tools(tools: Iterable[BaseTool | Callable[..., Any]], gate: Gate, *,
               session: Session | None = None) -> list[GatedTool]:
    """Wrap each tool (a ``BaseTool`` or a function) so that it passes ``gate``.

    A function becomes a ``FunctionTool`` described by its docstring.
    """
    profiles = ProfileRegistry(gate)
    wrapped = []
    for tool in tools:
        if not isinstance(tool, BaseTool):
            if not callable(tool):
                raise ConfigError(f"expected a tool or a function, got {tool!r}")
            tool = FunctionTool(tool, description=(tool.__doc__ or "").strip(),
                                name=getattr(tool, "__name__", None))
        wrapped.append(GatedTool(tool, gate, session=session, profiles=profiles))
    return wrapped
