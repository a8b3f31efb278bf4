"""Service-managed sessions: only the new input is sent; the service id is carried between turns."""

from __future__ import annotations

from agent_core import Agent, BaseHistoryProvider
from agent_core.openai import OpenAIResponsesClient
from devtools.echo_model import EchoModel

from .helpers import seen_user_messages


async def test_conversation_session_sends_only_new_input(client: OpenAIResponsesClient, model: EchoModel):
    agent = client.as_agent(instructions="Be brief.")
    session = await agent.create_service_session()
    conversation_id = session.service_session_id
    assert isinstance(conversation_id, str)
    assert conversation_id.startswith("conv_")
    await agent.run("My name is Alice.", session=session)
    reply = await agent.run("Who am I?", session=session)
    # the service remembers: the echo model saw both messages although only the new one was sent
    assert seen_user_messages(reply.text) == ["My name is Alice.", "Who am I?"]
    second = model.responses_requests()[-1]
    assert second["conversation"] == conversation_id
    assert second["input"] == [{"type": "message", "role": "user", "content": "Who am I?"}]
    assert "previous_response_id" not in second
    assert session.service_session_id == conversation_id  # stable across turns
    assert "in_memory" not in session.state


async def test_response_chain_uses_previous_response_id(client: OpenAIResponsesClient, model: EchoModel):
    agent = client.as_agent()
    session = agent.create_session()
    first = await agent.run("one", session=session, options={"store": True})
    assert session.service_session_id == first.response_id
    second = await agent.run("two", session=session)
    assert seen_user_messages(second.text) == ["one", "two"]
    sent = model.responses_requests()[-1]
    assert sent["previous_response_id"] == first.response_id
    assert len(sent["input"]) == 1
    assert sent["store"] is True
    assert session.service_session_id == second.response_id


async def test_options_conversation_id_without_session(client: OpenAIResponsesClient, model: EchoModel):
    agent = client.as_agent()
    conversation_id = await client.create_conversation()
    await agent.run("Hello", options={"conversation_id": conversation_id})
    reply = await agent.run("Again", options={"conversation_id": conversation_id})
    assert seen_user_messages(reply.text) == ["Hello", "Again"]
    assert model.responses_requests()[-1]["conversation"] == conversation_id


class FailingHistory(BaseHistoryProvider):
    async def get_messages(self, session_id, **kwargs):
        raise AssertionError("local history must not be loaded in a service-managed session")

    async def save_messages(self, session_id, messages, **kwargs):
        raise AssertionError("local history must not be stored in a service-managed session")


async def test_local_history_is_skipped_when_service_manages_it(client: OpenAIResponsesClient, model: EchoModel):
    agent = Agent(client=client, context_providers=[FailingHistory("db")])
    session = agent.get_session(await client.create_conversation(), session_id="local-session-789")
    reply = await agent.run("only this", session=session)
    assert seen_user_messages(reply.text) == ["only this"]
    assert session.session_id == "local-session-789"


async def test_delete_conversation(client: OpenAIResponsesClient):
    conversation_id = await client.create_conversation()
    assert await client.delete_conversation(conversation_id) is True
    assert await client.delete_conversation(conversation_id) is False


async def test_conversation_metadata(client: OpenAIResponsesClient):
    conversation_id = await client.create_conversation(metadata={"session_id": "s-1", "owner": "h"})
    assert await client.conversation_metadata(conversation_id) == {"session_id": "s-1", "owner": "h"}
    await client.delete_conversation(conversation_id)
    assert await client.conversation_metadata(conversation_id) is None
