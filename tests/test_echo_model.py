"""The echo model, exercised through the real openai SDK over real HTTP (and once in-process)."""

from __future__ import annotations

import asyncio
import base64
import json
import os
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any, cast

import httpx2
import jsonschema
import openai
import pydantic
import pytest
from openai.types.responses import (
    ResponseCompletedEvent,
    ResponseFailedEvent,
    ResponseFunctionCallArgumentsDoneEvent,
    ResponseFunctionToolCall,
    ResponseOutputMessage,
    ResponseOutputRefusal,
    ResponseReasoningItem,
    ResponseReasoningSummaryTextDeltaEvent,
    ResponseRefusalDeltaEvent,
    ResponseStreamEvent,
    ResponseTextDeltaEvent,
)

from devtools.echo_model import EchoModel, EchoModelServer

MODEL = "gpt-test"
SEARCH_TOOL: Any = {
    "type": "function",
    "name": "search_products",
    "description": "Search the catalogue.",
    "parameters": {
        "type": "object",
        "properties": {"query": {"type": "string"}, "limit": {"type": "integer"}},
        "required": ["query"],
    },
}


@pytest.fixture
def server(model_server: EchoModelServer) -> EchoModelServer:
    return model_server


@pytest.fixture
async def client(server: EchoModelServer, model: EchoModel) -> AsyncIterator[openai.AsyncOpenAI]:
    """The bare openai SDK (not agent_core) against the shared echo model."""
    async with openai.AsyncOpenAI(api_key="test", base_url=server.base_url, max_retries=0) as sdk:
        yield sdk


async def collect(stream: Any) -> list[ResponseStreamEvent]:
    return [event async for event in stream]


async def test_previous_response_id_carries_the_whole_context(client: openai.AsyncOpenAI) -> None:
    first = await client.responses.create(model=MODEL, input="hello there")
    assert first.output_text == 'I have seen 1 user message(s): "hello there"'
    assert first.id.startswith("resp_")
    assert len(first.id) == len("resp_") + 32

    second = await client.responses.create(
        model=MODEL, input="and again", previous_response_id=first.id, instructions="Be brief."
    )
    assert second.output_text == (
        'I have seen 2 user message(s): "hello there" | "and again" [instructions: Be brief.]'
    )
    assert second.previous_response_id == first.id
    assert second.usage is not None
    # context words: "hello there" (2) + first reply (8) + "and again" (2) + instructions (2)
    assert second.usage.input_tokens == 14
    assert second.usage.output_tokens == len(second.output_text.split())
    assert second.usage.total_tokens == second.usage.input_tokens + second.usage.output_tokens


async def test_unstored_responses_cannot_be_continued(client: openai.AsyncOpenAI) -> None:
    unstored = await client.responses.create(model=MODEL, input="forget me", store=False)
    with pytest.raises(openai.BadRequestError) as caught:
        await client.responses.create(model=MODEL, input="again", previous_response_id=unstored.id)
    assert caught.value.code == "previous_response_not_found"


async def test_conversation_lifecycle(client: openai.AsyncOpenAI) -> None:
    conversation = await client.conversations.create(
        items=[{"role": "user", "content": "my name is Ada"}], metadata={"topic": "intro"}
    )
    assert conversation.id.startswith("conv_")
    assert len(conversation.id) == len("conv_") + 32
    assert conversation.metadata == {"topic": "intro"}

    first = await client.responses.create(model=MODEL, input="what is my name?", conversation=conversation.id)
    assert first.conversation is not None
    assert first.conversation.id == conversation.id
    assert first.output_text == 'I have seen 2 user message(s): "my name is Ada" | "what is my name?"'
    second = await client.responses.create(model=MODEL, input="thanks", conversation={"id": conversation.id})
    assert second.output_text.startswith('I have seen 3 user message(s): "my name is Ada"')
    assert first.usage is not None
    assert second.usage is not None
    assert second.usage.input_tokens > first.usage.input_tokens + 1  # the first reply was kept, too

    retrieved = await client.conversations.retrieve(conversation.id)
    assert (retrieved.id, retrieved.metadata) == (conversation.id, {"topic": "intro"})

    deleted = await client.conversations.delete(conversation.id)
    assert deleted.deleted is True
    assert deleted.id == conversation.id
    with pytest.raises(openai.NotFoundError):
        await client.conversations.retrieve(conversation.id)
    with pytest.raises(openai.NotFoundError):
        await client.responses.create(model=MODEL, input="hi", conversation=conversation.id)
    with pytest.raises(openai.NotFoundError):
        await client.conversations.delete(conversation.id)


