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
    """What one run sends to the model, assembled by the providers, and the response once it is back.

    `instructions` and `tools` are plain lists (Agent Framework 1.x's shape): providers may append to them
    directly or use the `extend_*` methods.
    """

    def __init__(
        self,
        *,
        session_id: str | None = None,
        service_session_id: str | None = None,
        input_messages: list[Message],
        context_messages: dict[str, list[Message]] | None = None,
        instructions: list[str] | None = None,
        tools: list[ToolLike] | None = None,
        options: dict[str, Any] | None = None,
        metadata: dict[str, Any] | None = None,
    ) -> None:
        self.session_id = session_id
        self.service_session_id = service_session_id
        self.input_messages = input_messages
        self.options: dict[str, Any] = options if options is not None else {}
        self.context_messages: dict[str, list[Message]] = context_messages if context_messages is not None else {}
        self.instructions: list[str] = instructions if instructions is not None else []
        self.tools: list[ToolLike] = tools if tools is not None else []
        self.metadata: dict[str, Any] = metadata if metadata is not None else {}
        self.response: AgentResponse | None = None

    def extend_messages(self, source: str | ContextProvider, messages: Sequence[Message]) -> None:
        """Add messages (history, retrieved documents...) that go before the input, attributed to `source`."""
        source_id = source if isinstance(source, str) else source.source_id
        self.context_messages.setdefault(source_id, []).extend(messages)

    def extend_instructions(self, source_id: str, instructions: str | Sequence[str]) -> None:
        """Add instructions after the agent's own, in provider order. Never stored in history."""
        texts = [instructions] if isinstance(instructions, str) else list(instructions)
        self.instructions.extend(text for text in texts if text)

    def extend_tools(self, source_id: str, tools: Sequence[ToolLike] | ToolLike) -> None:
        """Offer extra tools to the model for this run only."""
        self.tools.extend(as_tools(tools))

    def get_messages(
        self,
        *,
        sources: set[str] | None = None,
        exclude_sources: set[str] | None = None,
        include_input: bool = False,
        include_response: bool = False,
    ) -> list[Message]:
        """Context messages in provider order (optionally only some sources), then optionally the input and the
        response's messages. The defaults are Agent Framework 1.x's: context messages only."""
        messages = [
            m
            for source_id, msgs in self.context_messages.items()
            if (sources is None or source_id in sources) and source_id not in (exclude_sources or ())
            for m in msgs
        ]
        if include_input:
            messages += self.input_messages
        if include_response and self.response is not None:
            messages += self.response.messages
        return messages

    def run_tools(self) -> list[FunctionTool]:
        """The tools providers added, as FunctionTools."""
        return as_tools(self.tools)


class ContextProvider:
    """A provider with `before_run` / `after_run` hooks; `state` is `session.state[source_id]`.

    Agent Framework 1.x's name; `BaseContextProvider` (the reference page's) is the same class."""

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


class HistoryProvider(ContextProvider, metaclass=DeferredHistoryOptionsMeta):
    """A context provider that loads the conversation before a run and stores the new messages after it.

    Agent Framework 1.x's name; `BaseHistoryProvider` (the reference page's) is the same class."""

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


BaseContextProvider = ContextProvider
BaseHistoryProvider = HistoryProvider


class InMemoryHistoryProvider(HistoryProvider):
    """Keeps the conversation in `session.state["in_memory"]["messages"]`, so it serializes with the session."""

    DEFAULT_SOURCE_ID = "in_memory"

    def __init__(self, source_id: str | None = None, **options: bool) -> None:
        super().__init__(source_id or self.DEFAULT_SOURCE_ID, **options)

    async def get_messages(self, session_id: str | None, **kwargs: Any) -> list[Message]:
        state: dict[str, Any] = kwargs.get("state") or {}
        return list(state.get("messages", []))

    async def save_messages(self, session_id: str | None, messages: Sequence[Message], **kwargs: Any) -> None:
        state: dict[str, Any] | None = kwargs.get("state")
        if state is None:
            return
        state.setdefault("messages", []).extend(messages)
