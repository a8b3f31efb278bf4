"""Agent Framework 1.x's surface on agent_core: options applied or refused by name, structured output, content
(images, files, reasoning), tools that know their run, MAF-written sessions. Asserted from the echo model's side."""

from __future__ import annotations

import json
from typing import Any

import pytest
from pydantic import BaseModel, field_validator

from agent_core import (
    Agent,
    AgentInputError,
    AgentSession,
    Content,
    ContextProvider,
    FunctionInvocationContext,
    Message,
    SessionContext,
    SessionSerializationError,
    StructuredOutputError,
    register_state_type,
    tool,
)
from agent_core.openai import OpenAIChatClient, OpenAIResponsesClient
from devtools.echo_model import EchoModel

from .helpers import seen_user_messages


class Weather(BaseModel):
    city: str
    degrees: int | None = None


class KnownCityWeather(Weather):
    """A check the JSON schema cannot carry: the echo model's schema-valid reply fails it."""

    @field_validator("city")
    @classmethod
    def known_city(cls, city: str) -> str:
        if city not in ("Oslo", "Bergen"):
            raise ValueError(f"unknown city {city!r}")
        return city


@pytest.mark.parametrize(
    ("options", "sent"),
    [
        ({"max_tokens": 50}, {"max_output_tokens": 50}),
        ({"allow_multiple_tool_calls": False}, {"parallel_tool_calls": False}),
        (
            {"tool_choice": {"mode": "required", "required_function_name": "lookup"}},
            {"tool_choice": {"type": "function", "name": "lookup"}},
        ),
        ({"tool_choice": {"mode": "none"}}, {"tool_choice": "none"}),
        ({"verbosity": "low"}, {"text": {"verbosity": "low"}}),
        ({"temperature": 0.25, "top_p": 0.5, "user": "u-1"}, {"temperature": 0.25, "top_p": 0.5, "user": "u-1"}),
        (
            {"include": ["message.output_text.logprobs"]},
            {"include": ["message.output_text.logprobs", "reasoning.encrypted_content"]},
        ),
    ],
    ids=[
        "max_tokens",
        "allow_multiple_tool_calls",
        "tool_choice-function",
        "tool_choice-mode",
        "verbosity",
        "passthrough",
        "include",
    ],
)
async def test_options_reach_the_model_under_their_responses_names(
    client: OpenAIResponsesClient, model: EchoModel, options: dict[str, Any], sent: dict[str, Any]
):
    @tool
    def lookup(sku: str) -> str:
        return sku

    await client.as_agent(tools=[lookup]).run("hi", options=options)
    body = model.responses_requests()[-1]
    assert {k: body.get(k) for k in sent} == sent
    assert not set(options) - set(sent) & set(body)  # the Agent Framework name itself is not sent


@pytest.mark.parametrize(
    ("options", "error"),
    [
        ({"stop": ["\n"]}, "option 'stop' is not supported: the Responses API has no equivalent"),
        ({"seed": 1}, "option 'seed' is not supported"),
        ({"frequency_penalty": 0.1}, "option 'frequency_penalty' is not supported"),
        ({"background": True}, "option 'background' is not supported"),
        ({"temprature": 0.2}, "unknown option 'temprature'"),
        ({"response_format": "json"}, "response_format"),
        ({"conversation_id": 7}, "conversation_id"),
    ],
    ids=["stop", "seed", "frequency_penalty", "background", "typo", "bad-response-format", "bad-conversation-id"],
)
async def test_options_that_cannot_take_effect_raise_before_any_model_call(
    client: OpenAIResponsesClient, model: EchoModel, options: dict[str, Any], error: str
):
    agent = client.as_agent()
    session = agent.create_session()
    with pytest.raises(AgentInputError, match=error):
        await agent.run("hi", session=session, options=options)
    assert model.responses_requests() == []
    assert session.state == {}