async def test_streaming_deltas_join_to_the_completed_text(client: openai.AsyncOpenAI) -> None:
    stream = await client.responses.create(
        model=MODEL, input="please stream this fairly long message back", stream=True
    )
    events = await collect(stream)

    assert [e.type for e in events[:2]] == ["response.created", "response.in_progress"]
    assert [e.sequence_number for e in events] == list(range(len(events)))
    deltas = [e.delta for e in events if isinstance(e, ResponseTextDeltaEvent)]
    assert len(deltas) >= 3
    completed = events[-1]
    assert isinstance(completed, ResponseCompletedEvent)
    assert "".join(deltas) == completed.response.output_text
    assert completed.response.output_text.endswith('"please stream this fairly long message back"')
    types = {e.type for e in events}
    assert {"response.output_item.added", "response.content_part.added", "response.output_text.done"} <= types
    # a streamed response is stored like any other
    follow_up = await client.responses.create(model=MODEL, input="next", previous_response_id=completed.response.id)
    assert follow_up.output_text.endswith('"please stream this fairly long message back" | "next"')


async def test_tool_call_then_tool_results(client: openai.AsyncOpenAI) -> None:
    called = await client.responses.create(
        model=MODEL, input="Please search_products(boots) for me", tools=[SEARCH_TOOL]
    )
    [call] = called.output
    assert isinstance(call, ResponseFunctionToolCall)
    assert call.name == "search_products"
    assert json.loads(call.arguments) == {"query": "boots"}
    assert call.call_id.startswith("call_")

    answered = await client.responses.create(
        model=MODEL,
        previous_response_id=called.id,
        input=[{"type": "function_call_output", "call_id": call.call_id, "output": "3 pairs in stock"}],
        tools=[SEARCH_TOOL],
    )
    assert answered.output_text == "Tool results: search_products -> 3 pairs in stock"


async def test_several_tool_calls_json_arguments_and_undeclared_names(client: openai.AsyncOpenAI) -> None:
    response = await client.responses.create(
        model=MODEL,
        input='search_products({"query": "hats", "limit": 2}) then search_products() and other_tool(x)',
        tools=[SEARCH_TOOL],
    )
    calls = [item for item in response.output if isinstance(item, ResponseFunctionToolCall)]
    assert [json.loads(c.arguments) for c in calls] == [{"query": "hats", "limit": 2}, {"query": ""}]
    assert len({c.call_id for c in calls}) == 2

    no_tools = await client.responses.create(model=MODEL, input="search_products(boots)")
    assert no_tools.output_text == 'I have seen 1 user message(s): "search_products(boots)"'


async def test_streamed_tool_call(client: openai.AsyncOpenAI) -> None:
    stream = await client.responses.create(
        model=MODEL, input="search_products(red scarf)", tools=[SEARCH_TOOL], stream=True
    )
    events = await collect(stream)
    [done] = [e for e in events if isinstance(e, ResponseFunctionCallArgumentsDoneEvent)]
    assert json.loads(done.arguments) == {"query": "red scarf"}
    completed = events[-1]
    assert isinstance(completed, ResponseCompletedEvent)
    assert isinstance(completed.response.output[0], ResponseFunctionToolCall)
    assert completed.response.output[0].id == done.item_id


async def test_injected_rate_limit(client: openai.AsyncOpenAI, model: EchoModel) -> None:
    model.fail_next(429, retry_after=1, message="slow down")
    with pytest.raises(openai.RateLimitError) as caught:
        await client.responses.create(model=MODEL, input="hi")
    assert caught.value.status_code == 429
    assert caught.value.response.headers["retry-after"] == "1"
    assert caught.value.code == "rate_limit_exceeded"
    assert "slow down" in caught.value.message

    recovered = await client.responses.create(model=MODEL, input="hi")
    assert recovered.status == "completed"


async def test_sdk_retries_honour_retry_after(server: EchoModelServer, model: EchoModel) -> None:
    model.fail_next(503, count=2, retry_after=0.01)
    async with openai.AsyncOpenAI(api_key="test", base_url=server.base_url, max_retries=2) as retrying:
        response = await retrying.responses.create(model=MODEL, input="eventually")
    assert response.output_text.endswith('"eventually"')
    assert len(model.responses_requests()) == 3


