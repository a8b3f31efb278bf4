"""Messages and their contents: the unit of conversation history, plain pydantic models that serialize as JSON."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from .exceptions import AgentInputError

Role = Literal["user", "assistant", "system", "developer", "tool"]
ContentType = Literal[
    "text",
    "function_call",
    "function_result",
    "function_approval_request",
    "function_approval_response",
]


class Content(BaseModel):
    """One part of a message: text, a tool call, a tool result, or an approval request/decision.

    A flat model (one `type` plus the fields that type uses) keeps stored history small and readable.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    type: ContentType
    text: str | None = None
    call_id: str | None = None
    name: str | None = None
    arguments: str | None = None
    result: str | None = None
    id: str | None = None
    approved: bool | None = None

    @classmethod
    def from_text(cls, text: str) -> Content:
        return cls(type="text", text=text)

    @classmethod
    def from_function_call(cls, call_id: str, name: str, arguments: str) -> Content:
        return cls(type="function_call", call_id=call_id, name=name, arguments=arguments)

    @classmethod
    def from_function_result(cls, call_id: str, result: str, *, name: str | None = None) -> Content:
        return cls(type="function_result", call_id=call_id, result=result, name=name)

    @classmethod
    def from_function_approval_request(cls, function_call: Content) -> Content:
        """An approval request for `function_call`; its `id` is the call id it gates."""
        return cls(
            type="function_approval_request",
            id=function_call.call_id,
            call_id=function_call.call_id,
            name=function_call.name,
            arguments=function_call.arguments,
        )

    @classmethod
    def from_function_approval_response(cls, request_id: str, approved: bool) -> Content:
        return cls(type="function_approval_response", id=request_id, approved=approved)

    def to_approval_response(self, approved: bool) -> Content:
        """The user's decision on this approval request."""
        if self.type != "function_approval_request" or self.id is None:
            raise ValueError("to_approval_response() needs a function_approval_request content")
        return Content.from_function_approval_response(self.id, approved)

    @property
    def function_call(self) -> Content:
        """The tool call an approval request gates."""
        return Content.from_function_call(self.call_id or "", self.name or "", self.arguments or "{}")


class Message(BaseModel):
    """A chat message. `Message(role="user", text="hi")` and `Message("user", [Content...])` both work."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    role: Role
    contents: list[Content] = Field(default_factory=list)
    author_name: str | None = None
    message_id: str | None = None

    def __init__(
        self,
        role: Role,
        contents: Sequence[Content] | None = None,
        *,
        text: str | None = None,
        author_name: str | None = None,
        message_id: str | None = None,
        **data: Any,
    ) -> None:
        parts = list(contents or [])
        if text is not None:
            parts.insert(0, Content.from_text(text))
        super().__init__(role=role, contents=parts, author_name=author_name, message_id=message_id, **data)

    @property
    def text(self) -> str:
        """The concatenated text of this message's text contents."""
        return "".join(c.text or "" for c in self.contents if c.type == "text")

    def contents_of(self, kind: ContentType) -> list[Content]:
        return [c for c in self.contents if c.type == kind]


# The custom __init__ is for Python callers (`text=`); validation of stored data (model_validate,
# validate_json) need not run it too, which halves the cost of loading a long history.
Message.__pydantic_custom_init__ = False
Message.model_rebuild(force=True)


def to_messages(messages: str | Message | Sequence[str | Message] | None) -> list[Message]:
    """Normalize run() input: a string is a user message; a list may mix strings and messages."""
    if messages is None:
        return []
    if isinstance(messages, (str, Message)):
        messages = [messages]
    result: list[Message] = []
    for item in messages:
        if isinstance(item, str):
            result.append(Message(role="user", text=item))
        elif isinstance(item, Message):
            result.append(item)
        else:
            raise AgentInputError(f"messages must be str or Message, got {type(item).__name__}")
    return result
