"""Middleware (agent, chat, function; classes and decorated functions) and agents as tools, against the echo model.

Everything is counted from the outside: the echo model's recorded requests, tool executions, session state.
"""

from __future__ import annotations

import json
from typing import Any

import pytest

from agent_core import Agent, AgentSession, tool
from agent_core.exceptions import AgentInputError
from agent_core.middleware import (
    AgentContext,
    AgentMiddleware,
    CallNext,
    ChatContext,
    ChatMiddleware,
    FunctionInvocationContext,
    FunctionMiddleware,
    MiddlewareTermination,
    agent_middleware,
    chat_middleware,
    function_middleware,
)
from agent_core.openai import OpenAIResponsesClient
from agent_core.results import AgentResponse
from devtools.echo_model import EchoModel

from .helpers import seen_user_messages


def _lookup_tool(executions: list[str]) -> Any:
    @tool
    def lookup(query: str) -> str:
        """Look something up."""
        executions.append(query)
        return f"found {query}"

    return lookup


def _class_style(log: list[str], tag: str) -> list[Any]:
    class Agentish(AgentMiddleware):
        async def process(self, context: AgentContext, call_next: CallNext) -> None:
            log.append(f"{tag}:agent:before")
            await call_next()
            log.append(f"{tag}:agent:after")

    class Chatty(ChatMiddleware):
        async def process(self, context: ChatContext, call_next: CallNext) -> None:
            log.append(f"{tag}:chat:before")
            await call_next()
            log.append(f"{tag}:chat:after")

    class Functional(FunctionMiddleware):
        async def process(self, context: FunctionInvocationContext, call_next: CallNext) -> None:
            log.append(f"{tag}:function:before")
            await call_next()
            log.append(f"{tag}:function:after")

    return [Agentish(), Chatty(), Functional()]


def _decorated_style(log: list[str], tag: str) -> list[Any]:
    @agent_middleware
    async def on_run(context: Any, call_next: CallNext) -> None:
        log.append(f"{tag}:agent:before")
        await call_next()
        log.append(f"{tag}:agent:after")

    @chat_middleware
    async def on_chat(context: Any, call_next: CallNext) -> None:
        log.append(f"{tag}:chat:before")
        await call_next()
        log.append(f"{tag}:chat:after")

    @function_middleware
    async def on_function(context: Any, call_next: CallNext) -> None:
        log.append(f"{tag}:function:before")
        await call_next()
        log.append(f"{tag}:function:after")

    return [on_run, on_chat, on_function]


def _annotated_style(log: list[str], tag: str) -> list[Any]:
    """Plain async functions typed by their first parameter (no decorator)."""

    async def on_run(context: AgentContext, call_next: CallNext) -> None:
        log.append(f"{tag}:agent:before")
        await call_next()
        log.append(f"{tag}:agent:after")

    async def on_chat(context: ChatContext, call_next: CallNext) -> None:
        log.append(f"{tag}:chat:before")
        await call_next()
        log.append(f"{tag}:chat:after")

    async def on_function(context: FunctionInvocationContext, call_next: CallNext) -> None:
        log.append(f"{tag}:function:before")
        await call_next()
        log.append(f"{tag}:function:after")

    return [on_run, on_chat, on_function]


async def _run(agent: Agent, text: str, session: AgentSession | None, *, stream: bool) -> AgentResponse:
    if stream:
        return await agent.run(text, session=session, stream=True).get_final_response()
    return await agent.run(text, session=session)


STYLES = {"class": _class_style, "decorated": _decorated_style, "annotated": _annotated_style}


