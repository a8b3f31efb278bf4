"""Agent: runs a turn through context providers, the model and the tool loop, then records it in the session."""

from __future__ import annotations

import uuid
from collections.abc import AsyncGenerator, AsyncIterator, Callable, Coroutine, Mapping, Sequence
from contextlib import aclosing
from typing import Any, Literal, overload

from . import approvals, observability
from .agent_tool import AgentTool
from .compaction import (
    HISTORY_START_KEY,
    ClientSummarizer,
    CompactionStrategy,
    RunCompaction,
    check_strategy,
    is_context_length_exceeded,
)
from .exceptions import AgentCoreError, AgentInputError, ModelBadRequestError
from .items import to_input_items
from .messages import Content, Message, to_messages
from .middleware import (
    AgentContext,
    ChatContext,
    Middleware,
    MiddlewareSet,
    invoke_through,
    run_chain,
    stream_chain,
)
from .model_api import (
    FunctionCallEvent,
    InputItem,
    ModelClient,
    ModelRequest,
    ModelTurn,
    TextDelta,
    UsageDetails,
)
from .options import OPTION_KEYS, merge_options
from .options import REFUSED as REFUSED_OPTIONS
from .options import resolve as resolve_options
from .providers import ContextProvider, HistoryProvider, InMemoryHistoryProvider, SessionContext
from .results import AgentResponse, AgentResponseUpdate
from .sessions import AgentSession, ServiceSessionId, service_id_text, snapshot_state
from .structured import parse_value
from .tools import ApprovalMode, FunctionTool, ToolLike, ToolRun, as_tools, invoke_tool_calls

__all__ = ["DEFAULT_MAX_TOOL_ITERATIONS", "Agent", "AgentResponse", "AgentResponseUpdate", "ResponseStream"]

DEFAULT_MAX_TOOL_ITERATIONS = 10
"""Model calls that may return tool calls in one run; after that the model must answer without tools."""

ENCRYPTED_REASONING = "reasoning.encrypted_content"

TOOL_LIMIT_RESULT = "Error: tool call limit reached for this turn."

RunInput = str | Message | Sequence[str | Message] | None


