"""What the HTTP API shows: sessions, turn replies, history pages and agents as reply models (replies.py), and
the history cursor codec.

`state` is shown as plain JSON (what the client gave and providers wrote), never the store's `$type`
encoding; the approvals the runtime keeps in the state are their own field.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
from collections.abc import Mapping, Sequence
from typing import Any

from pydantic import BaseModel

from agent_core.agents import AgentResponse
from agent_core.approvals import pending_requests
from agent_core.messages import Content

from ..runtime import AgentSpec
from ..storage import StoredSession
from ..storage.catalog import Listed
from ..storage.history import Order, Page, Position
from ..turns import RESERVED_STATE_KEYS, TurnResult
from .replies import (
    AgentInfo,
    AgentList,
    ApprovalRequest,
    HistoryPage,
    Session,
    SessionDetail,
    SessionPage,
    Tool,
    TurnReply,
)


def session_reply(listed: Listed) -> Session:
    """A session with its title and metadata (the list's items, the replies to create and PATCH)."""
    stored = listed.session
    return Session(
        session_id=stored.session_id,
        agent=stored.agent,
        history=stored.history,
        service_session_id=stored.service_session_id,
        created_at=stored.created_at,
        updated_at=stored.updated_at,
        expires_at=stored.expires_at,
        turns=stored.turns,
        message_count=stored.message_count,
        title=listed.title,
        metadata=listed.metadata,
    )


def session_detail(listed: Listed) -> SessionDetail:
    """GET of a session: metadata, `state` as plain JSON, and the pending approval requests."""
    stored = listed.session
    state = {k: v for k, v in stored.state.items() if k not in RESERVED_STATE_KEYS}
    pending = approvals(pending_requests(stored.state))
    return SessionDetail(**dict(session_reply(listed)), state=plain_json(state), pending_approvals=pending)


def session_page(page: Sequence[Listed], next_cursor: str | None) -> SessionPage:
    return SessionPage(sessions=[session_reply(item) for item in page], next_cursor=next_cursor)


def plain_json(value: Any) -> Any:
    """A state value as the JSON a client reads: models dumped, `to_dict()` objects as their dicts, tuples as lists."""
    if isinstance(value, dict):
        return {k: plain_json(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [plain_json(v) for v in value]
    if isinstance(value, BaseModel):
        return value.model_dump(mode="json", exclude_defaults=True)
    to_dict = getattr(value, "to_dict", None)
    if callable(to_dict):
        return plain_json(to_dict())
    return value


def approvals(requests: Sequence[Content]) -> list[ApprovalRequest]:
    return [ApprovalRequest(id=r.id, name=r.name, arguments=r.arguments) for r in requests]


def turn_reply(result: TurnResult) -> TurnReply:
    """The JSON reply to a turn (also the `done` event of a streamed turn)."""
    response: AgentResponse = result.response
    stored = result.session
    return TurnReply(
        session_id=stored.session_id,
        agent=stored.agent,
        turn=result.turn,
        text=response.text,
        messages=response.messages,
        usage=response.usage,
        response_id=response.response_id,
        service_session_id=stored.service_session_id,
        approval_requests=approvals(response.approval_requests),
        expires_at=stored.expires_at,
    )


def history_page(stored: StoredSession, page: Page, order: Order) -> HistoryPage:
    next_cursor = encode_cursor(stored, order, page.next) if page.next is not None else None
    return HistoryPage(messages=page.messages, next_cursor=next_cursor)


def agent_list(agents: Mapping[str, AgentSpec]) -> AgentList:
    """The served agents: name, description and tools (with whether a person approves each call)."""
    return AgentList(
        agents=[
            AgentInfo(
                name=spec.name,
                description=spec.description,
                tools=[
                    Tool(name=t.name, description=t.description, requires_approval=t.requires_approval)
                    for t in spec.tools
                ],
            )
            for spec in sorted(agents.values(), key=lambda s: s.name)
        ]
    )


CURSOR_MAC_BYTES = 12


def _cursor_mac(stored: StoredSession, body: str) -> bytes:
    """Binds a cursor to one session: its partition (owner, agent, id) and incarnation (never shown)."""
    key = f"{stored.pk}|{stored.inc}".encode()
    return hmac.new(key, body.encode(), hashlib.sha256).digest()[:CURSOR_MAC_BYTES]


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).decode().rstrip("=")


def encode_cursor(stored: StoredSession, order: Order, position: Position) -> str:
    """An opaque history cursor: the order and position of the next page, with a MAC binding it to the session."""
    body = f"{order}.{position[0]}.{position[1]}"
    return f"{_b64(body.encode())}.{_b64(_cursor_mac(stored, body))}"


def decode_cursor(stored: StoredSession, cursor: str, order: Order) -> Position:
    """Inverse of `encode_cursor`; ValueError for anything this session's pages in `order` did not return
    (edited, another session's, an earlier session's with the same id, or made for the other order)."""
    try:
        encoded, mac = cursor.split(".")
        body = base64.urlsafe_b64decode(encoded + "=" * (-len(encoded) % 4)).decode("ascii")
        given = base64.urlsafe_b64decode(mac + "=" * (-len(mac) % 4))
    except (ValueError, UnicodeDecodeError):
        raise ValueError("cursor is not valid") from None
    if not hmac.compare_digest(given, _cursor_mac(stored, body)):
        raise ValueError("cursor is not valid for this session")
    made_for, turn, offset = body.split(".")
    if made_for != order:
        raise ValueError(f"this cursor pages in order={made_for}")
    return int(turn), int(offset)
