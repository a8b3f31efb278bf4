"""Context and history providers: hooks that add context before a run and record results after it."""

from __future__ import annotations

from abc import abstractmethod
from collections.abc import Sequence
from typing import Any, Protocol

from .deferred_options import DeferredHistoryOptionsMeta
from .messages import Message
from .results import AgentResponse
from .sessions import AgentSession
from .tools import FunctionTool, ToolLike, as_tools


class SupportsAgentRun(Protocol):
    """What a provider is given of the agent it runs for (an `Agent`; typed here without importing the run loop)."""

    name: str | None
    description: str | None
    instructions: str | None


class SessionContext:
    """What one run sends to the model, assembled by the providers, and the response once it is back."""

    def __init__(
        self,
        *,
        session_id: str | None,
        service_session_id: str | None,
        input_messages: list[Message],
        options: dict[str, Any],
    ) -> None:
        self.session_id = session_id
        self.service_session_id = service_session_id
        self.input_messages = input_messages
        self.options = options
        self.context_messages: dict[str, list[Message]] = {}
        self.instructions: list[tuple[str, str]] = []
        self.tools: list[tuple[str, FunctionTool]] = []
        self.response: AgentResponse | None = None

    def extend_messages(self, source: str | BaseContextProvider, messages: Sequence[Message]) -> None:
        """Add messages (history, retrieved documents...) that go before the input, attributed to `source`."""
        source_id = source if isinstance(source, str) else source.source_id
        self.context_messages.setdefault(source_id, []).extend(messages)

    def extend_instructions(self, source_id: str, instructions: str | Sequence[str]) -> None:
        """Add instructions after the agent's own, in provider order. Never stored in history."""
        texts = [instructions] if isinstance(instructions, str) else list(instructions)
        self.instructions.extend((source_id, text) for text in texts if text)

    def extend_tools(self, source_id: str, tools: Sequence[ToolLike] | ToolLike) -> None:
        """Offer extra tools to the model for this run only."""
        self.tools.extend((source_id, t) for t in as_tools(tools))

    def get_messages(self, *, include_input: bool = True) -> list[Message]:
        """Context messages in provider order, then (optionally) the input."""
        messages = [m for msgs in self.context_messages.values() for m in msgs]
        return messages + self.input_messages if include_input else messages


class BaseContextProvider:
    """A provider with `before_run` / `after_run` hooks; `state` is `session.state[source_id]`."""

    def __init__(self, source_id: str) -> None:
        self.source_id = source_id

    async def before_run(
        self, *, agent: SupportsAgentRun, session: AgentSession | None, context: SessionContext, state: dict[str, Any]
    ) -> None:
        """Called before the model is invoked: add messages, instructions or tools to `context`."""

    async def after_run(
        self, *, agent: SupportsAgentRun, session: AgentSession | None, context: SessionContext, state: dict[str, Any]
    ) -> None:
        """Called after a successful run: `context.response` holds the result."""


class BaseHistoryProvider(BaseContextProvider, metaclass=DeferredHistoryOptionsMeta):
    """A context provider that loads the conversation before a run and stores the new messages after it."""

    def __init__(
        self,
        source_id: str,
        *,
        load_messages: bool = True,
        store_inputs: bool = True,
        store_outputs: bool = True,
        store_context_messages: bool = False,
    ) -> None:
        super().__init__(source_id)
        self.load_messages = load_messages
        self.store_inputs = store_inputs
        self.store_outputs = store_outputs
        self.store_context_messages = store_context_messages

    @abstractmethod
    async def get_messages(self, session_id: str | None, **kwargs: Any) -> list[Message]:
        """Return the stored conversation, oldest first. `kwargs` carries `state` (this provider's state)."""

    @abstractmethod
    async def save_messages(self, session_id: str | None, messages: Sequence[Message], **kwargs: Any) -> None:
        """Append `messages` to the stored conversation."""

    async def before_run(
        self, *, agent: SupportsAgentRun, session: AgentSession | None, context: SessionContext, state: dict[str, Any]
    ) -> None:
        if self.load_messages:
            context.extend_messages(self.source_id, await self.get_messages(context.session_id, state=state))

    async def after_run(
        self, *, agent: SupportsAgentRun, session: AgentSession | None, context: SessionContext, state: dict[str, Any]
    ) -> None:
        to_store = self.messages_to_store(context)
        if to_store:
            await self.save_messages(context.session_id, to_store, state=state)

    def messages_to_store(self, context: SessionContext) -> list[Message]:
        """The run's new messages this provider keeps: inputs, others' context, every response message."""
        messages: list[Message] = []
        if self.store_context_messages:
            for source_id, msgs in context.context_messages.items():
                if source_id != self.source_id:
                    messages.extend(msgs)
        if self.store_inputs:
            messages.extend(context.input_messages)
        if self.store_outputs and context.response is not None:
            messages.extend(context.response.messages)
        return messages


class InMemoryHistoryProvider(BaseHistoryProvider):
    """Keeps the conversation in `session.state["in_memory"]["messages"]`, so it serializes with the session."""

    DEFAULT_SOURCE_ID = "in_memory"

    def __init__(self, source_id: str = DEFAULT_SOURCE_ID, **options: bool) -> None:
        super().__init__(source_id, **options)

    async def get_messages(self, session_id: str | None, **kwargs: Any) -> list[Message]:
        state: dict[str, Any] = kwargs.get("state") or {}
        return list(state.get("messages", []))

    async def save_messages(self, session_id: str | None, messages: Sequence[Message], **kwargs: Any) -> None:
        state: dict[str, Any] | None = kwargs.get("state")
        if state is None:
            return
        state.setdefault("messages", []).extend(messages)