@pytest.mark.parametrize("stream", [False, True], ids=["run", "stream"])
@pytest.mark.parametrize("style", sorted(STYLES))
async def test_every_kind_in_order(client: OpenAIResponsesClient, model: EchoModel, style: str, stream: bool):
    """Agent-level middleware wraps run-level middleware; agent middleware wraps the run, chat middleware each
    model call, function middleware each tool call."""
    log: list[str] = []
    executions: list[str] = []
    make = STYLES[style]
    agent = Agent(client, tools=[_lookup_tool(executions)], middleware=make(log, "A"))
    session = agent.create_session()
    if stream:
        response = await agent.run(
            "lookup(socks)", session=session, stream=True, middleware=make(log, "R")
        ).get_final_response()
    else:
        response = await agent.run("lookup(socks)", session=session, middleware=make(log, "R"))
    assert response.text == "Tool results: lookup -> found socks"
    assert executions == ["socks"]
    chat = ["A:chat:before", "R:chat:before", "R:chat:after", "A:chat:after"]
    function = ["A:function:before", "R:function:before", "R:function:after", "A:function:after"]
    assert log == ["A:agent:before", "R:agent:before", *chat, *function, *chat, "R:agent:after", "A:agent:after"]
    assert len(model.responses_requests()) == 2


async def test_streamed_updates_pass_through_agent_and_chat_middleware_live(client: OpenAIResponsesClient):
    """With middleware around a streamed run, the caller gets the updates while the middleware is inside call_next."""
    inside: list[bool] = []
    state = {"inside": False}

    @agent_middleware
    async def around(context: AgentContext, call_next: CallNext) -> None:
        assert context.stream
        state["inside"] = True
        await call_next()
        state["inside"] = False

    agent = Agent(client, middleware=[around])
    async for _ in agent.run("hello there", stream=True):
        inside.append(state["inside"])
    assert inside
    assert all(inside)
    assert state["inside"] is False


async def test_agent_middleware_sees_and_changes_the_run(client: OpenAIResponsesClient, model: EchoModel):
    seen: dict[str, Any] = {}

    @agent_middleware
    async def rewrite(context: AgentContext, call_next: CallNext) -> None:
        seen["agent"] = context.agent.name
        seen["session"] = context.session
        seen["input"] = [m.text for m in context.messages]
        context.messages.append(context.messages[0].model_copy())
        context.options["temperature"] = 0.25
        await call_next()
        seen["result"] = context.result.text if context.result else None

    agent = Agent(client, name="helper", middleware=[rewrite])
    session = agent.create_session()
    response = await agent.run("ping", session=session)
    assert seen_user_messages(response.text) == ["ping", "ping"]
    assert model.responses_requests()[0]["temperature"] == 0.25
    assert seen == {"agent": "helper", "session": session, "input": ["ping"], "result": response.text}


@pytest.mark.parametrize("how", ["raise", "skip"])
async def test_agent_termination_short_circuits_with_a_result(
    client: OpenAIResponsesClient, model: EchoModel, how: str
):
    canned = AgentResponse(messages=[], response_id="canned")

    @agent_middleware
    async def gate(context: AgentContext, call_next: CallNext) -> None:
        if how == "raise":
            raise MiddlewareTermination("blocked", result=canned)
        context.result = canned

    agent = Agent(client, middleware=[gate])
    session = agent.create_session()
    session.state["kept"] = 1
    response = await agent.run("hello", session=session)
    assert response is canned
    assert model.responses_requests() == []
    assert session.state == {"kept": 1}


async def test_chat_middleware_rewrites_the_request_and_terminates(client: OpenAIResponsesClient, model: EchoModel):
    @chat_middleware
    async def shout(context: ChatContext, call_next: CallNext) -> None:
        context.request.instructions = "Be loud."
        context.options["max_output_tokens"] = 42
        await call_next()
        assert context.result is not None

    agent = Agent(client, instructions="Be quiet.", middleware=[shout])
    response = await agent.run("hi")
    assert "[instructions: Be loud.]" in response.text
    sent = model.responses_requests()[0]
    assert sent["max_output_tokens"] == 42

    @chat_middleware
    async def offline(context: ChatContext, call_next: CallNext) -> None:
        raise MiddlewareTermination(result="answered from cache")

    cached = await Agent(client, middleware=[offline]).run("anything")
    assert cached.text == "answered from cache"
    assert len(model.responses_requests()) == 1  # no second model call


