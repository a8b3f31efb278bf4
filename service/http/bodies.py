"""Request bodies and query parameters as pydantic models, read and validated before any work is done."""

from __future__ import annotations

import functools
import hashlib
import json
import re
from typing import Annotated, Any, Literal, Self, TypeVar

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    StringConstraints,
    ValidationError,
    WithJsonSchema,
    field_validator,
    model_validator,
)
from starlette.requests import Request

from agent_core.messages import Content, Message

from ..settings import Limits
from ..storage import SESSION_ID_PATTERN
from ..storage.catalog import decode_list_cursor
from ..turns import RESERVED_STATE_KEYS
from .problems import HttpError, bad_request, invalid, too_large

WHITE_SPACE = "\t\n\x0b\x0c\r \x85\xa0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000"
"""Unicode White_Space, spelled out: regex engines disagree on `\\s` (Python counts \\x1c-\\x1f, JSON Schema's
ECMA-262 counts \\ufeff), and the document must refuse exactly what the service refuses."""
NOT_BLANK = re.compile(f"[^{WHITE_SPACE}]")
"""Text with something in it: at least one character that is not white space (also the document's `pattern`)."""


def is_blank(text: str) -> bool:
    return NOT_BLANK.search(text) is None


MAX_JSON_DEPTH = 32
"""Deepest nesting of arrays and objects a request body may have (a turn needs 5; `state` gets the rest)."""


class _Body(BaseModel):
    """Strict: JSON types as sent (`"stream": "yes"` is not a boolean), unknown fields refused.

    One leniency, JSON's own: an integer field takes a number with no fraction (`5.0` is the JSON number 5, and
    JSON Schema's `integer` in the OpenAPI document says so too); `5.5`, `"5"` and `true` stay refused."""

    model_config = ConfigDict(extra="forbid", strict=True)

    @model_validator(mode="before")
    @classmethod
    def _integral_numbers(cls, data: Any) -> Any:
        if not isinstance(data, dict):
            return data
        ints = _int_fields(cls)
        return {k: int(v) if k in ints and isinstance(v, float) and v.is_integer() else v for k, v in data.items()}


@functools.cache
def _int_fields(model: type[BaseModel]) -> frozenset[str]:
    """The fields of `model` that hold an integer (or null)."""
    return frozenset(name for name, f in model.model_fields.items() if f.annotation in (int, int | None))


class ReasoningOptions(_Body):
    effort: Literal["none", "minimal", "low", "medium", "high"] | None = None
    summary: Literal["auto", "concise", "detailed"] | None = None


class TextFormatText(_Body):
    type: Literal["text"]


class TextFormatJsonObject(_Body):
    type: Literal["json_object"]


class TextFormatJsonSchema(_Body):
    type: Literal["json_schema"]
    name: str = Field(pattern=r"^[A-Za-z0-9_-]{1,64}$")
    schema_: dict[str, Any] = Field(alias="schema")
    description: str | None = None
    strict: bool | None = None


class TextOptions(_Body):
    format: TextFormatText | TextFormatJsonObject | TextFormatJsonSchema | None = Field(
        default=None, discriminator="type"
    )
    verbosity: Literal["low", "medium", "high"] | None = None


class TurnOptions(_Body):
    """The model options a client may set, by type and range, so a bad value never costs a model call."""

    temperature: float | None = Field(default=None, ge=0, le=2)
    top_p: float | None = Field(default=None, ge=0, le=1)
    max_output_tokens: int | None = Field(default=None, ge=1)
    parallel_tool_calls: bool | None = None
    reasoning: ReasoningOptions | None = None
    text: TextOptions | None = None
    truncation: Literal["auto", "disabled"] | None = None

    def to_options(self) -> dict[str, Any]:
        """What the agent run gets: the options that were set, as the Responses API spells them."""
        return self.model_dump(exclude_none=True, by_alias=True)


MetadataKey = Annotated[str, StringConstraints(min_length=1, max_length=64)]
MetadataValue = Annotated[str, StringConstraints(max_length=512)]
Metadata = Annotated[dict[MetadataKey, MetadataValue], Field(max_length=16)]
"""Up to 16 string pairs, keys 1-64 and values up to 512 characters (as the OpenAI Conversations API)."""
Title = Annotated[str, StringConstraints(min_length=1, max_length=256)]


UNRESERVED_KEYS: dict[str, Any] = {"propertyNames": {"not": {"enum": sorted(RESERVED_STATE_KEYS)}}}


