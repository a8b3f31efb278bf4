"""What each route accepts and answers: the table the OpenAPI document (openapi.py) is generated from.

`ROUTES` maps each route template of service/app.py to the HttpApi handler behind it and that handler's
operations: one per method it accepts, each with its request models (bodies.py), its replies (replies.py) and
every status it can answer. The document is built from the app's own route table, so a route without an
entry here, or a handler method without an operation, makes the document fail to build (and the tests fail).

Adding a route: register it in service/app.py, give its handler
its methods with `@handler(...)`, and add a `RouteDoc` here under the same template, listing its statuses with
`problems(...)`. Nothing else: the path, its parameters, schemas and error shapes follow.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from pydantic import BaseModel

from .bodies import (
    CreateSessionBody,
    ForkBody,
    HistoryQuery,
    RewindBody,
    SessionListQuery,
    TurnBody,
    UpdateSessionBody,
)
from .replies import (
    AgentList,
    ForkReply,
    Health,
    HistoryPage,
    Problem,
    Reply,
    RewindReply,
    Session,
    SessionDetail,
    SessionPage,
    TurnReply,
)


@dataclass(frozen=True)
class Answer:
    """One status of an operation: what it means, its body (None: no body) and the headers that come with it."""

    description: str
    model: type[Reply] | None = None
    headers: tuple[str, ...] = ()
    media_type: str | None = None
    """The body's media type when not the model's own (`text/html` for the playground page)."""
    stream: bool = False
    """The status can also come as text/event-stream (a streamed turn)."""
    links: Mapping[str, str] = field(default_factory=dict)
    """Link name -> operationId taking `agent` and `session_id` from this reply (for clients and the fuzzer)."""


OLD_LAYOUT = "Stored by an earlier version in a row layout this one does not read (it can only be deleted)"

PROBLEM_WHY: dict[int, str] = {
    400: "Invalid input: malformed or non-object JSON, unknown or invalid fields (each in `errors`), an invalid "
    "query, a malformed Idempotency-Key, or the model service rejected the request",
    401: "Missing or invalid credentials for the app's auth mode",
    403: "Attaching a service conversation this app did not create (AGENT_ATTACH_UNBOUND_CONVERSATIONS is off)",
    404: "No such agent or session (or one of another principal, or expired)",
    409: "Conflict: a turn is in progress (nothing was done; see Retry-After), the session id exists, the session "
    "changed meanwhile, approvals pending or not matching (`pending_approvals`), or the session was stored by an "
    "earlier version of the app in a row layout this one does not read (it can only be deleted)",
    413: "Over a limit: body, message, messages per turn, state or session size",
    415: "The body is not application/json",
    422: "The Idempotency-Key was sent before with a different request",
    429: "The model service is throttling requests (see Retry-After)",
    500: "Unexpected error (a bug; see the app's logs)",
    502: "The model service failed, or has no such model or deployment",
    503: "Storage, the model service or the token issuer is unavailable or throttling (see Retry-After), or the app "
    "is not configured",
    504: "The model did not answer in time",
}
PROBLEM_HEADERS: dict[int, tuple[str, ...]] = {
    401: ("WWW-Authenticate",),
    409: ("Retry-After",),
    429: ("Retry-After",),
    503: ("Retry-After",),
}
CALLER = (401, 500, 503)
"""What any route behind the caller's credentials can answer: no credentials, a bug, a dependency down."""
BODY = (400, 413, 415)
"""What reading a JSON body can answer."""
MODEL = (429, 502, 504)
"""What calling the model service can answer (besides 400 and 503)."""


def problems(*statuses: int, **why: str) -> dict[int, Answer]:
    """problem+json answers for `statuses`, described by PROBLEM_WHY unless `why` says (`s404="..."`)."""
    return {
        status: Answer(why.get(f"s{status}", PROBLEM_WHY[status]), Problem, PROBLEM_HEADERS.get(status, ()))
        for status in sorted(set(statuses))
    }


@dataclass(frozen=True)
class Operation:
    method: str
    operation_id: str
    summary: str
    answers: Mapping[int, Answer]
    body: type[BaseModel] | None = None
    body_required: bool = False
    query: type[BaseModel] | None = None
    headers: tuple[str, ...] = ()
    """Request headers it reads, by name (openapi.REQUEST_HEADERS describes each)."""
    anonymous: bool = False
    description: str = ""


@dataclass(frozen=True)
class RouteDoc:
    handler: str
    """The HttpApi method serving the route; its `@handler` methods must be exactly the operations' methods."""
    operations: tuple[Operation, ...]


SESSION_LINKS = {
    "GetSession": "getSession",
    "UpdateSession": "updateSession",
    "RunTurn": "runTurn",
    "GetHistory": "getHistory",
    "DeleteSession": "deleteSession",
}

