"""The shapes of the API's replies as pydantic models: views.py builds them, the OpenAPI document describes them.

Every field is required unless it can be absent from a reply, and unknown fields are refused (`extra="forbid"`),
so the document (generated from these models, validation mode) says exactly what a reply holds and the fuzzer
can check it. Messages are agent_core's own `Message` model, sent without their default fields.

Building a reply validates it: a reply that does not match its model is a bug and fails loudly. The cost is a
few microseconds per reply (the models hold already-built values; `Message` instances are not revalidated).
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Annotated, Any, ClassVar, Literal

from pydantic import BaseModel, ConfigDict, Field, PlainSerializer, WithJsonSchema
from starlette.responses import Response

from agent_core.messages import Message
from agent_core.model_api import UsageDetails

Timestamp = Annotated[
    datetime,
    PlainSerializer(lambda moment: moment.isoformat(), return_type=str),
    WithJsonSchema({"type": "string", "format": "date-time"}),
]
"""An ISO 8601 date and time with its UTC offset, as `datetime.isoformat()` writes it."""


def _plain_messages(messages: Sequence[Message]) -> list[dict[str, Any]]:
    return [m.model_dump(mode="json", exclude_defaults=True) for m in messages]


Messages = Annotated[list[Message], PlainSerializer(_plain_messages)]
"""Messages as the history stores them: only the fields that are set."""


class Reply(BaseModel):
    """A reply body: unknown fields refused, so the schema says what a reply holds and nothing else."""

    model_config = ConfigDict(extra="forbid")

    media_type: ClassVar[str] = "application/json"

    def to_json(self) -> str:
        return self.model_dump_json()

    def response(self, status_code: int = 200, headers: dict[str, str] | None = None) -> Response:
        """This reply as a response of its media type."""
        return Response(self.to_json(), status_code=status_code, headers=headers, media_type=self.media_type)


class Session(Reply):
    """A session's metadata: the reply to create and PATCH, an item of the list."""

    session_id: str
    agent: str
    history: Literal["local", "service"]
    service_session_id: str | None = Field(description="the service conversation (service-managed history only)")
    created_at: Timestamp
    updated_at: Timestamp
    expires_at: Timestamp = Field(description="the sliding deadline: each turn moves it")
    turns: int = Field(ge=0)
    message_count: int = Field(ge=0)
    title: str | None = Field(description="given, or made from the first user message; null until there is one")
    metadata: dict[str, str]


class ApprovalRequest(Reply):
    """A tool call waiting for a person's decision (send it back in `approvals`)."""

    id: str | None
    name: str | None
    arguments: str | None = Field(description="the call's arguments as a JSON string")


class SessionDetail(Session):
    """GET of a session: its metadata, `state` as plain JSON, and the tool calls waiting for a decision."""

    state: dict[str, Any]
    pending_approvals: list[ApprovalRequest]


class ForkedFrom(Reply):
    session_id: str
    turn: int = Field(ge=0, description="the source's turn the fork holds the history up to")


class ForkReply(Session):
    """The new session a fork made, and where it came from."""

    forked_from: ForkedFrom


class RewindReply(SessionDetail):
    """The session after a rewind, and how many turns it dropped."""

    dropped_turns: int = Field(ge=0)


class SessionPage(Reply):
    """A page of the caller's sessions, newest first; follow `next_cursor` until it is null."""

    sessions: list[Session]
    next_cursor: str | None


class HistoryPage(Reply):
    """A page of a session's history in the order asked (asc: oldest first; desc: newest first); follow
    `next_cursor` until it is null."""

    messages: Messages
    next_cursor: str | None


class TurnReply(Reply):
    """The reply to a turn, and the data of a streamed turn's `done` event."""

    session_id: str
    agent: str
    turn: int = Field(ge=1, description="the turn's number in the session")
    text: str = Field(description="the assistant's text across the turn's messages")
    messages: Messages = Field(description="the turn's new messages: tool calls, tool results, the reply")
    usage: UsageDetails
    response_id: str | None
    service_session_id: str | None
    approval_requests: list[ApprovalRequest]
    expires_at: Timestamp


class Tool(Reply):
    name: str
    description: str
    requires_approval: bool


class AgentInfo(Reply):
    name: str
    description: str
    tools: list[Tool]


class AgentList(Reply):
    """The served agents."""

    agents: list[AgentInfo]


class Health(Reply):
    """Liveness: storage answered; which model service and agents the app has."""

    status: Literal["ok"]
    model: Literal["azure", "openai"]
    agents: list[str]
    time: Timestamp


class FieldError(Reply):
    field: str = Field(description="the invalid field's path, dotted (`body` for the body as a whole)")
    message: str


class Problem(Reply):
    """An error (RFC 9457 application/problem+json): never a stack trace."""

    type: Literal["about:blank"]
    title: str
    status: int = Field(ge=400, le=599)
    detail: str
    errors: list[FieldError] | None = Field(default=None, description="400: each invalid field")
    pending_approvals: list[str] | None = Field(
        default=None, description="409: the approval requests still waiting for a decision"
    )
    turns: int | None = Field(default=None, description="409 from fork or rewind: the session's number of turns")

    media_type: ClassVar[str] = "application/problem+json"

    def to_json(self) -> str:
        return self.model_dump_json(exclude_none=True)


# -- the events of a streamed turn (text/event-stream): `event: <name>` then `data: <JSON>` --


class DeltaEvent(Reply):
    """`delta`: a piece of the reply's text."""

    text: str


class ToolCallEvent(Reply):
    """`tool_call`: the model called a tool."""

    call_id: str | None
    name: str | None
    arguments: str | None


class ToolResultEvent(Reply):
    """`tool_result`: a tool's result."""

    call_id: str | None
    name: str | None
    result: str | None


class ApprovalRequestEvent(ApprovalRequest):
    """`approval_request`: a tool call that waits for a decision (the turn ends after it)."""


SSE_EVENTS: dict[str, type[Reply]] = {
    "delta": DeltaEvent,
    "tool_call": ToolCallEvent,
    "tool_result": ToolResultEvent,
    "approval_request": ApprovalRequestEvent,
    "done": TurnReply,
    "error": Problem,
}
"""Each event of a streamed turn and its data: any number of the first four, then one `done` or one `error`."""
