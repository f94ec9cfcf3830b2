"""Framework adapters: the gate inside agent frameworks' own tool loops.

Each adapter lives in its own module and imports its framework only when
that module is imported; importing this package imports none of them.

- ``enforcement.adapters.langchain``: ``GateMiddleware``, an agent middleware
  for LangChain 1.x ``create_agent``;
- ``enforcement.adapters.langgraph``: ``GateToolWrapper``, the
  ``wrap_tool_call`` of a LangGraph ``ToolNode``;
- ``enforcement.adapters.openai_agents``: ``gate_tools``, a tool input
  guardrail and ``needs_approval`` on OpenAI Agents SDK function tools;
- ``enforcement.adapters.pydantic_ai``: ``GateCapability``, a pydantic-ai
  capability around tool execution.

Every adapter runs each call through the session's pipeline. A refusal
reaches the model as a tool error message with its reasons, and the tool
does not run.
"""

from enforcement.adapters._common import (
    CALL_ERRORS,
    CallMemory,
    ProfileRegistry,
    find_session,
    refusal_data,
    refusal_text,
)

__all__ = [
    "CALL_ERRORS",
    "CallMemory",
    "ProfileRegistry",
    "find_session",
    "refusal_data",
    "refusal_text",
]
