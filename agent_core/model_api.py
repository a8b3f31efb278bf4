"""What the run loop needs from a model: one request, one turn back (or a stream of events), and the client protocol.

The run loop (agents.py) depends on this module only, never on a concrete client, so the clients (which
build agents in `as_agent`) can import the run loop without an import cycle.
"""

from __future__ import annotations

from collections.abc import AsyncGenerator, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol

from pydantic import BaseModel

from .messages import Content, Message
from .tools import FunctionTool

FinishReason = Literal["stop", "length", "tool_calls", "content_filter"]

InputItem = dict[str, Any]
"""One Responses API input item, as plain JSON."""


class UsageDetails(BaseModel):
    """Token counts, summed over every model call of a run."""

    input_token_count: int = 0
    output_token_count: int = 0
    total_token_count: int = 0

    def __getitem__(self, key: str) -> int:
        """Agent Framework 1.x's UsageDetails is a dict: `usage["input_token_count"]` works too."""
        if key not in type(self).model_fields:
            raise KeyError(key)
        value: int = getattr(self, key)
        return value

    def get(self, key: str, default: int | None = None) -> int | None:
        return self[key] if key in type(self).model_fields else default

    def __add__(self, other: UsageDetails) -> UsageDetails:
        return UsageDetails(
            input_token_count=self.input_token_count + other.input_token_count,
            output_token_count=self.output_token_count + other.output_token_count,
            total_token_count=self.total_token_count + other.total_token_count,
        )


@dataclass
class ModelRequest:
    """One call to the model: the input items to send and which server-side conversation to continue."""

    input: list[InputItem]
    instructions: str | None = None
    tools: Sequence[FunctionTool] = ()
    conversation_id: str | None = None
    previous_response_id: str | None = None
    store: bool | None = None
    options: dict[str, Any] = field(default_factory=dict)


@dataclass
class ModelTurn:
    """The result of one model call: one assistant message (text and/or tool calls) and its ids."""

    message: Message
    response_id: str | None
    conversation_id: str | None
    usage: UsageDetails
    finish_reason: FinishReason | None = None
    created_at: str | None = None  # ISO 8601, UTC


@dataclass
class TextDelta:
    text: str


@dataclass
class FunctionCallEvent:
    call: Content


StreamEvent = TextDelta | FunctionCallEvent | ModelTurn
"""What a streamed model call yields: text deltas and tool calls as they arrive, then the `ModelTurn` (last)."""


class ModelClient(Protocol):
    """The model calls an agent makes (ResponsesClient implements it)."""

    async def get_response(self, request: ModelRequest) -> ModelTurn: ...

    def stream_response(self, request: ModelRequest) -> AsyncGenerator[StreamEvent, None]: ...

    async def create_conversation(self, *, metadata: dict[str, str] | None = None) -> str: ...
