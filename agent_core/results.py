"""What a run returns: the complete `AgentResponse`, or the `AgentResponseUpdate`s of a streamed run."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, Field

from .messages import Content, Message, Role
from .model_api import FinishReason, UsageDetails


class AgentResponse(BaseModel):
    """The result of a run: the new messages (tool calls and results included), ids and token usage."""

    messages: list[Message] = Field(default_factory=list)
    response_id: str | None = None
    conversation_id: str | None = None
    agent_id: str | None = None
    created_at: str | None = None
    finish_reason: FinishReason | None = None
    usage: UsageDetails = Field(default_factory=UsageDetails)
    value: Any = None
    """The validated structured output when the run had a `response_format`."""

    def __str__(self) -> str:
        return self.text

    @property
    def usage_details(self) -> UsageDetails:
        """Agent Framework 1.x's name for `usage`."""
        return self.usage

    @property
    def text(self) -> str:
        """The assistant's text across the run's messages."""
        return "".join(m.text for m in self.messages if m.role == "assistant")

    @property
    def approval_requests(self) -> list[Content]:
        """Tool calls that wait for the user's approval; answer with `request.to_approval_response(bool)`."""
        return [c for m in self.messages for c in m.contents if c.type == "function_approval_request"]

    @property
    def user_input_requests(self) -> list[Content]:
        """Alias of `approval_requests`."""
        return self.approval_requests


class AgentResponseUpdate(BaseModel):
    """One streamed piece of a run: a text delta, a tool call, tool results or approval requests."""

    contents: list[Content] = Field(default_factory=list)
    role: Role = "assistant"
    author_name: str | None = None
    response_id: str | None = None

    def __str__(self) -> str:
        return self.text

    @property
    def text(self) -> str:
        return "".join(c.text or "" for c in self.contents if c.type == "text")

    @property
    def user_input_requests(self) -> list[Content]:
        """Approval requests in this update."""
        return [c for c in self.contents if c.type == "function_approval_request"]
