"""Messages and their contents: the unit of conversation history, plain pydantic models that serialize as JSON."""

from __future__ import annotations

import base64
import json
from collections.abc import Mapping, Sequence
from typing import Any, Literal, get_args

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from .exceptions import AgentInputError

Role = Literal["user", "assistant", "system", "developer", "tool"]
ContentType = Literal[
    "text",
    "function_call",
    "function_result",
    "function_approval_request",
    "function_approval_response",
    "uri",
    "data",
    "text_reasoning",
    "error",
]


class Content(BaseModel):
    """One part of a message: text, an image or file (`uri` / `data`), reasoning, an error, a tool call, a tool
    result, or an approval request/decision.

    A flat model (one `type` plus the fields that type uses) keeps stored history small and readable.
    The constructors take both the reference page's and Agent Framework 1.x's signatures.
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
    uri: str | None = None
    media_type: str | None = None
    protected_data: str | None = None
    message: str | None = None
    error_code: str | None = None
    error_details: str | None = None

    def __str__(self) -> str:
        return self.text or self.message or ""

    @classmethod
    def from_text(cls, text: str) -> Content:
        return cls(type="text", text=text)

    @classmethod
    def from_uri(cls, uri: str, *, media_type: str | None = None, name: str | None = None) -> Content:
        """An image or file by URL (`https://...`) or data URI (`data:image/png;base64,...`)."""
        if uri.startswith("data:"):
            media_type = media_type or uri[5:].split(";", 1)[0].split(",", 1)[0] or None
            return cls(type="data", uri=uri, media_type=media_type, name=name)
        return cls(type="uri", uri=uri, media_type=media_type, name=name)

    @classmethod
    def from_data(cls, data: bytes, media_type: str, *, name: str | None = None) -> Content:
        """An image or file from its bytes; kept as a data URI."""
        encoded = base64.b64encode(data).decode("ascii")
        return cls(type="data", uri=f"data:{media_type};base64,{encoded}", media_type=media_type, name=name)

    @classmethod
    def from_text_reasoning(
        cls, *, id: str | None = None, text: str | None = None, protected_data: str | None = None
    ) -> Content:
        """A reasoning item; `protected_data` is its encrypted content, sent back so the model keeps its reasoning."""
        return cls(type="text_reasoning", id=id, text=text, protected_data=protected_data)

    @classmethod
    def from_error(
        cls, *, message: str | None = None, error_code: str | None = None, error_details: str | None = None
    ) -> Content:
        return cls(type="error", message=message, error_code=error_code, error_details=error_details)

    @classmethod
    def from_function_call(
        cls, call_id: str, name: str, arguments: str | Mapping[str, Any] | None = None, **_: Any
    ) -> Content:
        if arguments is None or not isinstance(arguments, str):
            arguments = json.dumps(dict(arguments or {}))
        return cls(type="function_call", call_id=call_id, name=name, arguments=arguments)

    @classmethod
    def from_function_result(cls, call_id: str, result: Any = None, *, name: str | None = None) -> Content:
        text = result if isinstance(result, str) else "" if result is None else json.dumps(result, default=str)
        return cls(type="function_result", call_id=call_id, result=text, name=name)

    @classmethod
    def from_function_approval_request(
        cls, id: str | Content | None = None, function_call: Content | None = None
    ) -> Content:
        """An approval request gating `function_call`: `(function_call)` or Agent Framework's `(id, function_call)`."""
        request_id = id if isinstance(id, str) else None
        if isinstance(id, Content):  # the page's form: (function_call)
            function_call = id
        if function_call is None:
            raise AgentInputError("from_function_approval_request() needs the function_call it gates")
        return cls(
            type="function_approval_request",
            id=request_id or function_call.call_id,
            call_id=function_call.call_id,
            name=function_call.name,
            arguments=function_call.arguments,
        )

    @classmethod
    def from_function_approval_response(
        cls, approved: bool | str, id: str | bool | None = None, function_call: Content | None = None
    ) -> Content:
        """A decision on an approval request: `(request_id, approved)` or Agent Framework's `(approved, id, call)`."""
        if isinstance(approved, str):  # the page's order: (request_id, approved)
            approved, id = bool(id), approved
        if not isinstance(id, str):
            raise AgentInputError("from_function_approval_response() needs the id of the request it answers")
        call = function_call
        return cls(
            type="function_approval_response",
            id=id,
            approved=approved,
            call_id=call.call_id if call else None,
            name=call.name if call else None,
            arguments=call.arguments if call else None,
        )

    def to_function_approval_response(self, approved: bool) -> Content:
        """The user's decision on this approval request."""
        if self.type != "function_approval_request" or self.id is None:
            raise AgentInputError("to_function_approval_response() needs a function_approval_request content")
        return Content.from_function_approval_response(approved, self.id, self.function_call)

    def to_approval_response(self, approved: bool) -> Content:
        """The page's name for `to_function_approval_response`."""
        return self.to_function_approval_response(approved)

    @property
    def function_call(self) -> Content:
        """The tool call an approval request gates."""
        return Content.from_function_call(self.call_id or "", self.name or "", self.arguments or "{}")

    def to_dict(self) -> dict[str, Any]:
        return self.model_dump(mode="json", exclude_none=True)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Content:
        """Our stored form, or Agent Framework 1.x's `Content.to_dict()`; raises `AgentInputError` naming what
        it cannot read."""
        return _content_from_dict(data)


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
        contents: Sequence[Content | str | Mapping[str, Any]] | None = None,
        *,
        text: str | None = None,
        author_name: str | None = None,
        message_id: str | None = None,
        **data: Any,
    ) -> None:
        parts = [_as_content(c) for c in contents or []]
        if text is not None:
            parts.insert(0, Content.from_text(text))
        super().__init__(role=role, contents=parts, author_name=author_name, message_id=message_id, **data)

    def __str__(self) -> str:
        return self.text

    def to_dict(self) -> dict[str, Any]:
        """JSON data: `{"type": "message", "role": ..., "contents": [...]}` (readable by `from_dict`)."""
        return {"type": "message", **self.model_dump(mode="json", exclude_none=True)}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Message:
        """`to_dict()` output, our stored form, or Agent Framework 1.x's `Message.to_dict()`; raises
        `AgentInputError` naming what it cannot read."""
        return _message_from_dict(data)

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