class ResponseStream:
    """The async iterator `run(..., stream=True)` returns; the session is updated once it is fully consumed."""

    def __init__(self, run: _Run | _MiddlewareRun) -> None:
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
    """An LLM agent: a model client, instructions, tools and context providers. Stateless; state is in sessions.

    `Agent(client, instructions, ...)` takes Agent Framework 1.x's arguments; any other keyword raises
    `AgentInputError` naming it.
    """

    def __init__(
        self,
        client: ModelClient,
        instructions: str | None = None,
        *,
        id: str | None = None,
        name: str | None = None,
        description: str | None = None,
        tools: Sequence[ToolLike] | ToolLike | None = None,
        default_options: Mapping[str, Any] | None = None,
        context_providers: Sequence[ContextProvider] | ContextProvider | None = None,
        max_tool_iterations: int = DEFAULT_MAX_TOOL_ITERATIONS,
        middleware: Sequence[Middleware] | Middleware | None = None,
        additional_properties: Mapping[str, Any] | None = None,
        compaction_strategy: CompactionStrategy | None = None,
        **unsupported: Any,
    ) -> None:
        _refuse(unsupported, "Agent()")
        self.compaction_strategy = check_strategy(compaction_strategy)
        self.client = client
        self.id = id or str(uuid.uuid4())
        self._named_id = id is not None  # telemetry records only a given id (a generated one differs per instance)
        self.name = name
        self.instructions = instructions
        self.description = description
        self.tools: list[FunctionTool] = as_tools(tools)
        self.default_options: dict[str, Any] = dict(default_options or {})
        resolve_options(self.default_options)  # refuse a bad default now, not at the first run
        if isinstance(context_providers, ContextProvider):
            context_providers = [context_providers]
        self.context_providers: list[ContextProvider] = list(context_providers or [])
        self.max_tool_iterations = max_tool_iterations
        self.middleware = MiddlewareSet.of(middleware)  # agent_core/middleware.py: run, model-call and tool-call hooks
        self.additional_properties: dict[str, Any] = dict(additional_properties or {})

    def __repr__(self) -> str:
        return f"Agent(name={self.name!r})"

    async def __aenter__(self) -> Agent:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        """Nothing to release: the model client is shared and closed by its owner."""

    def create_session(self, *, session_id: str | None = None) -> AgentSession:
        """A new local session (history kept by providers, in memory by default)."""
        return AgentSession(session_id=session_id)

    def get_session(self, service_session_id: ServiceSessionId, *, session_id: str | None = None) -> AgentSession:
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
        stream: Literal[False] = False,
        session: AgentSession | None = None,
        tools: Sequence[ToolLike] | ToolLike | None = None,
        options: Mapping[str, Any] | None = None,
        function_invocation_kwargs: Mapping[str, Any] | None = None,
        compaction_strategy: CompactionStrategy | None = None,
        middleware: Sequence[Middleware] | Middleware | None = None,
        **kwargs: Any,
    ) -> Coroutine[Any, Any, AgentResponse]: ...

    @overload
    def run(
        self,
        messages: RunInput = None,
        *,
        stream: Literal[True],
        session: AgentSession | None = None,
        tools: Sequence[ToolLike] | ToolLike | None = None,
        options: Mapping[str, Any] | None = None,
        function_invocation_kwargs: Mapping[str, Any] | None = None,
        compaction_strategy: CompactionStrategy | None = None,
        middleware: Sequence[Middleware] | Middleware | None = None,
        **kwargs: Any,
    ) -> ResponseStream: ...

    def run(
        self,
        messages: RunInput = None,
        *,
        stream: bool = False,
        session: AgentSession | None = None,
        tools: Sequence[ToolLike] | ToolLike | None = None,
        options: Mapping[str, Any] | None = None,
        function_invocation_kwargs: Mapping[str, Any] | None = None,
        compaction_strategy: CompactionStrategy | None = None,
        middleware: Sequence[Middleware] | Middleware | None = None,
        **kwargs: Any,
    ) -> Coroutine[Any, Any, AgentResponse] | ResponseStream:
        """Run one turn. Await it for an `AgentResponse`, or pass `stream=True` and iterate `AgentResponseUpdate`s.

        `options` go over the agent's `default_options` (see agent_core/options.py for every key). `tools` are
        added for this run. Extra keyword arguments (e.g. `user_id=`) reach providers in `context.options` and
        tools in `FunctionInvocationContext.kwargs`, with `function_invocation_kwargs`; an extra keyword that is
        an option name acts as that option. `compaction_strategy` replaces the agent's for this run (see
        agent_core/compaction.py); `middleware` runs after the agent's (agent_core/middleware.py). Agent
        Framework's `tokenizer` and `client_kwargs` raise `AgentInputError`. On any failure the session is left
        exactly as it was.
        """
        _refuse({k: kwargs.pop(k) for k in list(kwargs) if k in _UNSUPPORTED_RUN_ARGS}, "run()")
        chain = self.middleware + MiddlewareSet.of(middleware)
        run_tools = as_tools(tools)
        tool_kwargs = {**kwargs, **(function_invocation_kwargs or {})}
        strategy = check_strategy(compaction_strategy)

        def make(messages: RunInput, session: AgentSession | None, options: dict[str, Any]) -> _Run:
            return _Run(
                self,
                messages,
                session,
                options=options,
                provider_kwargs=kwargs,
                run_tools=run_tools,
                tool_kwargs=tool_kwargs,
                middleware=chain,
                compaction_strategy=strategy,
            )

        merged = merge_options(self.default_options, {**(options or {}), **_option_kwargs(kwargs)})
        run: _Run | _MiddlewareRun
        if chain.agent:
            context = AgentContext(self, to_messages(messages), session, dict(merged), stream, kwargs=dict(kwargs))
            run = _MiddlewareRun(chain, context, make)
        else:
            run = make(messages, session, merged)
        if stream:
            return ResponseStream(run)
        return run.complete()

    def as_tool(
        self,
        *,
        name: str | None = None,
        description: str | None = None,
        arg_name: str = "task",
        arg_description: str | None = None,
        approval_mode: ApprovalMode = "never_require",
        propagate_session: bool = False,
    ) -> FunctionTool:
        """This agent as another agent's tool (agent_core/agent_tool.py): the model passes `arg_name` and gets
        the agent's reply; its token usage counts toward the calling run. `propagate_session=False` gives each
        call a fresh session; `True` keeps the sub-agent's own conversation in the caller's session."""
        return AgentTool(
            self,
            name=name,
            description=description,
            arg_name=arg_name,
            arg_description=arg_description,
            approval_mode=approval_mode,
            propagate_session=propagate_session,
        )