async def test_function_middleware_rewrites_arguments_and_denies_calls(client: OpenAIResponsesClient):
    executions: list[str] = []

    @function_middleware
    async def policy(context: FunctionInvocationContext, call_next: CallNext) -> None:
        if context.arguments.get("query") == "secrets":
            context.result = "Denied by policy."
            return  # the tool does not run
        context.arguments = {**context.arguments, "query": str(context.arguments["query"]).upper()}
        await call_next()
        context.result = f"{context.result}!"

    agent = Agent(client, tools=[_lookup_tool(executions)], middleware=[policy])
    allowed = await agent.run("lookup(socks)")
    assert allowed.text == "Tool results: lookup -> found SOCKS!"
    denied = await agent.run("lookup(secrets)")
    assert denied.text == "Tool results: lookup -> Denied by policy."
    assert executions == ["SOCKS"]

    @function_middleware
    async def stop(context: FunctionInvocationContext, call_next: CallNext) -> None:
        raise MiddlewareTermination(result="not today")

    stopped = await Agent(client, tools=[_lookup_tool(executions)], middleware=[stop]).run("lookup(x)")
    assert stopped.text == "Tool results: lookup -> not today"
    assert executions == ["SOCKS"]


@pytest.mark.parametrize("kind", ["agent-before", "agent-after", "chat", "function"])
@pytest.mark.parametrize("stream", [False, True], ids=["run", "stream"])
async def test_failing_middleware_fails_the_run_and_leaves_the_session(
    client: OpenAIResponsesClient, kind: str, stream: bool
):
    class Broken(RuntimeError):
        pass

    armed = {"on": False}

    def fail(where: str) -> None:
        if armed["on"] and kind == where:
            raise Broken(where)

    @agent_middleware
    async def agent_mw(context: AgentContext, call_next: CallNext) -> None:
        fail("agent-before")
        await call_next()
        fail("agent-after")

    @chat_middleware
    async def chat_mw(context: ChatContext, call_next: CallNext) -> None:
        await call_next()
        fail("chat")

    @function_middleware
    async def function_mw(context: FunctionInvocationContext, call_next: CallNext) -> None:
        fail("function")
        await call_next()

    executions: list[str] = []
    agent = Agent(client, tools=[_lookup_tool(executions)], middleware=[agent_mw, chat_mw, function_mw])
    session = agent.create_session()
    await agent.run("first turn", session=session)
    before = json.dumps(session.to_dict(), sort_keys=True, default=str)
    armed["on"] = True
    with pytest.raises(Broken):
        await _run(agent, "lookup(x)", session, stream=stream)
    assert json.dumps(session.to_dict(), sort_keys=True, default=str) == before
    assert executions == (["x"] if kind == "agent-after" else [])  # the function middleware stops the tool
    armed["on"] = False
    again = await agent.run("second turn", session=session)
    assert seen_user_messages(again.text) == ["first turn", "second turn"]


def test_not_middleware_is_refused(client: OpenAIResponsesClient):
    async def unknown(context: Any, call_next: CallNext) -> None:
        await call_next()

    with pytest.raises(AgentInputError, match="is not middleware"):
        Agent(client, middleware=[unknown])
    with pytest.raises(AgentInputError, match="is not middleware"):
        Agent(client).run("x", middleware=[object()])  # type: ignore[list-item, unused-coroutine]


# --- agents as tools --------------------------------------------------------------------------------------


