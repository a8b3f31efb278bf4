"""Agents as tools: `agent.as_tool(...)` lets one agent call another through its tool loop.

The model passes one string argument (`arg_name`, default `task`); the sub-agent runs on it and its reply text is
the tool's result. Its token usage is added to the calling run's `usage`. Session handling is explicit:
- `propagate_session=False` (default): every call runs in a fresh session, so the sub-agent remembers nothing.
- `propagate_session=True`: the sub-agent keeps its own conversation inside the caller's session, under
  `session.state["agent_tools"][<tool name>]`. It sees its earlier calls of this session, and what it adds is
  saved only if the caller's run succeeds (it is part of the caller's working state). The caller's own history
  and the sub-agent's stay apart: neither sees the other's messages.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from pydantic import Field, create_model

from .sessions import AgentSession
from .tools import ApprovalMode, FunctionTool, ToolRun

STATE_KEY = "agent_tools"


class AgentTool(FunctionTool):
    """A FunctionTool that runs an agent."""

    def __init__(
        self,
        agent: Any,  # an agent_core Agent; typed loosely because agents.py imports this module
        *,
        name: str | None = None,
        description: str | None = None,
        arg_name: str = "task",
        arg_description: str | None = None,
        approval_mode: ApprovalMode = "never_require",
        propagate_session: bool = False,
    ) -> None:
        tool_name = name or agent.name
        if not tool_name:
            raise ValueError("as_tool() needs a name= when the agent has none")
        if not arg_name.isidentifier():
            raise ValueError(f"arg_name must be a Python identifier, got {arg_name!r}")
        field = Field(description=arg_description or f"Task for {tool_name}")
        fields: dict[str, Any] = {arg_name: (str, field)}
        schema = create_model(f"{tool_name.title().replace('_', '')}Input", **fields)

        async def delegate(**kwargs: Any) -> str:
            response = await agent.run(kwargs[arg_name])
            return str(response.text)

        super().__init__(
            delegate,
            name=tool_name,
            description=description or agent.description or "",
            approval_mode=approval_mode,
            schema=schema,
        )
        self.agent = agent
        self.arg_name = arg_name
        self.propagate_session = propagate_session

    def __repr__(self) -> str:
        return f"AgentTool(name={self.name!r}, agent={self.agent.name!r}, propagate_session={self.propagate_session})"

    async def invoke(self, arguments: str | Mapping[str, Any], *, run: ToolRun | None = None) -> str:
        """Run the agent on the validated argument, in a fresh or the propagated session; count its usage."""
        raw = json.loads(arguments or "{}") if isinstance(arguments, str) else arguments
        if not isinstance(raw, Mapping):
            raise ValueError("tool arguments must be a JSON object")
        assert self.input_model is not None
        task = getattr(self.input_model.model_validate(raw), self.arg_name)
        run = run or ToolRun()
        parent = run.session
        if self.propagate_session and parent is not None:
            own: dict[str, Any] = parent.state.setdefault(STATE_KEY, {})
            session = AgentSession(parent.session_id, None, own.get(self.name, {}))
            response = await self.agent.run(task, session=session)
            own[self.name] = session.state  # the caller's working state: kept if the caller's run succeeds
        else:
            response = await self.agent.run(task, session=self.agent.create_session())
        if run.add_usage is not None:
            run.add_usage(response.usage)
        return str(response.text)
