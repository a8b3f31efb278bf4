"""What a run returns: the complete `AgentResponse`, or the `AgentResponseUpdate`s of a streamed run."""

from __future__ import annotations

from pydantic import BaseModel, Field

from .messages import Content, Message, Role
from .model_api import UsageDetails


class AgentResponse(BaseModel):
    """The result of a run: the new messages (tool calls and results included), ids and token usage."""

    messages: list[Message] = Field(default_factory=list)
    response_id: str | None = None
    conversation_id: str | None = None
    usage: UsageDetails = Field(default_factory=UsageDetails)

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
    response_id: str | None = None

    @property
    def text(self) -> str:
        return "".join(c.text or "" for c in self.contents if c.type == "text")