async def test_model_calls_count_every_responses_request(server: EchoModelServer, model: EchoModel) -> None:
    model.fail_next(503, count=2, retry_after=0)
    async with openai.AsyncOpenAI(api_key="test", base_url=server.base_url, max_retries=2) as retrying:
        await retrying.responses.create(model=MODEL, input="third time lucky")
        with pytest.raises(openai.BadRequestError):
            await retrying.post("/responses", cast_to=object, content=b"{not json")
        await retrying.conversations.create()
    assert model.model_calls == 4  # two failures, the reply, the refused body; not the conversation
    assert len(model.responses_requests()) == 3  # the refused body was not a JSON object


@pytest.mark.parametrize(
    "retry_after", ["soon", "Wed, 21 Oct 2015 07:28:00 GMT", "Fri, 31 Dec 2099 23:59:59 GMT", "-3", 2.5]
)
async def test_retry_after_is_sent_as_given(client: openai.AsyncOpenAI, model: EchoModel, retry_after: object) -> None:
    model.fail_next(429, retry_after=retry_after)  # type: ignore[arg-type]
    with pytest.raises(openai.RateLimitError) as caught:
        await client.responses.create(model=MODEL, input="hi")
    assert caught.value.response.headers["retry-after"] == (retry_after if isinstance(retry_after, str) else "2.5")


@pytest.mark.parametrize(
    ("status", "error", "code"),
    [
        (404, openai.NotFoundError, "not_found"),
        (408, openai.APIStatusError, "timeout"),
        (401, openai.AuthenticationError, "invalid_api_key"),
        (500, openai.InternalServerError, None),
    ],
)
async def test_injected_statuses_get_openai_error_bodies(
    client: openai.AsyncOpenAI, model: EchoModel, status: int, error: type[openai.APIStatusError], code: str | None
) -> None:
    model.fail_next(status, message=f"injected {status}")
    with pytest.raises(error) as caught:
        await client.responses.create(model=MODEL, input="hi")
    assert caught.value.status_code == status
    assert caught.value.code == code
    kind = "server_error" if status >= 500 else "invalid_request_error"
    assert caught.value.body == {"message": f"injected {status}", "type": kind, "param": None, "code": code}


async def test_injected_headers_and_raw_bodies(client: openai.AsyncOpenAI, model: EchoModel) -> None:
    model.fail_next(
        404,
        code="DeploymentNotFound",
        message="The API deployment for this resource does not exist.",
        headers={"x-ms-region": "Sweden Central"},
    )
    model.fail_next(502, body="<html>Bad Gateway</html>", headers={"x-should-retry": "false"})
    with pytest.raises(openai.NotFoundError) as missing:
        await client.responses.create(model=MODEL, input="hi")
    assert missing.value.code == "DeploymentNotFound"
    assert missing.value.response.headers["x-ms-region"] == "Sweden Central"
    with pytest.raises(openai.InternalServerError) as gateway:
        await client.responses.create(model=MODEL, input="hi")
    assert gateway.value.response.text == "<html>Bad Gateway</html>"
    assert gateway.value.response.headers["content-type"].startswith("text/plain")
    assert gateway.value.response.headers["x-should-retry"] == "false"
    assert model.model_calls == 2


async def test_stall_triggers_client_timeout(server: EchoModelServer, model: EchoModel) -> None:
    model.stall_next(3.0)
    async with openai.AsyncOpenAI(api_key="test", base_url=server.base_url, max_retries=0, timeout=0.3) as impatient:
        with pytest.raises(openai.APITimeoutError):
            await impatient.responses.create(model=MODEL, input="hello?")
        # only one request was stalled; the server is free again at once
        response = await impatient.responses.create(model=MODEL, input="hello again")
    assert response.output_text.endswith('"hello again"')


async def test_broken_stream_ends_with_response_failed(client: openai.AsyncOpenAI, model: EchoModel) -> None:
    model.break_stream_next(after_deltas=2)
    stream = await client.responses.create(
        model=MODEL, input="one two three four five six seven eight nine ten", stream=True
    )
    events = await collect(stream)

    assert len([e for e in events if isinstance(e, ResponseTextDeltaEvent)]) == 2
    failed = events[-1]
    assert isinstance(failed, ResponseFailedEvent)
    assert failed.response.status == "failed"
    assert failed.response.error is not None
    assert failed.response.error.code == "server_error"
    assert not any(isinstance(e, ResponseCompletedEvent) for e in events)

    # the fault was used up: the next stream completes
    events = await collect(await client.responses.create(model=MODEL, input="again", stream=True))
    assert isinstance(events[-1], ResponseCompletedEvent)