class CreateSessionBody(_Body):
    session_id: str | None = Field(default=None, pattern=SESSION_ID_PATTERN.pattern)
    title: Title | None = None
    metadata: Metadata = Field(default_factory=dict)
    history: Literal["local", "service"] | None = None
    service_session_id: str | None = Field(default=None, pattern=r"^[A-Za-z0-9_-]{1,256}$")
    state: dict[str, Any] = Field(default_factory=dict, json_schema_extra=UNRESERVED_KEYS)

    model_config = ConfigDict(
        json_schema_extra={
            "not": {
                "required": ["history", "service_session_id"],
                "properties": {"history": {"const": "local"}, "service_session_id": {"type": "string"}},
            }
        }
    )

    @field_validator("state")
    @classmethod
    def _unreserved(cls, state: dict[str, Any]) -> dict[str, Any]:
        reserved = sorted(RESERVED_STATE_KEYS & set(state))
        if reserved:
            raise ValueError(f"state keys {reserved} are reserved for the runtime's own data; use other names")
        return state

    @model_validator(mode="after")
    def _one_history(self) -> Self:
        if self.history == "local" and self.service_session_id:
            raise ValueError("a service_session_id means service-managed history; drop it or use history 'service'")
        return self

    @property
    def history_mode(self) -> Literal["local", "service"]:
        """Attaching a service conversation implies service-managed history."""
        return "service" if self.service_session_id else (self.history or "local")


MAX_TURN = 2**31 - 1


class ForkBody(_Body):
    """POST .../fork: the turn to fork at (default: the last), the new session's id (default: a new one), and
    its title and metadata (default: the source's)."""

    turn: int | None = Field(default=None, ge=0, le=MAX_TURN)
    session_id: str | None = Field(default=None, pattern=SESSION_ID_PATTERN.pattern)
    title: Title | None = None
    metadata: Metadata | None = None


class RewindBody(_Body):
    """POST .../rewind: the turn to go back to (the turns after it are dropped; 0 drops them all)."""

    turn: int = Field(ge=0, le=MAX_TURN)


def _not_blank(text: str) -> str:
    if is_blank(text):
        raise ValueError("a message needs text; this one is empty or only whitespace")
    return text


MEDIA_TYPE = "[A-Za-z0-9_.+-]+/[A-Za-z0-9_.+-]+"
"""type/subtype, in ASCII (RFC 6838), spelled out for the same reason as WHITE_SPACE."""


BASE64 = "(?:[A-Za-z0-9+/]{4})*(?:[A-Za-z0-9+/]{4}|[A-Za-z0-9+/]{3}=|[A-Za-z0-9+/]{2}==)"
"""Canonical padded base64 of at least one byte (RFC 4648): what the model service decodes without refusing."""


class InputAttachment(_Body):
    """An image or file sent with a user message: an https URL (with its media type) or a base64 data URI."""

    uri: str = Field(pattern=f"^(https://[^{WHITE_SPACE}]+|data:{MEDIA_TYPE};base64,{BASE64})$")
    media_type: str | None = Field(default=None, pattern=f"^{MEDIA_TYPE}$")
    name: str | None = Field(default=None, min_length=1, max_length=256)

    model_config = ConfigDict(
        json_schema_extra={
            "if": {"required": ["uri"], "properties": {"uri": {"pattern": "^https://"}}},
            "then": {"required": ["media_type"], "properties": {"media_type": {"type": "string"}}},
        }
    )

    @model_validator(mode="after")
    def _typed(self) -> Self:
        if self.uri.startswith("https://") and self.media_type is None:
            raise ValueError("an attachment by URL needs its 'media_type' (e.g. image/png, application/pdf)")
        return self

    def to_content(self) -> Content:
        return Content.from_uri(self.uri, media_type=self.media_type, name=self.name)


class UpdateSessionBody(_Body):
    """PATCH of a session: a new `title` (null: back to the one made from the first message) and/or `metadata`
    (replaces the old pairs)."""

    title: Title | None = None
    metadata: Metadata = Field(default_factory=dict)
    """Replaces every pair when sent (`{}` removes them all); absent: the pairs stay."""

    model_config = ConfigDict(json_schema_extra={"minProperties": 1})

    @model_validator(mode="after")
    def _something(self) -> Self:
        if not self.model_fields_set:
            raise ValueError("send 'title' and/or 'metadata'")
        return self

    @property
    def new_metadata(self) -> dict[str, str] | None:
        """The pairs to store, or None to keep the old ones."""
        return dict(self.metadata) if "metadata" in self.model_fields_set else None


