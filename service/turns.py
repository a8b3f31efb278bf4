"""One turn of a stored session: load (one query), run the agent, commit (one transaction) — or write nothing.

`turn()` is the whole walk; the HTTP layer only parses and validates before calling it, and answers after.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass, replace
from typing import Any

from agent_core.agents import AgentResponse, AgentResponseUpdate
from agent_core.messages import Message
from agent_core.providers import BaseHistoryProvider
from agent_core.sessions import AgentSession, service_id_text

from .ownership import conversation_metadata
from .runtime import AgentSpec, Runtime
from .storage import StoredSession


class StoredHistoryProvider(BaseHistoryProvider):
    """History already loaded with the session header; new messages are collected for the turn's transaction."""

    def __init__(self, messages: Sequence[Message]) -> None:
        super().__init__("history")
        self.loaded = list(messages)
        self.new_messages: list[Message] = []

    async def get_messages(self, session_id: str | None, **kwargs: Any) -> list[Message]:
        return self.loaded

    async def save_messages(self, session_id: str | None, messages: Sequence[Message], **kwargs: Any) -> None:
        self.new_messages.extend(messages)


@dataclass(frozen=True)
class TurnRequest:
    """A validated turn: whose session, the input messages (approval decisions included) and model options."""

    owner: str
    session_id: str
    messages: list[Message]
    options: dict[str, Any]
    stream: bool = False


@dataclass
class TurnResult:
    response: AgentResponse
    session: StoredSession


@dataclass
class TurnEvent:
    """A streamed piece of a turn (`update`), or its end (`result`)."""

    update: AgentResponseUpdate | None = None
    result: TurnResult | None = None


async def turn(runtime: Runtime, spec: AgentSpec, request: TurnRequest) -> AsyncIterator[TurnEvent]:
    """Load the session, run the agent on it and commit the turn; every failure leaves the session untouched.

    Yields the run's updates when `request.stream` is set, and always ends with the committed result.
    """
    stored = await runtime.store.load(request.owner, spec.name, request.session_id)
    history = StoredHistoryProvider(stored.messages)
    agent = spec.build(runtime.client, runtime.settings, history)
    session = AgentSession(stored.session_id, stored.service_session_id, stored.state)
    owns_conversation = stored.owns_conversation
    if stored.history == "service" and not session.service_session_id:
        # a service-mode session gets its server-side conversation on its first turn
        metadata = conversation_metadata(stored.owner, stored.agent, stored.session_id)
        session.service_session_id = await runtime.client.create_conversation(metadata=metadata)
        owns_conversation = True
    if request.stream:
        stream = agent.run(request.messages, session=session, stream=True, options=request.options)
        async for update in stream:
            yield TurnEvent(update=update)
        response = await stream.get_final_response()
    else:
        response = await agent.run(request.messages, session=session, options=request.options)
    updated = replace(
        stored,
        state=session.state,
        service_session_id=service_id_text(session.service_session_id),
        owns_conversation=owns_conversation,
    )
    yield TurnEvent(result=TurnResult(response, await runtime.store.commit_turn(updated, history.new_messages)))


async def run_turn(runtime: Runtime, spec: AgentSpec, request: TurnRequest) -> TurnResult:
    """`turn()` to its end: the committed result."""
    async for event in turn(runtime, spec, request):
        if event.result is not None:
            return event.result
    raise AssertionError("a turn always ends with its result")
