"""Streaming runs: deltas reassemble, the session is updated once at the end, abandoned streams change nothing."""

from __future__ import annotations

import json

from agent_core import AgentResponseUpdate, tool
from agent_core.openai import OpenAIResponsesClient
from devtools.echo_model import EchoModel

from .helpers import seen_user_messages


async def test_stream_deltas_reassemble_and_history_updates_once(client: OpenAIResponsesClient, model: EchoModel):
    agent = client.as_agent()
    session = agent.create_session()
    await agent.run("Tell me a story", session=session)
    before = len(session.state["in_memory"]["messages"])
    updates: list[AgentResponseUpdate] = []
    stream = agent.run("What happened next?", session=session, stream=True)
    async for update in stream:
        updates.append(update)
        # nothing is recorded while the stream is still running
        assert len(session.state["in_memory"]["messages"]) == before
    text_updates = [u.text for u in updates if u.text]
    assert len(text_updates) > 2  # really incremental
    final = await stream.get_final_response()
    assert "".join(text_updates) == final.text
    assert seen_user_messages(final.text) == ["Tell me a story", "What happened next?"]
    assert len(session.state["in_memory"]["messages"]) == before + 2
    assert model.responses_requests()[-1]["stream"] is True


async def test_streamed_and_plain_runs_store_the_same(client: OpenAIResponsesClient):
    agent = client.as_agent()
    plain, streamed = agent.create_session(), agent.create_session()
    await agent.run("hi", session=plain)
    async for _ in agent.run("hi", session=streamed, stream=True):
        pass

    def stored(session) -> list[dict[str, object]]:
        return [m.model_dump() for m in session.state["in_memory"]["messages"]]

    assert stored(plain) == stored(streamed)


async def test_abandoned_stream_persists_nothing_and_session_stays_usable(client: OpenAIResponsesClient):
    agent = client.as_agent()
    session = agent.create_session()
    await agent.run("first", session=session)
    snapshot = json.dumps(session.to_dict())
    stream = agent.run("long story please", session=session, stream=True)
    async for update in stream:
        if update.text:
            break
    await stream.aclose()
    assert json.dumps(session.to_dict()) == snapshot
    reply = await agent.run("second", session=session)
    assert seen_user_messages(reply.text) == ["first", "second"]


async def test_stream_with_tools_emits_call_and_result_events(client: OpenAIResponsesClient):
    @tool
    def search_products(query: str) -> str:
        """Search product catalog."""
        return f"Found 3 products matching '{query}'"

    agent = client.as_agent(tools=[search_products])
    session = agent.create_session()
    kinds: list[str] = []
    text = ""
    async for update in agent.run("search_products(boots)", session=session, stream=True):
        kinds += [c.type for c in update.contents if c.type != "text"]
        text += update.text
    assert kinds == ["function_call", "function_result"]
    assert text == "Tool results: search_products -> Found 3 products matching 'boots'"


async def test_service_stream_updates_service_id_after_completion(client: OpenAIResponsesClient, model: EchoModel):
    agent = client.as_agent()
    session = agent.create_session()
    stream = agent.run("one", session=session, stream=True, options={"store": True})
    async for _ in stream:
        assert session.service_session_id is None
    final = await stream.get_final_response()
    assert session.service_session_id == final.response_id
