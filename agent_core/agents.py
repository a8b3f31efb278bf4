"""Agent: runs a turn through context providers, the model and the tool loop, then records it in the session."""

from __future__ import annotations

from collections.abc import AsyncGenerator, AsyncIterator, Coroutine, Sequence
from contextlib import aclosing
from typing import Any, Literal, overload

from pydantic import BaseModel, Field

from .exceptions import AgentInputError, ApprovalError
from .messages import Content, Message, Role, to_messages
from .model_client import (
    FunctionCallEvent,
    ModelRequest,
    ModelTurn,
    ResponsesClient,
    TextDelta,
    UsageDetails,
)
from .providers import BaseContextProvider, BaseHistoryProvider, InMemoryHistoryProvider, SessionContext
from .sessions import AgentSession, snapshot_state
from .tools import FunctionTool, ToolLike, as_tools, invoke_tool_calls

DEFAULT_MAX_TOOL_ITERATIONS = 10
"""Model calls that may return tool calls in one run; after that the model must answer without tools."""

APPROVALS_KEY = "approvals"
"""`session.state[APPROVALS_KEY]` holds tool calls waiting for a human decision."""

REJECTED_RESULT = "The user rejected this tool call."

RunInput = str | Message | Sequence[str | Message] | None


class AgentResponse(BaseModel):
    """The result of a run: the new messages (tool calls and results included), ids and token usage."""

    messages: list[Message] = Field(default_factory=list)
    response_id: str | None = None
    conversation_id: str | None = None
    usage: UsageDetails = Field(default_factory=UsageDetails)

    @property
    def text(self) -> str:
        """The assistant's text across the run's messages."""
        return "".join(m.text for m in self.messages if m.role == "assistant")

    @property
    def approval_requests(self) -> list[Content]:
        """Tool calls that wait for the user's approval; answer with `request.to_approval_response(bool)`."""
        return [c for m in self.messages for c in m.contents if c.type == "function_approval_request"]

    @property
    def user_input_requests(self) -> list[Content]:
        """Alias of `approval_requests`."""
        return self.approval_requests


class AgentResponseUpdate(BaseModel):
    """One streamed piece of a run: a text delta, a tool call, tool results or approval requests."""

    contents: list[Content] = Field(default_factory=list)
    role: Role = "assistant"
    response_id: str | None = None

    @property
    def text(self) -> str:
        return "".join(c.text or "" for c in self.contents if c.type == "text")


class ResponseStream:
    """The async iterator `run(..., stream=True)` returns; the session is updated once it is fully consumed."""

    def __init__(self, run: _Run) -> None:
        self._run = run
        self._updates = run.execute(stream=True)

    def __aiter__(self) -> AsyncIterator[AgentResponseUpdate]:
        return self._updates

    async def get_final_response(self) -> AgentResponse:
        """Consume what is left of the stream and return the complete response."""
        async for _ in self._updates:
            pass
        assert self._run.response is not None
        return self._run.response

    async def aclose(self) -> None:
        """Abandon the stream: nothing is persisted and the session stays as it was."""
        await self._updates.aclose()


class Agent:
    """An LLM agent: a model client, instructions, tools and context providers. Stateless; state is in sessions."""

    def __init__(
        self,
        *,
        client: ResponsesClient,
        name: str | None = None,
        instructions: str | None = None,
        description: str | None = None,
        tools: Sequence[ToolLike] | ToolLike | None = None,
        context_providers: Sequence[BaseContextProvider] | BaseContextProvider | None = None,
        max_tool_iterations: int = DEFAULT_MAX_TOOL_ITERATIONS,
    ) -> None:
        self.client = client
        self.name = name
        self.instructions = instructions
        self.description = description
        self.tools: list[FunctionTool] = as_tools(tools)
        if isinstance(context_providers, BaseContextProvider):
            context_providers = [context_providers]
        self.context_providers: list[BaseContextProvider] = list(context_providers or [])
        self.max_tool_iterations = max_tool_iterations

    def __repr__(self) -> str:
        return f"Agent(name={self.name!r})"

    def create_session(self, *, session_id: str | None = None) -> AgentSession:
        """A new local session (history kept by providers, in memory by default)."""
        return AgentSession(session_id=session_id)

    def get_session(self, service_session_id: str, *, session_id: str | None = None) -> AgentSession:
        """A session continuing a service-managed conversation (`conv_…`) or response chain (`resp_…`)."""
        return AgentSession(session_id=session_id, service_session_id=service_session_id)

    async def create_service_session(
        self, *, session_id: str | None = None, metadata: dict[str, str] | None = None
    ) -> AgentSession:
        """A session on a new server-side conversation (Conversations API): the service keeps the history."""
        conversation_id = await self.client.create_conversation(metadata=metadata)
        return AgentSession(session_id=session_id, service_session_id=conversation_id)

    @overload
    def run(
        self,
        messages: RunInput = None,
        *,
        session: AgentSession | None = None,
        stream: Literal[False] = False,
        options: dict[str, Any] | None = None,
        **kwargs: Any,
    ) -> Coroutine[Any, Any, AgentResponse]: ...

    @overload
    def run(
        self,
        messages: RunInput = None,
        *,
        session: AgentSession | None = None,
        stream: Literal[True],
        options: dict[str, Any] | None = None,
        **kwargs: Any,
    ) -> ResponseStream: ...

    def run(
        self,
        messages: RunInput = None,
        *,
        session: AgentSession | None = None,
        stream: bool = False,
        options: dict[str, Any] | None = None,
        **kwargs: Any,
    ) -> Coroutine[Any, Any, AgentResponse] | ResponseStream:
        """Run one turn. Extra keyword arguments (e.g. `user_id=`) reach providers in `context.options`.

        Await it for an `AgentResponse`, or pass `stream=True` and iterate `AgentResponseUpdate`s.
        On any failure the session is left exactly as it was.
        """
        run = _Run(self, messages, session, {**(options or {}), **kwargs})
        if stream:
            return ResponseStream(run)
        return run.complete()