@pytest.mark.parametrize("base_path", ["/openai/v1", "/api/projects/demo/openai/v1"])
async def test_azure_and_foundry_base_paths(server: EchoModelServer, model: EchoModel, base_path: str) -> None:
    base_url = server.base_url.removesuffix("/v1") + base_path
    async with openai.AsyncOpenAI(
        api_key="k", base_url=base_url, max_retries=0, default_query={"api-version": "preview"}
    ) as azure:
        first = await azure.responses.create(model=MODEL, input="from azure")
        second = await azure.responses.create(model=MODEL, input="again", previous_response_id=first.id)
    assert second.output_text == 'I have seen 2 user message(s): "from azure" | "again"'
    assert model.requests[0].path == f"{base_path}/responses"


async def test_requests_are_recorded_with_headers(client: openai.AsyncOpenAI, model: EchoModel) -> None:
    await client.responses.create(model=MODEL, input="recorded", metadata={"k": "v"})
    with pytest.raises(openai.NotFoundError):
        await client.get("/responses/resp_missing", cast_to=object)  # no such endpoint: nothing here uses it

    assert [(r.method, r.path) for r in model.requests] == [
        ("POST", "/v1/responses"),
        ("GET", "/v1/responses/resp_missing"),
    ]
    assert model.requests[0].headers["authorization"] == "Bearer test"
    assert model.requests[1].body is None
    assert model.responses_requests() == [{"model": MODEL, "input": "recorded", "metadata": {"k": "v"}}]


async def test_bad_requests_get_openai_error_bodies(client: openai.AsyncOpenAI) -> None:
    with pytest.raises(openai.BadRequestError) as missing:
        await client.post("/responses", cast_to=object, body={"model": MODEL})
    assert missing.value.param == "input"

    with pytest.raises(openai.BadRequestError) as malformed:
        await client.post("/responses", cast_to=object, content=b"{not json")
    assert malformed.value.type == "invalid_request_error"

    with pytest.raises(openai.BadRequestError) as both:
        await client.responses.create(model=MODEL, input="x", previous_response_id="resp_1", conversation="conv_1")
    assert both.value.param == "conversation"

    with pytest.raises(openai.BadRequestError) as unknown_previous:
        await client.responses.create(model=MODEL, input="x", previous_response_id="resp_unknown")
    assert unknown_previous.value.code == "previous_response_not_found"

    with pytest.raises(openai.NotFoundError):
        await client.get("/no/such/route", cast_to=object)
    with pytest.raises(openai.APIStatusError) as wrong_method:
        await client.get("/responses", cast_to=object)
    assert wrong_method.value.status_code == 405


async def test_label_prefixes_every_reply() -> None:
    with EchoModelServer(EchoModel(label="[offline model]")) as labelled:
        async with openai.AsyncOpenAI(api_key="test", base_url=labelled.base_url) as sdk:
            reply = await sdk.responses.create(model=MODEL, input="hi")
            called = await sdk.responses.create(model=MODEL, input="search_products(x)", tools=[SEARCH_TOOL])
            call = called.output[0]
            assert isinstance(call, ResponseFunctionToolCall)
            results = await sdk.responses.create(
                model=MODEL,
                previous_response_id=called.id,
                input=[{"type": "function_call_output", "call_id": call.call_id, "output": "ok"}],
            )
    assert reply.output_text == '[offline model] I have seen 1 user message(s): "hi"'
    assert results.output_text == "[offline model] Tool results: search_products -> ok"


async def test_in_process_asgi_transport() -> None:
    model = EchoModel(label="[offline model]")
    transport = httpx2.ASGITransport(app=model)
    async with openai.AsyncOpenAI(
        api_key="x", base_url="http://offline/v1", http_client=httpx2.AsyncClient(transport=transport)
    ) as sdk:
        reply = await sdk.responses.create(model=MODEL, input="in process")
        events = await collect(
            await sdk.responses.create(model=MODEL, input="streamed too", previous_response_id=reply.id, stream=True)
        )
    assert reply.output_text == '[offline model] I have seen 1 user message(s): "in process"'
    # httpx2.ASGITransport buffers the whole body, but the events still parse one by one
    completed = events[-1]
    assert isinstance(completed, ResponseCompletedEvent)
    deltas = "".join(e.delta for e in events if isinstance(e, ResponseTextDeltaEvent))
    assert deltas == completed.response.output_text
    assert deltas.endswith('"in process" | "streamed too"')
    assert [r.path for r in model.requests] == ["/v1/responses", "/v1/responses"]


