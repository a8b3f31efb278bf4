"""One turn of a stored session: load (one query), run the agent, commit (one transaction) — or write nothing."""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from typing import Any

from agent_core.agents import AgentResponse, AgentResponseUpdate
from agent_core.messages import Message
from agent_core.providers import BaseHistoryProvider
from agent_core.sessions import AgentSession

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


@dataclass
class TurnResult:
    response: AgentResponse
    session: StoredSession


@dataclass
class TurnEvent:
    """A streamed piece of a turn (`update`), or its end (`result`)."""

    update: AgentResponseUpdate | None = None
    result: TurnResult | None = None


class Turn:
    """Runs one turn of `stored` and commits it; every failure leaves the stored session untouched."""

    def __init__(self, runtime: Runtime, spec: AgentSpec, stored: StoredSession) -> None:
        self.runtime = runtime
        self.stored = stored
        self.history = StoredHistoryProvider(stored.messages)
        self.agent = spec.build(runtime.client, runtime.settings, self.history)
        self.session = AgentSession(stored.session_id, stored.service_session_id, stored.state)
        self.owns_conversation: bool | None = None

    async def _start_service_conversation(self) -> None:
        """A service-mode session gets its server-side conversation on its first turn."""
        if self.stored.history == "service" and not self.session.service_session_id:
            metadata = {"session_id": self.stored.session_id, "agent": self.stored.agent}
            self.session.service_session_id = await self.runtime.client.create_conversation(metadata=metadata)
            self.owns_conversation = True

    async def run(self, messages: list[Message], options: dict[str, Any]) -> TurnResult:
        await self._start_service_conversation()
        response = await self.agent.run(messages, session=self.session, options=options)
        return await self._commit(response)

    async def stream(self, messages: list[Message], options: dict[str, Any]) -> AsyncIterator[TurnEvent]:
        await self._start_service_conversation()
        stream = self.agent.run(messages, session=self.session, stream=True, options=options)
        async for update in stream:
            yield TurnEvent(update=update)
        yield TurnEvent(result=await self._commit(await stream.get_final_response()))

    async def _commit(self, response: AgentResponse) -> TurnResult:
        limits = self.runtime.settings.limits
        committed = await self.runtime.store.commit_turn(
            self.stored,
            self.history.new_messages,
            state=self.session.state,
            service_session_id=self.session.service_session_id,
            owns_conversation=self.owns_conversation,
            ttl_seconds=self.runtime.settings.session_ttl_seconds,
            max_session_bytes=limits.max_session_bytes,
            max_state_bytes=limits.max_state_bytes,
        )
        return TurnResult(response, committed)