@pytest.mark.parametrize(
    ("call", "error"),
    [
        (lambda c: Agent(c, middleware=[object()]), "is not middleware"),  # type: ignore[list-item]
        (lambda c: Agent(c, default_options={"seed": 3}), "option 'seed'"),
        (lambda c: c.as_agent(tokenizer=object()), "tokenizer"),
        (lambda c: Agent(c).run("hi", middleware=[object()]), "is not middleware"),  # type: ignore[list-item]
        (lambda c: Agent(c).run("hi", client_kwargs={"x": 1}), "client_kwargs"),
    ],
    ids=[
        "agent-middleware",
        "agent-default-options",
        "as_agent-tokenizer",
        "run-middleware",
        "run-client_kwargs",
    ],
)
def test_agent_and_run_keywords_without_an_equivalent_raise(client: OpenAIResponsesClient, call: Any, error: str):
    with pytest.raises(AgentInputError, match=error):
        call(client)


async def test_default_options_merge_under_run_options_and_instructions_add_up(
    client: OpenAIResponsesClient, model: EchoModel
):
    agent = Agent(
        client,
        "Base.",
        name="Merger",
        default_options={"temperature": 0.1, "max_tokens": 10, "instructions": "From defaults."},
    )
    await agent.run("hi", options={"temperature": 0.9, "instructions": "From the run."})
    body = model.responses_requests()[-1]
    assert (body["temperature"], body["max_output_tokens"]) == (0.9, 10)
    assert body["instructions"] == "Base.\nFrom defaults.\nFrom the run."


async def test_run_tools_are_offered_and_called_for_that_run_only(client: OpenAIResponsesClient, model: EchoModel):
    calls: list[str] = []

    def stock(sku: str) -> str:
        """Units in stock."""
        calls.append(sku)
        return f"{sku}: 4 units"

    agent = client.as_agent()
    reply = await agent.run("stock(B-7)", tools=[stock])
    assert reply.text == "Tool results: stock -> B-7: 4 units"
    assert calls == ["B-7"]
    await agent.run("stock(B-8)")
    assert "tools" not in model.responses_requests()[-1]
    assert calls == ["B-7"]


async def test_structured_output_sends_a_strict_schema(client: OpenAIResponsesClient, model: EchoModel):
    agent = client.as_agent()
    reply = await agent.run("weather in Oslo", options={"response_format": Weather})
    assert reply.value == Weather(city='I have seen 1 user message(s): "weather in Oslo"', degrees=0)
    text = model.responses_requests()[-1]["text"]
    assert text["format"]["type"] == "json_schema"
    assert text["format"]["name"] == "Weather"
    assert text["format"]["strict"] is True
    schema = text["format"]["schema"]
    assert schema["additionalProperties"] is False
    assert schema["required"] == ["city", "degrees"]
    assert "default" not in schema["properties"]["degrees"]


@pytest.mark.parametrize("stream", [False, True], ids=["await", "stream"])
async def test_a_reply_that_does_not_validate_raises_and_leaves_the_session(
    client: OpenAIResponsesClient, stream: bool
):
    agent = client.as_agent()
    session = agent.create_session()
    await agent.run("first", session=session)
    before = json.dumps(session.to_dict())

    async def again() -> Any:
        if stream:
            return await agent.run("again", session=session, stream=True, options=options).get_final_response()
        return await agent.run("again", session=session, options=options)

    options = {"response_format": KnownCityWeather}
    with pytest.raises(StructuredOutputError, match="does not match the response format") as caught:
        await again()
    assert json.loads(caught.value.text)["city"].startswith("I have seen 2 user message(s)")
    assert json.dumps(session.to_dict()) == before


def test_response_format_schema_dict_and_value_parsing():
    from agent_core.structured import parse_value, text_format

    schema: dict[str, Any] = {
        "title": "Answer",
        "type": "object",
        "properties": {"ok": {"type": "boolean", "default": True}},
    }
    sent = text_format(schema)
    assert (sent["name"], sent["schema"]["required"], sent["schema"]["additionalProperties"]) == (
        "Answer",
        ["ok"],
        False,
    )
    assert "default" not in sent["schema"]["properties"]["ok"]
    assert schema["properties"]["ok"]["default"] is True  # the caller's schema is not changed
    assert parse_value(schema, '{"ok": false}') == {"ok": False}
    assert parse_value(Weather, '{"city": "Oslo", "degrees": 3}') == Weather(city="Oslo", degrees=3)
    with pytest.raises(StructuredOutputError):
        parse_value(Weather, '{"degrees": 3}')
    with pytest.raises(StructuredOutputError):
        parse_value({"type": "object", "required": ["ok"], "properties": {}}, "{}")