# --- the context window -------------------------------------------------------------------------


def words(count: int, word: str = "w") -> str:
    return " ".join(f"{word}{i}" for i in range(count))


async def test_over_long_input_gets_the_context_length_error(client: openai.AsyncOpenAI, model: EchoModel) -> None:
    model.context_window = 20
    fits = await client.responses.create(model=MODEL, input=words(16), instructions="four words of instructions")
    assert fits.usage is not None
    assert fits.usage.input_tokens == 20
    for stream in (False, True):
        with pytest.raises(openai.BadRequestError) as caught:
            await client.responses.create(model=MODEL, input=words(21), stream=stream)
        body = caught.value.body
        assert isinstance(body, dict)
        assert set(body) == {"message", "type", "param", "code"}
        assert (body["type"], body["param"], body["code"]) == (
            "invalid_request_error",
            "input",
            "context_length_exceeded",
        )
        assert "exceeds the context window" in body["message"]
    assert model.model_calls == 3


async def test_truncation_auto_drops_the_oldest_items(client: openai.AsyncOpenAI, model: EchoModel) -> None:
    model.context_window = 30
    previous: str | None = None
    replies: list[str] = []
    for turn in range(4):  # each turn adds 10 words of user text and a reply of 16 or more words
        response = await client.responses.create(
            model=MODEL, input=words(10, f"t{turn}-"), previous_response_id=previous, truncation="auto"
        )
        previous = response.id
        replies.append(response.output_text)
    assert response.truncation == "auto"
    assert response.output_text == f'I have seen 1 user message(s): "{words(10, "t3-")}"'
    assert response.usage is not None
    assert response.usage.input_tokens == len(replies[-2].split()) + 10  # the last reply and the new message
    with pytest.raises(openai.BadRequestError) as caught:  # without truncation the chain no longer fits
        await client.responses.create(model=MODEL, input="one more", previous_response_id=previous)
    assert caught.value.code == "context_length_exceeded"


async def test_truncation_keeps_a_tool_call_with_its_output(client: openai.AsyncOpenAI, model: EchoModel) -> None:
    call = {"type": "function_call", "call_id": "call_1", "name": "search_products", "arguments": '{"query": "x"}'}
    output = {"type": "function_call_output", "call_id": "call_1", "output": "five words of tool output"}
    items: Any = [{"role": "user", "content": words(10)}, call, output, {"role": "user", "content": "three more words"}]
    model.context_window = 9  # dropping the first message leaves 10 words; the call alone would leave 8
    response = await client.responses.create(model=MODEL, input=items, truncation="auto")
    assert response.output_text == 'I have seen 1 user message(s): "three more words"'
    assert response.usage is not None
    assert response.usage.input_tokens == 3


@pytest.mark.parametrize("truncation", ["auto", "disabled"])
async def test_newest_item_too_long_for_any_truncation(
    client: openai.AsyncOpenAI, model: EchoModel, truncation: Any
) -> None:
    model.context_window = 5
    with pytest.raises(openai.BadRequestError) as caught:
        await client.responses.create(
            model=MODEL,
            input=[{"role": "user", "content": "hi"}, {"role": "user", "content": words(6)}],
            truncation=truncation,
        )
    assert caught.value.code == "context_length_exceeded"


async def test_bad_truncation_value(client: openai.AsyncOpenAI) -> None:
    with pytest.raises(openai.BadRequestError) as caught:
        await client.responses.create(model=MODEL, input="hi", truncation=cast(Any, "sometimes"))
    assert caught.value.param == "truncation"


async def test_reset_restores_the_constructor_window() -> None:
    with EchoModelServer(EchoModel(context_window=3)) as windowed:
        async with openai.AsyncOpenAI(api_key="test", base_url=windowed.base_url, max_retries=0) as sdk:
            with pytest.raises(openai.BadRequestError):
                await sdk.responses.create(model=MODEL, input=words(4))
            windowed.model.context_window = None
            assert (await sdk.responses.create(model=MODEL, input=words(4))).status == "completed"
            windowed.model.reset()
            with pytest.raises(openai.BadRequestError):
                await sdk.responses.create(model=MODEL, input=words(4))