_UNSUPPORTED_RUN_ARGS = frozenset({"tokenizer", "client_kwargs"})


class _MiddlewareRun:
    """A run through agent middleware. The chain wraps the run (`call_next()` builds and executes it from the
    context's messages, session and options, which middleware may have changed); the session is updated only
    once the whole chain has succeeded, so a middleware failing after `call_next()` leaves it as it was."""

    def __init__(
        self,
        chain: MiddlewareSet,
        context: AgentContext,
        make: Callable[[RunInput, AgentSession | None, dict[str, Any]], _Run],
    ) -> None:
        self.chain = chain
        self.context = context
        self.make = make
        self.run: _Run | None = None
        self.response: AgentResponse | None = None

    def _inner(self) -> AsyncIterator[AgentResponseUpdate]:
        context = self.context
        self.run = self.make(context.messages, context.session, context.options)
        self.run.defer_commit = True
        return self.run.execute(stream=context.stream)

    async def _done(self) -> None:
        assert self.run is not None
        self.context.result = self.run.response

    def _finish(self) -> AgentResponse:
        result = self.context.result
        if result is None:
            raise AgentCoreError("agent middleware returned without calling call_next() or setting context.result")
        if self.run is not None and self.run.response is not None:
            self.run.commit()
        self.response = result
        return result

    async def complete(self) -> AgentResponse:
        async def final() -> None:
            async for _ in self._inner():
                pass
            await self._done()

        await run_chain(self.chain.agent, self.context, final)
        return self._finish()

    async def execute(self, *, stream: bool) -> AsyncGenerator[AgentResponseUpdate, None]:
        async for update in stream_chain(self.chain.agent, self.context, self._inner, on_done=self._done):
            yield update
        self._finish()


def _refuse(arguments: Mapping[str, Any], where: str) -> None:
    """Raise for arguments agent_core has no equivalent of, unless they are empty (None, [], {})."""
    given = sorted(k for k, v in arguments.items() if v is not None and v != [] and v != {})
    if given:
        raise AgentInputError(f"{where} does not support {', '.join(repr(k) for k in given)}")


def _option_kwargs(kwargs: dict[str, Any]) -> dict[str, Any]:
    """Extra run keywords that are option names (`temperature=0.2`): they act as options (and stay in kwargs)."""
    return {k: v for k, v in kwargs.items() if k in OPTION_KEYS or k in REFUSED_OPTIONS}


class _Transcript:
    """The run's new messages, and the input items of everything the model sees, each message converted once.

    Local history is sent whole on every model call; a service-side conversation (or response chain) gets only
    the items it has not seen: the first call sends the context and input, later calls the tool results.
    """

    def __init__(self, context_messages: list[Message], *, service_mode: bool) -> None:
        self.messages: list[Message] = []  # this run's messages after the input
        self.items: list[InputItem] = to_input_items(context_messages)
        self.service_mode = service_mode
        self._sent = 0  # items the service has (service mode)

    def add(self, message: Message, *, from_model: bool = False) -> None:
        self.messages.append(message)
        self.items.extend(to_input_items([message]))
        if from_model:
            self._sent = len(self.items)  # the service produced it, so it has it

    def next_input(self) -> list[InputItem]:
        """The items to send with the next model call."""
        if not self.service_mode:
            return list(self.items)
        unsent, self._sent = self.items[self._sent :], len(self.items)
        return unsent


