"""Agent.run: inputs, multi-turn memory, automatic in-memory history, options reaching providers."""

from __future__ import annotations

import json
from typing import Any

import pytest

from agent_core import (
    Agent,
    AgentInputError,
    AgentSession,
    BaseContextProvider,
    BaseHistoryProvider,
    InMemoryHistoryProvider,
    Message,
    SessionContext,
)
from agent_core.openai import OpenAIResponsesClient
from devtools.echo_model import EchoModel

from .helpers import seen_user_messages


class RecordingProvider(BaseContextProvider):
    def __init__(self, source_id: str = "recorder") -> None:
        super().__init__(source_id)
        self.options: list[dict[str, Any]] = []

    async def before_run(self, *, agent, session, context: SessionContext, state) -> None:
        self.options.append(dict(context.options))


async def test_multi_turn_memory_and_response_fields(client: OpenAIResponsesClient, model: EchoModel):
    agent = client.as_agent(name="Memory", instructions="Be brief.")
    session = agent.create_session()
    first = await agent.run("My name is Alice and I love hiking.", session=session)
    assert seen_user_messages(first.text) == ["My name is Alice and I love hiking."]
    second = await agent.run("What do you remember about me?", session=session)
    assert seen_user_messages(second.text) == ["My name is Alice and I love hiking.", "What do you remember about me?"]
    assert second.response_id
    assert second.response_id.startswith("resp_")
    assert second.usage.output_token_count > 0
    assert second.usage.total_token_count == second.usage.input_token_count + second.usage.output_token_count
    assert [m.role for m in second.messages] == ["assistant"]
    # local history: the full conversation is sent each time, nothing is stored on the service
    last = model.responses_requests()[-1]
    assert last["store"] is False
    assert "previous_response_id" not in last
    assert last["instructions"] == "Be brief."
    assert session.service_session_id is None


async def test_history_lives_in_session_state_without_instructions(client: OpenAIResponsesClient):
    agent = client.as_agent(instructions="SECRET SYSTEM PROMPT")
    session = agent.create_session()
    await agent.run("hello", session=session)
    stored = session.state["in_memory"]["messages"]
    assert [(m.role, m.text[:11]) for m in stored] == [("user", "hello"), ("assistant", "I have seen")]
    # the echo reply quotes the instructions it received; no stored message *is* an instruction
    assert not any(m.role in ("system", "developer") or m.text == "SECRET SYSTEM PROMPT" for m in stored)


async def test_serialized_session_continues_the_conversation(client: OpenAIResponsesClient):
    agent = client.as_agent()
    session = agent.create_session(session_id="user-123-conversation-456")
    await agent.run("first", session=session)
    restored = AgentSession.from_dict(json.loads(json.dumps(session.to_dict())))
    assert restored.session_id == "user-123-conversation-456"
    reply = await agent.run("second", session=restored)
    assert seen_user_messages(reply.text) == ["first", "second"]


async def test_input_forms(client: OpenAIResponsesClient):
    agent = client.as_agent()
    as_message = await agent.run(Message(role="user", text="one"))
    assert seen_user_messages(as_message.text) == ["one"]
    mixed = await agent.run(["a", Message(role="user", text="b"), Message(role="assistant", text="c")])
    assert seen_user_messages(mixed.text) == ["a", "b"]
    with pytest.raises(AgentInputError, match="must be str or Message"):
        agent.run([42])  # type: ignore[list-item, unused-coroutine]


async def test_without_session_nothing_is_remembered(client: OpenAIResponsesClient):
    agent = client.as_agent()
    await agent.run("one")
    assert seen_user_messages((await agent.run("two")).text) == ["two"]


async def test_kwargs_and_options_reach_context_providers(client: OpenAIResponsesClient, model: EchoModel):
    recorder = RecordingProvider()
    agent = Agent(client=client, context_providers=[recorder])
    await agent.run("hi", session=agent.create_session(), options={"temperature": 0.5}, user_id="user-123")
    assert recorder.options == [{"temperature": 0.5, "user_id": "user-123"}]
    sent = model.responses_requests()[-1]
    assert sent["temperature"] == 0.5
    assert "user_id" not in sent  # provider-only options never reach the model


class NoLoadHistory(BaseHistoryProvider):
    def __init__(self) -> None:
        super().__init__("audit", load_messages=False)
        self.saved: list[Message] = []

    async def get_messages(self, session_id, **kwargs) -> list[Message]:
        raise AssertionError("load_messages=False must not load")

    async def save_messages(self, session_id, messages, **kwargs) -> None:
        self.saved.extend(messages)


@pytest.mark.parametrize(
    ("providers", "session_kind", "options", "expected"),
    [
        ([], "local", None, True),  # a session and no history provider: added
        ([RecordingProvider()], "local", None, True),  # plain context providers don't count as history
        ([NoLoadHistory()], "local", None, True),  # a history provider that doesn't load doesn't count either
        ([InMemoryHistoryProvider("mine")], "local", None, False),  # a loading history provider is configured
        ([], None, None, False),  # no session
        ([], "service", None, False),  # the service keeps the history
        ([], "local", {"store": True}, False),  # service-side storage requested
    ],
)
async def test_in_memory_history_is_added_exactly_when_needed(
    client: OpenAIResponsesClient, providers, session_kind, options, expected
):
    agent = Agent(client=client, context_providers=providers)
    session = {"local": AgentSession(), "service": None, None: None}[session_kind]
    if session_kind == "service":
        session = agent.get_session(await client.create_conversation())
    await agent.run("hi", session=session, options=options)
    assert ("in_memory" in session.state if session else False) is expected


async def test_explicit_in_memory_provider_with_own_source_id(client: OpenAIResponsesClient):
    agent = Agent(client=client, context_providers=[InMemoryHistoryProvider("mine")])
    session = agent.create_session()
    await agent.run("a", session=session)
    reply = await agent.run("b", session=session)
    assert seen_user_messages(reply.text) == ["a", "b"]
    assert len(session.state["mine"]["messages"]) == 4