async def test_sub_agent_answers_through_the_parent_tool_loop(client: OpenAIResponsesClient, model: EchoModel):
    expert = Agent(client, name="expert", instructions="You are the expert.")
    ask = expert.as_tool(name="ask_expert", description="Ask the expert.", arg_name="question")
    assert ask.name == "ask_expert"
    assert ask.description == "Ask the expert."
    assert list(ask.parameters()["properties"]) == ["question"]
    parent = Agent(client, tools=[ask])
    response = await parent.run("ask_expert(what is 2+2)")
    reply = 'I have seen 1 user message(s): "what is 2+2" [instructions: You are the expert.]'
    assert response.text == f"Tool results: ask_expert -> {reply}"
    assert len(model.responses_requests()) == 3  # parent's call, the expert's, the parent's answer
    assert model.responses_requests()[1]["instructions"] == "You are the expert."


async def test_sub_agent_usage_counts_toward_the_parent(client: OpenAIResponsesClient, model: EchoModel):
    """The parent's usage is the parent's own model calls plus the expert's, exactly."""
    expert = Agent(client, name="expert")
    response = await Agent(client, tools=[expert.as_tool()]).run("expert(hello)")
    assert len(model.responses_requests()) == 3
    direct = await expert.run("hello")  # the call the tool made, on its own
    assert direct.usage.total_token_count > 0

    @tool(name="expert")
    def same_answer(task: str) -> str:
        return direct.text  # what the expert answered, without a model call

    plain = await Agent(client, tools=[same_answer]).run("expert(hello)")  # the parent's two calls alone
    assert response.text == plain.text
    assert response.usage == plain.usage + direct.usage


@pytest.mark.parametrize("propagate", [False, True], ids=["fresh", "propagated"])
async def test_sub_agent_session_modes(client: OpenAIResponsesClient, propagate: bool):
    """Fresh: each call is a new conversation. Propagated: the sub-agent keeps its own history inside the
    parent's session, saved with the parent's turn."""
    expert = Agent(client, name="expert")
    parent = Agent(client, tools=[expert.as_tool(propagate_session=propagate)])
    session: AgentSession = parent.create_session()
    await parent.run("expert(first)", session=session)
    second = await parent.run("expert(second)", session=session)
    reply = second.text.removeprefix("Tool results: expert -> ")
    expected = ["first", "second"] if propagate else ["second"]
    assert seen_user_messages(reply) == expected
    restored = AgentSession.from_dict(json.loads(json.dumps(session.to_dict())))
    third = await parent.run("expert(third)", session=restored)
    remembered = seen_user_messages(third.text.removeprefix("Tool results: expert -> "))
    assert remembered == (["first", "second", "third"] if propagate else ["third"])
    # the parent's own history holds only its own user messages, never the expert's
    parent_history = await parent.run("what did I say?", session=restored)
    assert seen_user_messages(parent_history.text) == [
        "expert(first)",
        "expert(second)",
        "expert(third)",
        "what did I say?",
    ]


async def test_agent_tool_with_approval(client: OpenAIResponsesClient, model: EchoModel):
    expert = Agent(client, name="expert")
    parent = Agent(client, tools=[expert.as_tool(approval_mode="always_require")])
    session = parent.create_session()
    waiting = await parent.run("expert(delete everything)", session=session)
    assert [r.name for r in waiting.approval_requests] == ["expert"]
    assert len(model.responses_requests()) == 1  # the expert did not run


async def test_served_agents_take_middleware_from_the_registry(client: OpenAIResponsesClient, model: EchoModel):
    """An AgentSpec's middleware is on every agent it builds (one per turn)."""
    from service.runtime import AgentSpec
    from service.settings import AppSettings

    calls: list[str] = []

    @function_middleware
    async def audit(context: FunctionInvocationContext, call_next: CallNext) -> None:
        calls.append(context.function.name)
        await call_next()

    spec = AgentSpec(name="audited", description="d", instructions="i", tools=[_lookup_tool([])], middleware=[audit])
    settings = AppSettings.from_env({})
    for _ in range(2):
        response = await spec.build(client, settings).run("lookup(a)")
        assert response.text == "Tool results: lookup -> found a"
    assert calls == ["lookup", "lookup"]