@pytest.mark.parametrize(
    ("content", "part"),
    [
        (Content.from_uri("https://example.com/cat.png", media_type="image/png"),
         {"type": "input_image", "image_url": "https://example.com/cat.png", "detail": "auto"}),
        (Content.from_data(b"\x89PNG", "image/png"),
         {"type": "input_image", "image_url": "data:image/png;base64,iVBORw==", "detail": "auto"}),
        (Content.from_uri("data:image/jpeg;base64,/9j/"),
         {"type": "input_image", "image_url": "data:image/jpeg;base64,/9j/", "detail": "auto"}),
        (Content.from_data(b"%PDF-1.7", "application/pdf", name="spec.pdf"),
         {"type": "input_file", "file_data": "data:application/pdf;base64,JVBERi0xLjc=", "filename": "spec.pdf"}),
        (Content.from_uri("https://example.com/spec.pdf", media_type="application/pdf"),
         {"type": "input_file", "file_url": "https://example.com/spec.pdf"}),
    ],
    ids=["image-url", "image-bytes", "image-data-uri", "file-bytes", "file-url"],
)  # fmt: skip
async def test_images_and_files_are_sent_as_input_parts(
    client: OpenAIResponsesClient, model: EchoModel, content: Content, part: dict[str, Any]
):
    agent = client.as_agent()
    session = agent.create_session()
    await agent.run(Message("user", ["What is this?", content]), session=session)
    [item] = model.responses_requests()[-1]["input"]
    assert item["content"] == [{"type": "input_text", "text": "What is this?"}, part]
    restored = AgentSession.from_dict(json.loads(json.dumps(session.to_dict())))
    assert restored.state["in_memory"]["messages"][0].contents[1] == content


async def test_reasoning_round_trips_with_local_history(client: OpenAIResponsesClient, model: EchoModel):
    """With local history the run asks for encrypted reasoning and sends reasoning items back, before the output
    they led to (the echo model verifies and counts them); service-kept history asks for nothing extra."""
    agent = client.as_agent()
    session = agent.create_session()
    options = {"reasoning": {"effort": "low", "summary": "auto"}}
    await agent.run("q1", session=session, options=options)
    reply = await agent.run("q2", session=session, options=options)
    assert reply.text.endswith("[reasoning carried: 1]")  # the model made that content and verified it
    body = model.responses_requests()[-1]
    assert body["include"] == ["reasoning.encrypted_content"]
    assert [i["type"] for i in body["input"]] == ["message", "reasoning", "message", "message"]
    reasoning = body["input"][1]
    assert sorted(reasoning) == ["encrypted_content", "id", "summary", "type"]
    assert reasoning["summary"] == [
        {"type": "summary_text", "text": "The user has sent 1 message(s); answering the last."}
    ]
    service = await agent.create_service_session()
    await agent.run("q3", session=service)
    assert "include" not in model.responses_requests()[-1]


async def test_tool_with_invocation_context_gets_session_state_and_kwargs(
    client: OpenAIResponsesClient, model: EchoModel
):
    @tool
    def remember(note: str, ctx: FunctionInvocationContext) -> str:
        """Keep a note in the session."""
        assert ctx.session is not None
        ctx.session.state.setdefault("notes", []).append(note)
        return f"kept {note} for {ctx.kwargs['user_id']} ({ctx.kwargs['tenant']})"

    assert list(remember.parameters()["properties"]) == ["note"]  # the context is not part of the schema
    agent = client.as_agent(tools=[remember])
    session = agent.create_session()
    reply = await agent.run(
        "remember(milk)", session=session, user_id="u-1", function_invocation_kwargs={"tenant": "t-9"}
    )
    assert reply.text == "Tool results: remember -> kept milk for u-1 (t-9)"
    assert session.state["notes"] == ["milk"]
    sent_tool = model.responses_requests()[0]["tools"][0]
    assert list(sent_tool["parameters"]["properties"]) == ["note"]