@pytest.mark.parametrize("how", ["option", "environment"])
async def test_command_line_server_with_a_context_window(how: str) -> None:
    env = {k: v for k, v in os.environ.items() if k != "ECHO_MODEL_CONTEXT_WINDOW"}
    args = [sys.executable, "-m", "devtools.echo_model", "--label", "[cli]"]
    if how == "option":
        args += ["--context-window", "3"]
    else:
        env["ECHO_MODEL_CONTEXT_WINDOW"] = "3"
    root = Path(__file__).parent.parent
    process = await asyncio.create_subprocess_exec(*args, stdout=asyncio.subprocess.PIPE, env=env, cwd=root)
    try:
        assert process.stdout is not None
        base_url = (await process.stdout.readline()).decode().split()[-1]
        async with openai.AsyncOpenAI(api_key="test", base_url=base_url, max_retries=0) as sdk:
            reply = await sdk.responses.create(model=MODEL, input="three small words")
            with pytest.raises(openai.BadRequestError) as caught:
                await sdk.responses.create(model=MODEL, input="four small words now")
    finally:
        process.terminate()
        await process.wait()
    assert reply.output_text == '[cli] I have seen 1 user message(s): "three small words"'
    assert caught.value.code == "context_length_exceeded"


# --- structured output --------------------------------------------------------------------------

ADDRESS: Any = {
    "type": "object",
    "properties": {"street": {"type": "string"}, "zip": {"type": "string", "maxLength": 5}},
    "required": ["street", "zip"],
    "additionalProperties": False,
}
SCHEMAS: Any = {
    "flat": {
        "type": "object",
        "properties": {
            "answer": {"type": "string"},
            "count": {"type": "integer", "minimum": 3},
            "score": {"type": "number", "exclusiveMinimum": 0, "maximum": 0.5},
            "ok": {"type": "boolean"},
            "mood": {"type": "string", "enum": ["happy", "sad"]},
            "kind": {"const": "echo"},
            "when": {"type": "string", "format": "date-time"},
        },
        "required": ["answer", "count", "score", "ok", "mood", "kind", "when"],
        "additionalProperties": False,
    },
    "nested": {
        "type": "object",
        "properties": {
            "people": {
                "type": "array",
                "minItems": 2,
                "items": {
                    "type": "object",
                    "properties": {"name": {"type": "string"}, "home": ADDRESS, "tags": {"type": "array", "items": {}}},
                    "required": ["name", "home", "tags"],
                    "additionalProperties": False,
                },
            },
            "note": {"type": ["string", "null"]},
        },
        "required": ["people", "note"],
        "additionalProperties": False,
    },
    "refs": {
        "type": "object",
        "$defs": {
            "Address": ADDRESS,
            "Node": {
                "type": "object",
                "properties": {
                    "label": {"type": "string"},
                    "child": {"anyOf": [{"$ref": "#/$defs/Node"}, {"type": "null"}]},
                },
                "required": ["label", "child"],
                "additionalProperties": False,
            },
        },
        "properties": {
            "address": {"$ref": "#/$defs/Address"},
            "tree": {"$ref": "#/$defs/Node"},
            "maybe": {"anyOf": [{"type": "null"}, {"type": "integer"}]},
        },
        "required": ["address", "tree", "maybe"],
        "additionalProperties": False,
    },
}


def strings_in(value: Any) -> list[str]:
    if isinstance(value, str):
        return [value]
    if isinstance(value, dict):
        return [s for v in value.values() for s in strings_in(v)]
    if isinstance(value, list):
        return [s for v in value for s in strings_in(v)]
    return []


@pytest.mark.parametrize("name", sorted(SCHEMAS))
@pytest.mark.parametrize("stream", [False, True])
async def test_json_schema_replies_validate(client: openai.AsyncOpenAI, name: str, stream: bool) -> None:
    schema = SCHEMAS[name]
    text: Any = {"format": {"type": "json_schema", "name": name, "schema": schema, "strict": True}}
    if stream:
        events = await collect(await client.responses.create(model=MODEL, input="fill it", text=text, stream=True))
        completed = events[-1]
        assert isinstance(completed, ResponseCompletedEvent)
        response = completed.response
        assert "".join(e.delta for e in events if isinstance(e, ResponseTextDeltaEvent)) == response.output_text
    else:
        response = await client.responses.create(model=MODEL, input="fill it", text=text)
    value = json.loads(response.output_text)
    jsonschema.validate(value, schema)
    assert 'I have seen 1 user message(s): "fill it"' in strings_in(value)  # the echo text is in the strings
    assert response.text is not None
    assert response.text.format is not None
    assert response.text.format.type == "json_schema"