class _Run:
    """One turn of one agent: validation, providers, the model/tool rounds, then the session update."""

    def __init__(
        self,
        agent: Agent,
        messages: RunInput,
        session: AgentSession | None,
        *,
        options: dict[str, Any],
        provider_kwargs: dict[str, Any],
        run_tools: list[FunctionTool],
        tool_kwargs: dict[str, Any],
        middleware: MiddlewareSet | None = None,
        compaction_strategy: CompactionStrategy | None = None,
    ):
        self.agent = agent
        self.session = session
        self.middleware = middleware or MiddlewareSet()
        self.defer_commit = False  # agent middleware commits once its chain has succeeded
        self.operation = observability.NO_OP  # the run's `invoke_agent` span while instrumentation is on
        self.options = {**options, **provider_kwargs}  # what providers see in context.options
        resolved = resolve_options(options)
        self.run_options = resolved
        self.run_tools = [*resolved.tools, *run_tools]
        self.tool_kwargs = tool_kwargs
        self.response: AgentResponse | None = None
        self.decisions, self.inputs = approvals.Decisions.split(to_messages(messages))
        self.service_id = resolved.conversation_id or (service_id_text(session.service_session_id) if session else None)
        self.service_mode = self.service_id is not None or resolved.store is True
        if compaction_strategy is not None and self.service_mode:
            raise AgentInputError("compaction_strategy compacts local history; this run's is kept by the service")
        # The service compacts what it keeps; local history is compacted by the run's (or the agent's) strategy.
        self.compaction_strategy = None if self.service_mode else compaction_strategy or agent.compaction_strategy
        self.compaction: RunCompaction | None = None
        self.model_args = resolved.model_args
        if not self.service_mode:
            # Local history: ask for reasoning in a form that can be sent back (the service keeps nothing).
            include = list(self.model_args.get("include") or [])
            self.model_args = {**self.model_args, "include": [*include, ENCRYPTED_REASONING]}
            if ENCRYPTED_REASONING in include:
                self.model_args["include"] = include
        self.final_args = {**self.model_args, "tool_choice": "none"}  # the last allowed call must answer in text
        # Providers read and write this copy; it becomes session.state only when the run succeeds.
        self.work_state: dict[str, Any] = snapshot_state(session.state) if session else {}
        # Filled in as the run goes: what the model is offered, and what came back.
        self.tools: dict[str, FunctionTool] = {}
        self.instructions: str | None = None
        self.auto_calls: list[Content] = []  # ungated calls of a batch that waits for approval
        self.turn: ModelTurn | None = None
        self.usage = UsageDetails()
        self.response_id: str | None = None
        is_conversation = bool(self.service_id and self.service_id.startswith("conv_"))
        self.conversation_id = self.service_id if is_conversation else None
        self.previous_id = None if is_conversation else self.service_id

    async def complete(self) -> AgentResponse:
        async for _ in self.execute(stream=False):
            pass
        assert self.response is not None
        return self.response

    async def execute(self, *, stream: bool) -> AsyncGenerator[AgentResponseUpdate, None]:
        """The turn as a stream of updates. Providers work on a copy of the session state that replaces
        the session's only after every step succeeded, so a failed or abandoned run changes nothing."""
        session = self.session
        self.decisions.check(self.work_state)
        self.operation = self._agent_operation()
        with self.operation:
            async for update in self._execute(session, stream=stream):
                yield update
            self.operation.set_response(
                response_id=self.response_id,
                input_tokens=self.usage.input_token_count,
                output_tokens=self.usage.output_token_count,
            )
        if not self.defer_commit:
            self.commit()

    def _agent_operation(self) -> observability.Operation:
        agent = self.agent
        if not observability.OBSERVABILITY_SETTINGS.enable_instrumentation:
            return observability.NO_OP
        client = agent.client
        operation = observability.agent_operation(
            agent_name=agent.name,
            agent_id=agent.id if agent._named_id else None,
            description=agent.description,
            conversation_id=self.session.session_id if self.session else None,
            model=getattr(client, "model", None),
            provider_name=getattr(client, "otel_provider_name", None),
        )
        operation.capture_input(self.inputs, self.agent.instructions)
        return operation

    def commit(self) -> None:
        """The run succeeded: its working state becomes the session's."""
        session, response = self.session, self.response
        assert response is not None
        if session is not None:
            session.state = self.work_state
            if self.service_mode:
                session.service_session_id = response.conversation_id or response.response_id

    async def _execute(
        self, session: AgentSession | None, *, stream: bool
    ) -> AsyncGenerator[AgentResponseUpdate, None]:
        context = SessionContext(
            session_id=session.session_id if session else None,
            service_session_id=self.service_id,
            input_messages=self.inputs,
            options=self.options,
        )
        providers = self._providers()
        for provider in providers:
            await provider.before_run(agent=self.agent, session=session, context=context, state=self._state(provider))
        transcript = self._prepare(context)
        async for update in self._rounds(transcript, stream=stream):
            yield update
        self.response = self._response(transcript.messages)
        context.response = self.response
        approvals.record(self.work_state, self.response.approval_requests, self.auto_calls)
        for provider in reversed(providers):
            await provider.after_run(agent=self.agent, session=session, context=context, state=self._state(provider))
        self.operation.capture_output(self.response.messages)

    def _response(self, messages: list[Message]) -> AgentResponse:
        """The run's result; with a `response_format`, its `value` is the validated reply (or the run fails here,
        before any provider or the session sees it)."""
        turn = self.turn
        response = AgentResponse(
            messages=messages,
            response_id=self.response_id,
            conversation_id=self.conversation_id,
            agent_id=self.agent.id,
            created_at=turn.created_at if turn else None,
            finish_reason=turn.finish_reason if turn else None,
            usage=self.usage,
        )
        response_format = self.run_options.response_format
        if response_format is not None and not response.approval_requests:
            response.value = parse_value(response_format, messages[-1].text if messages else "")
        return response

    def _providers(self) -> list[ContextProvider]:
        providers = self.agent.context_providers
        if self.service_mode:
            # The service holds the history: local history is neither loaded nor sent, nor stored.
            return [p for p in providers if not isinstance(p, HistoryProvider)]
        if self.session is not None and not any(isinstance(p, HistoryProvider) and p.load_messages for p in providers):
            return [InMemoryHistoryProvider(), *providers]
        return list(providers)

    def _state(self, provider: ContextProvider) -> dict[str, Any]:
        state: dict[str, Any] = self.work_state.setdefault(provider.source_id, {})
        return state

    def _prepare(self, context: SessionContext) -> _Transcript:
        """Fix what the model is offered for the whole run: the tools and instructions (agent's, then providers')."""
        self.tools = {t.name: t for t in [*self.run_tools, *self.agent.tools]}
        for extra in context.run_tools():
            self.tools.setdefault(extra.name, extra)
        texts = [self.agent.instructions or "", *self.run_options.instructions, *context.instructions]
        self.instructions = "\n".join(t for t in texts if t) or None  # one per line, as Agent Framework joins them
        if self.compaction_strategy is None:
            return _Transcript(context.get_messages(include_input=True), service_mode=self.service_mode)
        history = {p.source_id for p in self._providers() if isinstance(p, HistoryProvider) and p.load_messages}
        self.compaction = RunCompaction(
            self.compaction_strategy,
            self.work_state,
            history=context.get_messages(sources=history),
            history_start=context.metadata.get(HISTORY_START_KEY, 0),
            context_messages=context.get_messages(exclude_sources=history),
            inputs=self.inputs,
            instructions=self.instructions,
            tools=list(self.tools.values()),
            summarizer=ClientSummarizer(self.agent.client),
        )
        return _Transcript([], service_mode=False)  # the compaction builds each call's input

    async def _rounds(self, transcript: _Transcript, *, stream: bool) -> AsyncGenerator[AgentResponseUpdate, None]:
        """Decided approvals first, then model calls and tool rounds until the model answers (or asks for approval)."""
        if self.decisions:
            results = await self.decisions.run_decided_calls(self.work_state, self.tools, self._tool_run())
            transcript.add(results)
            yield AgentResponseUpdate(role="tool", contents=results.contents)
        limit = self.agent.max_tool_iterations
        for iteration in range(limit + 1):
            last = iteration == limit
            async for update in self._model_round(transcript, last=last, stream=stream):
                yield update
            assert self.turn is not None
            message = self.turn.message
            calls = message.contents_of("function_call")
            if not stream:
                yield AgentResponseUpdate(contents=message.contents, response_id=self.response_id)
            message, requests = self._gate(message, calls)
            if requests:
                yield AgentResponseUpdate(contents=requests, response_id=self.response_id)
            if message.contents:
                transcript.add(message, from_model=True)
            if not calls or requests:
                return
            if last:
                # The model called tools although told not to: answer every call so history stays valid, and stop.
                results = Message(
                    "tool",
                    [Content.from_function_result(c.call_id or "", TOOL_LIMIT_RESULT, name=c.name) for c in calls],
                )
            else:
                results = Message("tool", await invoke_tool_calls(calls, self.tools, self._tool_run()))
            transcript.add(results)
            yield AgentResponseUpdate(role="tool", contents=results.contents, response_id=self.response_id)
            if last:
                return

    async def _model_round(
        self, transcript: _Transcript, *, last: bool, stream: bool
    ) -> AsyncGenerator[AgentResponseUpdate, None]:
        """The next model call. With compaction its input is compacted first; when the model still answers
        `context_length_exceeded` (before anything streamed), it is compacted harder and sent once more."""
        compaction = self.compaction
        if compaction is None:
            async for update in self._call_model(transcript.next_input(), last=last, stream=stream):
                yield update
            return
        streamed = False
        try:
            items = await compaction.input_items(transcript.messages)
            async for update in self._call_model(items, last=last, stream=stream):
                streamed = True
                yield update
        except ModelBadRequestError as error:
            if streamed or not is_context_length_exceeded(error):
                raise
            items = await compaction.input_items(transcript.messages, harder=True)
            async for update in self._call_model(items, last=last, stream=stream):
                yield update
        assert self.turn is not None
        compaction.record(self.turn.usage)

    async def _call_model(
        self, input_items: list[InputItem], *, last: bool, stream: bool
    ) -> AsyncGenerator[AgentResponseUpdate, None]:
        """One model call; a streamed one yields text and tool calls as they arrive. The turn ends up in `self.turn`."""
        request = ModelRequest(
            input=input_items,
            instructions=self.instructions,
            tools=list(self.tools.values()),
            conversation_id=self.conversation_id,
            previous_response_id=self.previous_id,
            store=self.service_mode,
            options=self.final_args if last else self.model_args,
        )
        chat = self._chat_operation(request)
        with chat:
            source = self._chat_through_middleware if self.middleware.chat else self._model_events
            async for update in source(request, stream=stream):
                yield update
            turn = self.turn
            assert turn is not None
            chat.set_response(
                response_id=turn.response_id,
                conversation_id=None,
                input_tokens=turn.usage.input_token_count,
                output_tokens=turn.usage.output_token_count,
                finish_reasons=[turn.finish_reason] if turn.finish_reason else None,
            )
            chat.capture_output([turn.message])
        self.usage = self.usage + turn.usage
        self.response_id = turn.response_id
        self.conversation_id = turn.conversation_id or self.conversation_id
        if self.service_mode:
            self.previous_id = None if self.conversation_id else self.response_id

    def _chat_operation(self, request: ModelRequest) -> observability.Operation:
        if not self.operation.recording:
            return observability.NO_OP
        client = self.agent.client
        address, port = getattr(client, "otel_server", (None, None))
        chat = observability.chat_operation(
            model=getattr(client, "model", None),
            provider_name=getattr(client, "otel_provider_name", None),
            conversation_id=self.session.session_id if self.session else None,
            agent_name=self.agent.name,
            server_address=address,
            server_port=port,
            options=request.options,
            parent=self.operation,
        )
        chat.capture_input(self.inputs, request.instructions)
        return chat

    async def _chat_through_middleware(
        self, request: ModelRequest, *, stream: bool
    ) -> AsyncGenerator[AgentResponseUpdate, None]:
        """The model call inside the chat middleware chain; a middleware may answer instead (a str or a ModelTurn)."""
        context = ChatContext(self.agent.client, request, stream=stream, session=self.session)
        self.turn = None

        def inner() -> AsyncIterator[AgentResponseUpdate]:
            return self._model_events(context.request, stream=stream)

        async def done() -> None:
            context.result = self.turn

        if stream:
            async for update in stream_chain(self.middleware.chat, context, inner, on_done=done):
                yield update
        else:

            async def final() -> None:
                async for _ in inner():
                    pass
                await done()

            await run_chain(self.middleware.chat, context, final)
        result: Any = context.result
        if isinstance(result, str):
            result = ModelTurn(Message("assistant", [Content.from_text(result)]), None, None, UsageDetails())
        if not isinstance(result, ModelTurn):
            raise AgentCoreError("chat middleware returned without calling call_next() or setting a ModelTurn or str")
        if stream and result is not self.turn:
            yield AgentResponseUpdate(contents=result.message.contents)  # the stream shows the answer given instead
        self.turn = result

    async def _model_events(self, request: ModelRequest, *, stream: bool) -> AsyncGenerator[AgentResponseUpdate, None]:
        """The model call itself; a streamed one yields text and tool calls as they arrive. Sets `self.turn`."""
        client = self.agent.client
        turn: ModelTurn | None = None
        if stream:
            async with aclosing(client.stream_response(request)) as events:
                async for event in events:
                    if isinstance(event, TextDelta):
                        yield AgentResponseUpdate(
                            contents=[Content.from_text(event.text)], response_id=self.response_id
                        )
                    elif isinstance(event, FunctionCallEvent):
                        yield AgentResponseUpdate(contents=[event.call], response_id=self.response_id)
                    else:
                        turn = event
        else:
            turn = await client.get_response(request)
        assert turn is not None
        if self.agent.name and turn.message.role == "assistant":
            turn.message = turn.message.model_copy(update={"author_name": self.agent.name})
        self.turn = turn

    def _tool_run(self) -> ToolRun:
        """What tools with a FunctionInvocationContext parameter see: the session (its state is the run's working
        copy, kept if the run succeeds) and the run's keyword arguments."""
        session = self.session
        view = AgentSession(session.session_id, session.service_session_id, self.work_state) if session else None
        return ToolRun(
            session=view,
            kwargs=self.tool_kwargs,
            middleware=self.middleware.function,
            through=invoke_through,
            operation=self.operation if self.operation.recording else None,
            conversation_id=self.session.session_id if self.session else None,
            add_usage=self._add_usage,
        )

    def _add_usage(self, usage: UsageDetails) -> None:
        """Tokens spent for this run by its tools (agents as tools)."""
        self.usage = self.usage + usage

    def _gate(self, message: Message, calls: list[Content]) -> tuple[Message, list[Content]]:
        """Calls that need approval become approval requests on the message; the batch's others wait with them."""
        gated = approvals.gated_calls(calls, self.tools)
        if not gated:
            return message, []
        requests = [Content.from_function_approval_request(c) for c in gated]
        self.auto_calls = [c for c in calls if c not in gated]
        return Message("assistant", [*message.contents, *requests]), requests
