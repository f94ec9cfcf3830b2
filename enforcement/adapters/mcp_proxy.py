"""An MCP server that gates every tool call of another MCP server.

``GatedTools`` sits between an MCP client and one upstream server, which it
reaches through an MCP ``Client`` (``mcp`` 2.x). Its low-level ``Server``
(``GatedTools.server``) answers:

- ``tools/list`` with the upstream's tools, unchanged, and registers each
  tool's profile with the gate from its name, the properties of its input
  schema and its description, as ``Gate.guard`` does from a function;
- ``tools/call`` through ``Session.acall``: the gate decides and seals, and
  only a verified allow is forwarded upstream, whose outcome is sealed in
  turn. A refusal, or a decision that cannot be sealed, is returned as a tool
  result with ``isError`` true whose text lists the reasons, so the model
  reads them; the upstream tool does not run.

One proxy serves one gate session: every call it forwards belongs to the
agent run it was started for. ``agentgate mcp-proxy``
(``enforcement.adapters.mcp_cli``) runs it over stdio or streamable HTTP.

NOTE: only tools are proxied. Resources, prompts, completions, and the
upstream's requests to the client (sampling, elicitation) are not, so a
client sees a server that offers tools alone.
"""

from __future__ import annotations

import logging
from typing import Any

import mcp_types as types
from mcp import Client
from mcp.server import Server
from mcp.server.context import ServerRequestContext

from enforcement.adapters._common import (
    CALL_ERRORS,
    ProfileRegistry,
    refusal_data,
    refusal_text,
)
from enforcement.session import Session

__all__ = ["DECISION_META_KEY", "GatedTools", "McpToolError"]

logger = logging.getLogger(__name__)

# The ``_meta`` member of a refused call's result that carries the verdict,
# the reasons and the log index as JSON, for clients rather than the model.
DECISION_META_KEY = "agentgate/decision"
# Pages of tools/list read when a call names a tool the proxy has not seen.
_MAX_LIST_PAGES = 100


class McpToolError(Exception):
    """The upstream tool returned a result with ``isError`` true.

    Raised inside the gated call so that the outcome is sealed as an error;
    the proxy then returns the upstream's result unchanged.
    """

    def __init__(self, result: types.CallToolResult) -> None:
        super().__init__("the MCP tool returned an error result")
        self.result = result


class GatedTools:
    """The tools of one upstream MCP server, each call passing the gate."""

    def __init__(self, session: Session, upstream: Client) -> None:
        self.session = session
        self.upstream = upstream
        self._profiles = ProfileRegistry(session.gate)
        self._tools: dict[str, types.Tool] = {}

    def server(self, name: str = "agentgate-mcp-proxy") -> Server:
        """Return the low-level MCP server that clients talk to."""
        return Server(
            name,
            instructions=self.upstream.instructions,
            on_list_tools=self.list_tools,
            on_call_tool=self.call_tool,
            get_tool_input_schema=self._input_schema,
        )

    async def list_tools(
        self, ctx: ServerRequestContext[Any] | None,
        params: types.PaginatedRequestParams | None,
    ) -> types.ListToolsResult:
        """Return the upstream's tools and register their profiles."""
        cursor = params.cursor if params is not None else None
        listed = await self.upstream.list_tools(cursor=cursor, cache_mode="refresh")
        for tool in listed.tools:
            self._remember(tool)
        return types.ListToolsResult(tools=listed.tools,
                                     next_cursor=listed.next_cursor)

    async def call_tool(
        self, ctx: ServerRequestContext[Any] | None,
        params: types.CallToolRequestParams,
    ) -> types.CallToolResult:
        """Decide the call, forward it only after a verified allow."""
        name = params.name
        arguments = params.arguments or {}
        if name not in self._tools:
            await self._find_tool(name)

        async def forward() -> types.CallToolResult:
            result = await self.upstream.call_tool(name, arguments)
            if result.is_error:
                raise McpToolError(result)
            return result

        try:
            return await self.session.acall(name, arguments, forward)
        except CALL_ERRORS as err:
            logger.info("session %s: %s not forwarded: %s", self.session.id, name,
                        err)
            return types.CallToolResult(
                content=[types.TextContent(text=refusal_text(err, name))],
                is_error=True,
                _meta={DECISION_META_KEY: refusal_data(err)},
            )
        except McpToolError as err:
            return err.result
        except Exception as err:  # noqa: BLE001 - the upstream failed; report it
            # The outcome is already sealed as an error by Session.acall.
            logger.warning("session %s: upstream call of %s failed: %r",
                           self.session.id, name, err)
            return types.CallToolResult(
                content=[types.TextContent(
                    text=f"The MCP server behind AgentGate failed while running "
                         f"{name}: {type(err).__name__}: {err}")],
                is_error=True,
            )

    def _remember(self, tool: types.Tool) -> None:
        self._tools[tool.name] = tool
        properties = (tool.input_schema or {}).get("properties") or {}
        self._profiles.register(tool.name, list(properties),
                                tool.description or "")

    async def _find_tool(self, name: str) -> None:
        """List the upstream's tools until ``name`` is seen, to learn its profile.

        A tool that is still unknown is decided under the profile derived from
        its name and arguments; the upstream then rejects it.
        """
        cursor = None
        for _ in range(_MAX_LIST_PAGES):
            try:
                page = await self.list_tools(
                    None, types.PaginatedRequestParams(cursor=cursor))
            except Exception as err:  # noqa: BLE001 - the call is still gated
                logger.warning("could not list the upstream's tools: %r", err)
                return
            cursor = page.next_cursor
            if name in self._tools or cursor is None:
                return

    def _input_schema(self, name: str) -> dict[str, Any] | None:
        tool = self._tools.get(name)
        return None if tool is None else tool.input_schema