async def test_json_schema_values_follow_the_constraints(client: openai.AsyncOpenAI) -> None:
    text: Any = {"format": {"type": "json_schema", "name": "flat", "schema": SCHEMAS["flat"], "strict": True}}
    value = json.loads((await client.responses.create(model=MODEL, input="x", text=text)).output_text)
    assert (value["count"], value["mood"], value["kind"], value["ok"]) == (3, "happy", "echo", True)
    assert 0 < value["score"] <= 0.5


class Person(pydantic.BaseModel):
    name: str
    age: int
    nickname: str | None
    friends: list[str]


async def test_sdk_parse_with_a_pydantic_model(client: openai.AsyncOpenAI) -> None:
    parsed = await client.responses.parse(model=MODEL, input="Tell me about Ada", text_format=Person)
    assert isinstance(parsed.output_parsed, Person)
    assert parsed.output_parsed.name == 'I have seen 1 user message(s): "Tell me about Ada"'
    assert parsed.output_parsed.friends == [parsed.output_parsed.name]


@pytest.mark.parametrize(
    ("schema", "problem"),
    [
        ({"type": "object", "properties": {"a": {"type": "string"}}, "required": ["a"]}, "'additionalProperties'"),
        (
            {"type": "object", "properties": {"a": {"type": "string"}}, "required": [], "additionalProperties": False},
            "Missing 'a'",
        ),
        ({"type": "array", "items": {"type": "string"}}, 'type: "object"'),
        (
            {
                "type": "object",
                "properties": {"inner": {"type": "object", "properties": {}, "required": []}},
                "required": ["inner"],
                "additionalProperties": False,
            },
            "context=('properties', 'inner')",
        ),
    ],
)
async def test_strict_schemas_are_checked_like_the_real_service(
    client: openai.AsyncOpenAI, schema: Any, problem: str
) -> None:
    text: Any = {"format": {"type": "json_schema", "name": "thing", "schema": schema, "strict": True}}
    with pytest.raises(openai.BadRequestError) as caught:
        await client.responses.create(model=MODEL, input="x", text=text)
    assert (caught.value.code, caught.value.param) == ("invalid_json_schema", "text.format.schema")
    assert isinstance(caught.value.body, dict)
    assert caught.value.body["message"].startswith("Invalid schema for response_format 'thing': ")
    assert problem in caught.value.body["message"]
    # not strict: the same schema is answered
    text["format"]["strict"] = False
    value = json.loads((await client.responses.create(model=MODEL, input="x", text=text)).output_text)
    jsonschema.validate(value, schema)


async def test_json_schema_format_needs_a_name(client: openai.AsyncOpenAI) -> None:
    text: Any = {"format": {"type": "json_schema", "schema": SCHEMAS["flat"]}}
    with pytest.raises(openai.BadRequestError) as caught:
        await client.responses.create(model=MODEL, input="x", text=text)
    assert caught.value.param == "text.format.name"


# --- images and files ---------------------------------------------------------------------------

PNG = base64.b64encode(b"\x89PNG\r\n\x1a\n" + bytes(60)).decode()  # 68 bytes


@pytest.mark.parametrize(
    ("part", "described"),
    [
        ({"type": "input_image", "image_url": f"data:image/png;base64,{PNG}"}, "[image: image/png, 68 bytes]"),
        ({"type": "input_image", "image_url": "https://example.com/cat.jpg"}, "[image: https://example.com/cat.jpg]"),
        ({"type": "input_image", "file_id": "file-abc"}, "[image: file file-abc]"),
        (
            {"type": "input_file", "filename": "r.pdf", "file_data": "data:application/pdf;base64,JVBERi0xLjQ="},
            "[file: r.pdf, application/pdf, 8 bytes]",
        ),
        ({"type": "input_file", "file_url": "https://example.com/r.pdf"}, "[file: https://example.com/r.pdf]"),
    ],
)
async def test_images_and_files_are_described(client: openai.AsyncOpenAI, part: Any, described: str) -> None:
    content: Any = [{"type": "input_text", "text": "look:"}, part]
    response = await client.responses.create(model=MODEL, input=[{"role": "user", "content": content}])
    assert response.output_text == f'I have seen 1 user message(s): "look: {described}"'