class _Run:
    """One turn of one agent: validation, providers, the model/tool loop, then the session update."""

    def __init__(self, agent: Agent, messages: RunInput, session: AgentSession | None, options: dict[str, Any]):
        self.agent = agent
        self.session = session
        self.options = options
        self.response: AgentResponse | None = None
        inputs = to_messages(messages)
        self.decisions = {c.id: c for m in inputs for c in m.contents_of("function_approval_response") if c.id}
        self.inputs = [m for m in map(_without_decisions, inputs) if m.contents]
        conversation_id = options.get("conversation_id")
        if conversation_id is not None and not isinstance(conversation_id, str):
            raise AgentInputError("options['conversation_id'] must be a string")
        self.service_id: str | None = conversation_id or (session.service_session_id if session else None)
        self.service_mode = self.service_id is not None or options.get("store") is True
        # Providers read and write this copy; it becomes session.state only when the run succeeds.
        self.work_state: dict[str, Any] = snapshot_state(session.state) if session else {}
        self.auto_calls: list[Content] = []  # ungated calls of a batch that waits for approval

    async def complete(self) -> AgentResponse:
        async for _ in self.execute(stream=False):
            pass
        assert self.response is not None
        return self.response

    def _providers(self) -> list[BaseContextProvider]:
        providers = self.agent.context_providers
        if self.service_mode:
            # The service holds the history: local history is neither loaded nor sent, nor stored.
            return [p for p in providers if not isinstance(p, BaseHistoryProvider)]
        if self.session is not None and not any(
            isinstance(p, BaseHistoryProvider) and p.load_messages for p in providers
        ):
            return [InMemoryHistoryProvider(), *providers]
        return list(providers)

    def _state(self, provider: BaseContextProvider) -> dict[str, Any]:
        state: dict[str, Any] = self.work_state.setdefault(provider.source_id, {})
        return state

    def _pending(self) -> dict[str, Any]:
        pending: dict[str, Any] = self.work_state.get(APPROVALS_KEY, {})
        return pending

    def _check_decisions(self) -> None:
        requests: list[Content] = self._pending().get("requests", [])
        pending_ids = [r.id for r in requests if r.id]
        if self.decisions and not pending_ids:
            raise ApprovalError("there are no pending approval requests to decide", pending_ids=[])
        unknown = sorted(set(self.decisions) - set(pending_ids))
        if unknown:
            raise ApprovalError(f"unknown approval request ids: {unknown}", pending_ids=pending_ids)
        missing = [i for i in pending_ids if i not in self.decisions]
        if missing:
            raise ApprovalError(
                f"the session has pending approval requests {missing}; approve or reject each before continuing",
                pending_ids=pending_ids,
            )

    async def execute(self, *, stream: bool) -> AsyncGenerator[AgentResponseUpdate, None]:
        """The turn as a stream of updates. Providers work on a copy of the session state that replaces
        the session's only after every step succeeded, so a failed or abandoned run changes nothing."""
        session = self.session
        self._check_decisions()
        context = SessionContext(
            session_id=session.session_id if session else None,
            service_session_id=self.service_id,
            input_messages=self.inputs,
            options=self.options,
        )
        providers = self._providers()
        for provider in providers:
            await provider.before_run(agent=self.agent, session=session, context=context, state=self._state(provider))
        async for update in self._loop(context, stream=stream):
            yield update
        assert self.response is not None
        context.response = self.response
        self._record_approvals()
        for provider in reversed(providers):
            await provider.after_run(agent=self.agent, session=session, context=context, state=self._state(provider))
        if session is not None:
            session.state = self.work_state
            if self.service_mode:
                session.service_session_id = self.response.conversation_id or self.response.response_id

    def _record_approvals(self) -> None:
        assert self.response is not None
        requests = self.response.approval_requests
        if requests:
            self.work_state[APPROVALS_KEY] = {"requests": requests, "auto": self.auto_calls}
        else:
            self.work_state.pop(APPROVALS_KEY, None)

    async def _loop(self, context: SessionContext, *, stream: bool) -> AsyncGenerator[AgentResponseUpdate, None]:
        agent = self.agent
        tools = {t.name: t for t in agent.tools}
        for _, extra in context.tools:
            tools.setdefault(extra.name, extra)
        instructions = "\n\n".join([agent.instructions or "", *(text for _, text in context.instructions)]).strip()
        new_messages: list[Message] = []  # this run's messages after the input
        unsent: list[Message] = []  # what the service has not seen yet (service mode)
        usage = UsageDetails()
        response_id: str | None = None
        conversation_id = self.service_id if self.service_id and self.service_id.startswith("conv_") else None
        previous_id = self.service_id if self.service_id and not conversation_id else None

        if self.decisions:
            results = await self._run_decided_calls(tools)
            new_messages.append(results)
            yield AgentResponseUpdate(role="tool", contents=results.contents)

        if self.service_mode:
            unsent = [*context.get_messages(), *new_messages]
        final_options = {**self.options, "tool_choice": "none"}  # the last allowed call must answer in text
        for iteration in range(agent.max_tool_iterations + 1):
            request = ModelRequest(
                messages=unsent if self.service_mode else [*context.get_messages(), *new_messages],
                instructions=instructions or None,
                tools=list(tools.values()),
                conversation_id=conversation_id,
                previous_response_id=previous_id,
                store=self.service_mode,
                options=self.options if iteration < agent.max_tool_iterations else final_options,
            )
            turn: ModelTurn | None = None
            if stream:
                async with aclosing(agent.client.stream_response(request)) as events:
                    async for event in events:
                        if isinstance(event, TextDelta):
                            yield AgentResponseUpdate(contents=[Content.from_text(event.text)], response_id=response_id)
                        elif isinstance(event, FunctionCallEvent):
                            yield AgentResponseUpdate(contents=[event.call], response_id=response_id)
                        else:
                            turn = event
            else:
                turn = await agent.client.get_response(request)
            assert turn is not None
            usage = usage + turn.usage
            response_id = turn.response_id
            conversation_id = turn.conversation_id or conversation_id
            if self.service_mode:
                previous_id = None if conversation_id else response_id
            message = turn.message
            calls = message.contents_of("function_call")
            if not stream:
                yield AgentResponseUpdate(contents=message.contents, response_id=response_id)
            gated = [c for c in calls if c.name in tools and tools[c.name].requires_approval]
            if gated:
                requests = [Content.from_function_approval_request(c) for c in gated]
                message = Message("assistant", [*message.contents, *requests])
                self.auto_calls = [c for c in calls if c not in gated]
                yield AgentResponseUpdate(contents=requests, response_id=response_id)
            if message.contents:
                new_messages.append(message)
            if not calls or gated:
                break
            if iteration == agent.max_tool_iterations:
                # The model called tools although told not to: answer every call so history stays valid, and stop.
                limit = "Error: tool call limit reached for this turn."
                results = Message(
                    "tool", [Content.from_function_result(c.call_id or "", limit, name=c.name) for c in calls]
                )
                new_messages.append(results)
                yield AgentResponseUpdate(role="tool", contents=results.contents, response_id=response_id)
                break
            results = Message("tool", await invoke_tool_calls(calls, tools))
            new_messages.append(results)
            unsent = [results]
            yield AgentResponseUpdate(role="tool", contents=results.contents, response_id=response_id)
        self.response = AgentResponse(
            messages=new_messages, response_id=response_id, conversation_id=conversation_id, usage=usage
        )

    async def _run_decided_calls(self, tools: dict[str, FunctionTool]) -> Message:
        """Run approved calls (and their batch's ungated calls); rejected ones get a rejection result."""
        pending = self._pending()
        approved: list[Content] = []
        rejected: list[Content] = []
        for request in pending.get("requests", []):
            (approved if self.decisions[request.id].approved else rejected).append(request.function_call)
        results = await invoke_tool_calls([*approved, *pending.get("auto", [])], tools)
        results += [Content.from_function_result(c.call_id or "", REJECTED_RESULT, name=c.name) for c in rejected]
        return Message("tool", results)


def _without_decisions(message: Message) -> Message:
    """Approval decisions steer the run; they are not conversation content."""
    if not message.contents_of("function_approval_response"):
        return message
    kept = [c for c in message.contents if c.type != "function_approval_response"]
    return Message(message.role, kept, author_name=message.author_name)