async def test_tool_state_changes_are_dropped_when_the_run_fails(client: OpenAIResponsesClient, model: EchoModel):
    @tool
    def remember(note: str, ctx: FunctionInvocationContext) -> str:
        assert ctx.session is not None
        ctx.session.state["note"] = note
        return "ok"

    agent = client.as_agent(tools=[remember])
    session = agent.create_session()
    with pytest.raises(StructuredOutputError):
        await agent.run("remember(milk)", session=session, options={"response_format": KnownCityWeather})
    assert session.state == {}


async def test_max_invocations_and_exceptions_limit_a_tool_over_its_lifetime(client: OpenAIResponsesClient):
    runs: list[str] = []

    @tool(max_invocations=2)
    def ping(n: str) -> str:
        runs.append(n)
        return f"pong {n}"

    @tool(max_invocation_exceptions=1)
    def flaky(n: str) -> str:
        runs.append(f"flaky {n}")
        raise RuntimeError("down")

    agent = client.as_agent(tools=[ping, flaky])
    reply = await agent.run("ping(1) ping(2) ping(3)")
    assert runs == ["1", "2"]
    assert "ping -> Error: ping has reached its maximum of 2 invocations." in reply.text
    assert (ping.invocation_count, ping.invocation_exception_count) == (2, 0)
    await agent.run("flaky(a)")
    reply = await agent.run("flaky(b)")
    assert runs[2:] == ["flaky a"]
    assert reply.text == "Tool results: flaky -> Error: flaky failed 1 times and is disabled."
    assert (flaky.invocation_count, flaky.invocation_exception_count) == (1, 1)


async def test_explicit_schema(client: OpenAIResponsesClient, model: EchoModel):
    class Query(BaseModel):
        q: str
        limit: int = 3

    schema = {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}

    @tool(schema=schema)
    def forecast(**kwargs: Any) -> str:
        return f"forecast {kwargs}"

    @tool(schema=Query)
    def search(q: str, limit: int) -> str:
        return f"search {q} {limit}"

    assert forecast.parameters() == schema
    assert search.parameters()["required"] == ["q"]
    reply = await client.as_agent(tools=[forecast, search]).run('forecast({"city": "Oslo"}) search(boots)')
    assert reply.text == "Tool results: forecast -> forecast {'city': 'Oslo'}; search -> search boots 3"


MAF_SESSION = {  # what agent-framework-core 1.23.0's AgentSession.to_dict() writes (a real one, abridged)
    "type": "session",
    "session_id": "s1",
    "service_session_id": {"conversation_id": "conv_kept"},
    "state": {
        "x": {"a": 1, "type": "unregistered"},
        "prefs": {"theme": "dark", "type": "compat.prefs"},
        "in_memory": {
            "messages": [
                {"role": "user", "contents": [{"type": "text", "text": "hi", "additional_properties": {}}],
                 "additional_properties": {}, "type": "message"},
                {"role": "assistant", "contents": [
                    {"type": "text", "text": "yo", "additional_properties": {}},
                    {"type": "function_call", "call_id": "c1", "name": "f", "arguments": {"a": 1}, "hosted": False,
                     "additional_properties": {}}], "additional_properties": {}, "type": "message"},
                {"role": "tool", "contents": [
                    {"type": "function_result", "call_id": "c1", "result": "ok",
                     "items": [{"type": "text", "text": "ok", "additional_properties": {}}],
                     "additional_properties": {}}], "additional_properties": {}, "type": "message"},
            ]
        },
    },
}  # fmt: skip


class Prefs(BaseModel):
    theme: str


register_state_type(Prefs, type_id="compat.prefs")