@pytest.mark.parametrize(
    "part",
    [
        {"type": "input_image", "image_url": "data:image/png;base64,not base64!"},
        {"type": "input_image", "image_url": "data:;base64,AAAA"},
        {"type": "input_file", "filename": "x.txt", "file_data": "plain text"},
        {"type": "input_image"},
    ],
)
async def test_malformed_images_and_files_are_refused(client: openai.AsyncOpenAI, model: EchoModel, part: Any) -> None:
    with pytest.raises(openai.BadRequestError) as caught:
        await client.responses.create(model=MODEL, input=[{"role": "user", "content": [part]}])
    assert caught.value.param == "input"


# --- reasoning and refusals ---------------------------------------------------------------------

REASONING: Any = {"effort": "low", "summary": "auto"}
ENCRYPTED: Any = ["reasoning.encrypted_content"]


async def test_reasoning_items_round_trip_with_local_history(client: openai.AsyncOpenAI) -> None:
    history: list[Any] = [{"role": "user", "content": "search_products(tea)"}]
    called = await client.responses.create(
        model=MODEL, input=history, tools=[SEARCH_TOOL], reasoning=REASONING, include=ENCRYPTED, store=False
    )
    reasoning, call = called.output
    assert isinstance(reasoning, ResponseReasoningItem)
    assert isinstance(call, ResponseFunctionToolCall)
    assert reasoning.encrypted_content
    assert [s.text for s in reasoning.summary] == ["The user has sent 1 message(s); answering the last."]
    history += [reasoning.model_dump(exclude_none=True), call.model_dump(exclude_none=True)]
    history.append({"type": "function_call_output", "call_id": call.call_id, "output": "green tea"})
    answered = await client.responses.create(
        model=MODEL, input=history, tools=[SEARCH_TOOL], reasoning=REASONING, include=ENCRYPTED, store=False
    )
    assert answered.output_text == "Tool results: search_products -> green tea [reasoning carried: 1]"
    assert isinstance(answered.output[0], ResponseReasoningItem)


@pytest.mark.parametrize(
    ("options", "item", "encrypted"),
    [
        ({}, False, False),
        ({"include": ENCRYPTED}, False, False),
        ({"reasoning": {"effort": "none"}, "include": ENCRYPTED}, False, False),
        ({"reasoning": {"effort": "low"}}, True, False),
        ({"reasoning": {"effort": "low"}, "include": ENCRYPTED}, True, True),
    ],
)
async def test_when_reasoning_items_appear(
    client: openai.AsyncOpenAI, options: Any, item: bool, encrypted: bool
) -> None:
    response = await client.responses.create(model=MODEL, input="think", **options)
    reasoning = [o for o in response.output if isinstance(o, ResponseReasoningItem)]
    assert len(reasoning) == int(item)
    assert [bool(r.encrypted_content) for r in reasoning] == ([encrypted] if item else [])
    assert reasoning == [] or reasoning[0].summary == []  # a summary only when reasoning.summary asks for one


async def test_forged_reasoning_is_refused(client: openai.AsyncOpenAI) -> None:
    first = await client.responses.create(model=MODEL, input="hi", reasoning=REASONING, include=ENCRYPTED)
    reasoning = first.output[0].model_dump(exclude_none=True)
    reasoning["encrypted_content"] = "x" + reasoning["encrypted_content"]  # an altered payload
    forged: Any = [{"role": "user", "content": "hi"}, reasoning]
    with pytest.raises(openai.BadRequestError) as caught:
        await client.responses.create(model=MODEL, input=forged)
    assert caught.value.code == "invalid_encrypted_content"


async def test_streamed_reasoning_and_refusal(client: openai.AsyncOpenAI) -> None:
    stream = await client.responses.create(
        model=MODEL, input="please refuse() this", reasoning=REASONING, include=ENCRYPTED, stream=True
    )
    events = await collect(stream)
    completed = events[-1]
    assert isinstance(completed, ResponseCompletedEvent)
    reasoning, message = completed.response.output
    assert isinstance(reasoning, ResponseReasoningItem)
    assert reasoning.encrypted_content
    summary = "".join(e.delta for e in events if isinstance(e, ResponseReasoningSummaryTextDeltaEvent))
    assert summary == reasoning.summary[0].text
    assert isinstance(message, ResponseOutputMessage)
    [refusal] = message.content
    assert isinstance(refusal, ResponseOutputRefusal)
    assert refusal.refusal == "I refuse to answer: please refuse() this"
    assert "".join(e.delta for e in events if isinstance(e, ResponseRefusalDeltaEvent)) == refusal.refusal
    assert completed.response.output_text == ""
