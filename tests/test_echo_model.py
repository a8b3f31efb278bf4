"""The echo model, exercised through the real openai SDK over real HTTP (and once in-process)."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Any

import httpx2
import openai
import pytest
from openai.types.responses import (
    ResponseCompletedEvent,
    ResponseFailedEvent,
    ResponseFunctionCallArgumentsDoneEvent,
    ResponseFunctionToolCall,
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

    fetched = await client.responses.retrieve(first.id)
    assert fetched.output_text == first.output_text
    await client.responses.delete(first.id)
    with pytest.raises(openai.NotFoundError):
        await client.responses.retrieve(first.id)


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
    assert second.output_text.startswith("I have seen 3 user message(s):")

    items = [item async for item in client.conversations.items.list(conversation.id, order="asc")]
    roles = [getattr(item, "role", None) for item in items]
    assert roles == ["user", "user", "assistant", "user", "assistant"]
    newest_first = await client.conversations.items.list(conversation.id)
    assert newest_first.data[0].id == items[-1].id  # default order is "desc", as in the real API

    await client.conversations.items.create(conversation.id, items=[{"role": "user", "content": "added"}])
    third = await client.responses.create(model=MODEL, input="last", conversation=conversation.id)
    assert '"added" | "last"' in third.output_text

    deleted = await client.conversations.delete(conversation.id)
    assert deleted.deleted is True
    assert deleted.id == conversation.id
    with pytest.raises(openai.NotFoundError):
        await client.conversations.retrieve(conversation.id)
    with pytest.raises(openai.NotFoundError):
        await client.responses.create(model=MODEL, input="hi", conversation=conversation.id)


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
    fetched = await client.responses.retrieve(completed.response.id)
    assert fetched.output_text == completed.response.output_text


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
        await client.responses.retrieve("resp_missing")

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