CURSOR = WithJsonSchema({"type": "string", "description": "`next_cursor` of the previous page (opaque)"})
"""A cursor's wire form for the OpenAPI document: the models hold it decoded."""


class SessionListQuery(BaseModel):
    """GET .../sessions query. Other parameters are left alone: the platform's `code` key arrives here too."""

    limit: int = Field(default=20, ge=1, le=100)
    cursor: Annotated[str | None, CURSOR] = None
    """Decoded: the row key after which the page starts."""

    @field_validator("cursor", mode="before")
    @classmethod
    def _decode(cls, value: Any) -> Any:
        return decode_list_cursor(value) if isinstance(value, str) else value


class InputMessage(_Body):
    role: Literal["user", "assistant"] = "user"
    text: str = ""
    attachments: list[InputAttachment] = Field(default_factory=list)

    model_config = ConfigDict(
        json_schema_extra={
            "anyOf": [
                {"required": ["text"], "properties": {"text": {"pattern": NOT_BLANK.pattern}}},
                {"required": ["attachments"], "properties": {"attachments": {"minItems": 1}}},
            ],
            "if": {"required": ["attachments"], "properties": {"attachments": {"minItems": 1}}},
            "then": {"properties": {"role": {"const": "user"}}},
        }
    )

    @model_validator(mode="after")
    def _content(self) -> Self:
        if self.attachments and self.role != "user":
            raise ValueError("only user messages take attachments")
        if is_blank(self.text) and not self.attachments:
            raise ValueError("a message needs text (or attachments); this one is empty or only whitespace")
        return self

    def to_message(self) -> Message:
        text = [self.text] if self.text or not self.attachments else []
        return Message(self.role, [*text, *(a.to_content() for a in self.attachments)])


class ApprovalDecision(_Body):
    id: str = Field(min_length=1, max_length=256)
    approved: bool


class TurnBody(_Body):
    model_config = ConfigDict(
        json_schema_extra={
            "anyOf": [
                {"required": ["message"], "properties": {"message": {"type": "string"}}},
                {"required": ["messages"], "properties": {"messages": {"type": "array", "minItems": 1}}},
                {"required": ["approvals"], "properties": {"approvals": {"minItems": 1}}},
            ],
            "not": {
                "required": ["message", "messages"],
                "properties": {"message": {"type": "string"}, "messages": {"type": "array"}},
            },
        }
    )

    message: Annotated[str, AfterValidator(_not_blank)] | None = Field(
        default=None, json_schema_extra={"pattern": NOT_BLANK.pattern}
    )
    messages: list[InputMessage] | None = None
    approvals: list[ApprovalDecision] = Field(
        default_factory=list,
        description="decisions on pending tool calls, at most one per `id`",
        json_schema_extra={"uniqueItems": True},
    )
    options: TurnOptions = Field(default_factory=TurnOptions)
    stream: bool = False
    if_busy: Literal["reject", "enqueue"] | None = None
    """What to do when another turn runs on the session (default: the AGENT_IF_BUSY setting)."""

    @model_validator(mode="after")
    def _one_input(self) -> Self:
        if self.message is not None and self.messages is not None:
            raise ValueError("send either 'message' or 'messages', not both")
        if self.message is None and not self.messages and not self.approvals:
            raise ValueError("send 'message', 'messages' or 'approvals'")
        ids = [decision.id for decision in self.approvals]
        twice = sorted({i for i in ids if ids.count(i) > 1})
        if twice:
            raise ValueError(f"one decision per approval request; decided more than once: {twice}")
        return self

    def inputs(self) -> list[InputMessage]:
        return [InputMessage(text=self.message)] if self.message is not None else list(self.messages or [])

    def to_messages(self, limits: Limits) -> list[Message]:
        """The turn's input messages (decisions last), refused with 413 when over a configured limit."""
        inputs = self.inputs()
        if len(inputs) > limits.max_messages_per_turn:
            raise too_large(f"at most {limits.max_messages_per_turn} messages per turn")
        if any(len(item.text) > limits.max_message_chars for item in inputs):
            raise too_large(f"a message is over {limits.max_message_chars} characters")
        wanted = self.options.max_output_tokens
        if wanted is not None and wanted > limits.max_output_tokens:
            errors = [{"field": "options.max_output_tokens", "message": f"at most {limits.max_output_tokens}"}]
            raise bad_request("the request body is not valid", errors=errors)
        messages = [item.to_message() for item in inputs]
        if self.approvals:
            decisions = [Content.from_function_approval_response(d.id, d.approved) for d in self.approvals]
            messages.append(Message(role="user", contents=decisions))
        return messages