# Agent Framework 1.x writes these on contents and messages; they carry nothing a conversation needs.
_FOREIGN_KEYS = frozenset(
    {"additional_properties", "annotations", "hosted", "items", "user_input_request", "informational_only"}
    | {"status", "raw_representation", "merge_mode"}
)


def _content_from_dict(data: Mapping[str, Any]) -> Content:
    kind = data.get("type") if isinstance(data, Mapping) else None
    if kind not in get_args(ContentType):
        raise AgentInputError(f"cannot read a content of type {kind!r}: agent_core has no such content")
    fields = {k: v for k, v in data.items() if k not in _FOREIGN_KEYS}
    call = fields.pop("function_call", None)  # approvals in Agent Framework nest the call they gate
    if isinstance(call, Mapping):
        fields.update({k: call.get(k) for k in ("call_id", "name", "arguments")})
    if fields.get("arguments") is not None and not isinstance(fields["arguments"], str):
        fields["arguments"] = json.dumps(fields["arguments"])
    exception = fields.pop("exception", None)
    if fields.get("result") is not None and not isinstance(fields["result"], str):
        fields["result"] = json.dumps(fields["result"], default=str)
    if kind == "function_result" and fields.get("result") is None:
        fields["result"] = f"Error: {exception}" if exception else ""
    try:
        return Content.model_validate(fields)
    except ValidationError as exc:
        raise AgentInputError(f"cannot read a {kind!r} content: {exc}") from exc


def _message_from_dict(data: Mapping[str, Any]) -> Message:
    if not isinstance(data, Mapping) or not isinstance(data.get("contents", []), list):
        raise AgentInputError("cannot read a message: expected an object with 'role' and a 'contents' list")
    fields = {k: v for k, v in data.items() if k not in _FOREIGN_KEYS and k != "type"}
    fields["contents"] = [_content_from_dict(c) for c in fields.get("contents", [])]
    try:
        return Message.model_validate(fields)
    except ValidationError as exc:
        raise AgentInputError(f"cannot read a message: {exc}") from exc


def _as_content(value: Content | str | Mapping[str, Any]) -> Content:
    if isinstance(value, Content):
        return value
    if isinstance(value, str):
        return Content.from_text(value)
    return Content.from_dict(value)


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