async def test_a_session_written_by_agent_framework_loads_and_continues(
    client: OpenAIResponsesClient, model: EchoModel
):
    session = AgentSession.from_dict(json.loads(json.dumps(MAF_SESSION)))
    assert session.service_session_id == {"conversation_id": "conv_kept"}
    assert session.state["x"] == {"a": 1, "type": "unregistered"}  # unknown types stay plain data, as in MAF
    assert session.state["prefs"] == Prefs(theme="dark")
    messages = session.state["in_memory"]["messages"]
    assert [type(m) for m in messages] == [Message, Message, Message]
    assert messages[1].contents[1] == Content.from_function_call("c1", "f", '{"a": 1}')
    assert messages[2].contents[0].result == "ok"
    restored = AgentSession.from_dict(json.loads(json.dumps(session.to_dict())))
    assert restored.service_session_id == {"conversation_id": "conv_kept"}
    local = AgentSession(session_id="s2", state=session.state)
    reply = await client.as_agent().run("and now?", session=local)
    assert seen_user_messages(reply.text) == ["hi", "and now?"]
    assert [i["type"] for i in model.responses_requests()[-1]["input"]] == [
        "message", "message", "function_call", "function_call_output", "message"
    ]  # fmt: skip


@pytest.mark.parametrize(
    ("content", "error"),
    [
        ({"type": "hosted_file", "file_id": "f1"}, "cannot read a content of type 'hosted_file'"),
        ({"type": "text", "text": "x", "weird": 1}, "cannot read a 'text' content"),
    ],
    ids=["unknown-type", "unknown-field"],
)
def test_an_unreadable_agent_framework_session_fails_at_from_dict(content: dict[str, Any], error: str):
    data = {
        "type": "session",
        "session_id": "s",
        "state": {"in_memory": {"messages": [{"type": "message", "role": "user", "contents": [content]}]}},
    }
    with pytest.raises(SessionSerializationError, match=rf"state\.in_memory\.messages\[0\]: {error}"):
        AgentSession.from_dict(data)


async def test_a_mapping_service_session_id_continues_its_conversation(client: OpenAIResponsesClient, model: EchoModel):
    conversation_id = await client.create_conversation()
    agent = client.as_agent()
    session = agent.get_session({"conversation_id": conversation_id})
    await agent.run("hello", session=session)
    assert model.responses_requests()[-1]["conversation"] == conversation_id
    with pytest.raises(AgentInputError, match="names no conversation_id"):
        await agent.run("hi", session=agent.get_session({"thread": "t-1"}))


class AppendingProvider(ContextProvider):
    def __init__(self) -> None:
        super().__init__("appender")

    async def before_run(self, *, agent, session, context: SessionContext, state) -> None:
        context.instructions.append("Appended directly.")
        assert context.get_messages() == []  # Agent Framework's default: context messages only
        assert [m.text for m in context.get_messages(include_input=True)] == ["hi"]


async def test_response_and_message_shapes(client: OpenAIResponsesClient, model: EchoModel):
    async with OpenAIChatClient(model="echo-1", api_key="k", base_url=str(client.client.base_url)).as_agent(
        name="Shaper", instructions="Base.", context_providers=[AppendingProvider()]
    ) as agent:
        result = await agent.run(Message("user", ["hi"]))
        assert f"{result}" == result.text
        assert result.text.startswith("I have seen 1 user message(s)")
        assert result.messages[0].author_name == "Shaper"
        assert result.finish_reason == "stop"
        assert result.created_at is not None
        assert result.agent_id == agent.id
        assert result.usage_details["output_token_count"] == result.usage.output_token_count > 0
        assert model.responses_requests()[-1]["instructions"] == "Base.\nAppended directly."
        updates = [u async for u in agent.run("hi", stream=True)]
        assert "".join(f"{u}" for u in updates) == result.text
        assert all(u.user_input_requests == [] for u in updates)


def test_approval_content_signatures_of_both_generations():
    call = Content.from_function_call("c1", "pay", arguments={"amount": 5})
    assert call.arguments == '{"amount": 5}'
    old = Content.from_function_approval_request(call)
    new = Content.from_function_approval_request("c1", call)
    assert old == new
    assert old.function_call == call
    decision = new.to_function_approval_response(approved=True)
    assert (decision.id, decision.approved, decision.name) == ("c1", True, "pay")
    assert Content.from_function_approval_response("c1", False).approved is False  # the page's (id, approved)
    assert Content.from_function_approval_response(True, "c1", call) == decision  # 1.x's (approved, id, call)
    assert Message.from_dict(Message("user", ["x", decision]).to_dict()) == Message("user", ["x", decision])