DELIVERY_FIELDS = frozenset({"stream", "if_busy"})
"""Fields that say how to deliver a turn, not what the turn is: a retry may change them under the same key."""
IDEMPOTENCY_KEY = re.compile(r"^[\x20-\x7e]{1,255}$")


def idempotency_key(request: Request) -> str | None:
    """The Idempotency-Key header: 1-255 printable ASCII characters, or absent."""
    key = request.headers.get("idempotency-key")
    if key is not None and not IDEMPOTENCY_KEY.fullmatch(key):
        raise bad_request("Idempotency-Key must be 1-255 printable ASCII characters")
    return key


def fingerprint(data: dict[str, Any]) -> str:
    """What identifies a turn request under its Idempotency-Key: the body, canonical, without delivery fields."""
    turn = {k: v for k, v in data.items() if k not in DELIVERY_FIELDS}
    return hashlib.sha256(json.dumps(turn, sort_keys=True, separators=(",", ":")).encode()).hexdigest()


class HistoryQuery(BaseModel):
    """GET .../messages query. Other parameters are left alone: the platform's `code` key arrives here too."""

    limit: int = Field(default=50, ge=1, le=200)
    cursor: Annotated[str | None, CURSOR] = None
    """As sent: decoded against the session it pages (service/http/views.py), once its header is read."""
    order: Literal["asc", "desc"] = Field(default="asc", description="asc: oldest first; desc: newest first")


ModelT = TypeVar("ModelT", bound=BaseModel)


def parse(model: type[ModelT], data: dict[str, Any], what: str = "the request body") -> ModelT:
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        raise invalid(exc, what) from None


def parse_query(model: type[ModelT], request: Request) -> ModelT:
    return parse(model, dict(request.query_params), "the query")


async def read_json(request: Request, max_bytes: int, *, required: bool) -> dict[str, Any]:
    """The body as a JSON object, refused (413) as soon as it passes `max_bytes`."""
    declared = request.headers.get("content-length")
    if declared and declared.isdigit() and int(declared) > max_bytes:
        raise too_large(f"the request body is over {max_bytes} bytes")
    raw = b""
    async for chunk in request.stream():
        raw += chunk
        if len(raw) > max_bytes:
            raise too_large(f"the request body is over {max_bytes} bytes")
    if not raw.strip():
        if required:
            raise bad_request("a JSON body is required")
        return {}
    content_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if content_type != "application/json" and not content_type.endswith("+json"):
        raise HttpError(415, "Unsupported Media Type", "send the body as application/json")
    data = load_json(raw)
    if not isinstance(data, dict):
        raise bad_request("the JSON body must be an object")
    return data


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


def load_json(raw: bytes) -> Any:
    """Strict JSON (RFC 8259): no NaN/Infinity, no lone surrogates, at most MAX_JSON_DEPTH levels deep."""
    try:
        data = json.loads(raw, parse_constant=_reject_constant)
    except RecursionError:
        raise bad_request(f"the JSON body is nested more than {MAX_JSON_DEPTH} levels deep") from None
    except (ValueError, UnicodeDecodeError) as exc:  # JSONDecodeError is a ValueError
        raise bad_request(f"malformed JSON: {exc}") from None
    _check_tree(data)
    return data


def _check_tree(data: Any) -> None:
    """Walk without recursion: depth, and strings that UTF-8 (so storage and the model) can carry."""
    stack: list[tuple[Any, int]] = [(data, 0)]
    while stack:
        value, depth = stack.pop()
        if isinstance(value, str):
            _check_text(value)
        elif isinstance(value, (dict, list)):
            if depth >= MAX_JSON_DEPTH:
                raise bad_request(f"the JSON body is nested more than {MAX_JSON_DEPTH} levels deep")
            if isinstance(value, dict):
                for key, item in value.items():
                    _check_text(key)
                    stack.append((item, depth + 1))
            else:
                stack.extend((item, depth + 1) for item in value)


def _check_text(text: str) -> None:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        raise bad_request("the JSON body has a lone surrogate (e.g. \\ud800) in a string; send valid Unicode") from None