ROUTES: dict[str, RouteDoc] = {
    "agents/{agent}/sessions": RouteDoc(
        "sessions",
        (
            Operation(
                "GET",
                "listSessions",
                "The caller's sessions of this agent, newest first, paged",
                {200: Answer("A page of sessions", SessionPage), **problems(*CALLER, 400, 404)},
                query=SessionListQuery,
                description="Deleted and expired sessions are not listed. A page can hold fewer than `limit` "
                "sessions while `next_cursor` is set: follow it until it is null.",
            ),
            Operation(
                "POST",
                "createSession",
                "Create a session",
                {
                    201: Answer("Created", Session, ("Location",), links=SESSION_LINKS),
                    **problems(*CALLER, *BODY, *MODEL, 403, 404, 409, s409="The chosen session_id exists"),
                },
                body=CreateSessionBody,
                description="Attaching a service conversation (`service_session_id`) asks the model service "
                "about it first (hence 403, 404 and the model's statuses).",
            ),
        ),
    ),
    "agents/{agent}/sessions/{session_id}": RouteDoc(
        "session",
        (
            Operation(
                "GET",
                "getSession",
                "A session's metadata, title, metadata pairs, state and pending approvals",
                {
                    200: Answer("The session", SessionDetail),
                    **problems(
                        *CALLER,
                        404,
                        409,
                        s409=OLD_LAYOUT,
                    ),
                },
            ),
            Operation(
                "PATCH",
                "updateSession",
                "Set the title (null: back to the one made from the first message) and/or replace the metadata",
                {
                    200: Answer("The session as listed", Session),
                    **problems(
                        *CALLER,
                        *BODY,
                        404,
                        409,
                        s409=OLD_LAYOUT,
                    ),
                },
                body=UpdateSessionBody,
                body_required=True,
            ),
            Operation(
                "DELETE",
                "deleteSession",
                "Delete the session and its history",
                {
                    204: Answer("Deleted: the session is gone whole"),
                    **problems(*CALLER, 404, 409, s409="The session changed while being deleted; nothing was deleted"),
                },
            ),
        ),
    ),
    "agents/{agent}/sessions/{session_id}/messages": RouteDoc(
        "messages",
        (
            Operation(
                "GET",
                "getHistory",
                "The session's history, paged: oldest first (order=asc) or newest first (order=desc)",
                {
                    200: Answer("A page of messages", HistoryPage),
                    **problems(
                        *CALLER,
                        400,
                        404,
                        409,
                        s409=OLD_LAYOUT,
                    ),
                },
                query=HistoryQuery,
                description="Empty for service-managed sessions (the service keeps their history). A cursor "
                "works only on the session (and in the order) whose page returned it; any other answers 400.",
            ),
            Operation(
                "POST",
                "runTurn",
                "Run one turn: JSON, or Server-Sent Events with `stream` or Accept: text/event-stream",
                {
                    200: Answer(
                        "The turn's reply (header Idempotent-Replayed: true when it is a stored reply replayed)",
                        TurnReply,
                        ("Idempotent-Replayed",),
                        stream=True,
                        links={"GetHistory": "getHistory", "GetSession": "getSession"},
                    ),
                    **problems(*CALLER, *BODY, *MODEL, 404, 409, 422),
                },
                body=TurnBody,
                body_required=True,
                headers=("Idempotency-Key", "Accept"),
            ),
        ),
    ),
    "agents/{agent}/sessions/{session_id}/fork": RouteDoc(
        "fork",
        (
            Operation(
                "POST",
                "forkSession",
                "A new session of the caller holding this one's history up to `turn` (default: the last)",
                {
                    201: Answer("The new session", ForkReply, ("Location",), links=SESSION_LINKS),
                    **problems(
                        *CALLER,
                        *BODY,
                        404,
                        409,
                        s409="Service-managed history, no such turn (`turns`), a turn older than the kept history, "
                        "the chosen session_id exists, or the session changed meanwhile",
                    ),
                },
                body=ForkBody,
                description="State and compaction state are as they were after that turn; approvals pending then "
                "are not carried over. Title and metadata default to the source's.",
            ),
        ),
    ),
    "agents/{agent}/sessions/{session_id}/rewind": RouteDoc(
        "rewind",
        (
            Operation(
                "POST",
                "rewindSession",
                "Drop the turns after `turn` (0: all of them), atomically, under the turn lease",
                {
                    200: Answer("The session as it is now", RewindReply),
                    **problems(
                        *CALLER,
                        *BODY,
                        404,
                        409,
                        s409="Service-managed history, no such turn (`turns`), a turn in progress (see "
                        "Retry-After), or the session changed meanwhile",
                    ),
                },
                body=RewindBody,
                body_required=True,
            ),
        ),
    ),
    "agents": RouteDoc(
        "agents",
        (
            Operation(
                "GET",
                "listAgents",
                "The served agents, their descriptions and tools",
                {200: Answer("The agents", AgentList), **problems(*CALLER)},
            ),
        ),
    ),
    "playground": RouteDoc(
        "playground",
        (
            Operation(
                "GET",
                "playground",
                "The playground page (HTML)",
                {
                    200: Answer("The page", media_type="text/html"),
                    **problems(
                        404,
                        500,
                        503,
                        s404="In Azure without AGENT_PLAYGROUND_ENABLED",
                        s503="In Azure without an AGENT_AUTH_MODE, or the app is not configured",
                    ),
                },
                anonymous=True,
                description="Always served locally; in Azure only with AGENT_PLAYGROUND_ENABLED=true and an "
                "auth mode chosen. The page itself calls the API with the caller's credentials.",
            ),
        ),
    ),
    "health": RouteDoc(
        "health",
        (
            Operation(
                "GET",
                "health",
                "Liveness: one storage request, and which model service and agents the app has",
                {200: Answer("Healthy", Health), **problems(500, 503)},
                anonymous=True,
            ),
        ),
    ),
    "openapi.json": RouteDoc(
        "openapi",
        (
            Operation(
                "GET",
                "openapi",
                "This document (OpenAPI 3.1)",
                {200: Answer("The document", media_type="application/json")},
                anonymous=True,
            ),
        ),
    ),
}
