"""Model failures raise typed errors and leave the session exactly as it was."""

from __future__ import annotations

import json

import pytest

from agent_core import (
    BaseContextProvider,
    ModelBadRequestError,
    ModelRateLimitError,
    ModelServiceError,
    ModelTimeoutError,
)
from agent_core.openai import OpenAIResponsesClient
from devtools.echo_model import EchoModel, EchoModelServer

from .helpers import seen_user_messages


class Counting(BaseContextProvider):
    async def before_run(self, *, agent, session, context, state) -> None:
        state["before"] = state.get("before", 0) + 1  # must be undone when the run fails


async def _session_with_history(client: OpenAIResponsesClient):
    agent = client.as_agent(context_providers=[Counting("count")])
    session = agent.create_session()
    await agent.run("remember me", session=session)
    return agent, session


@pytest.mark.parametrize(
    ("fault", "error", "status", "code"),
    [
        ({"status": 429, "retry_after": 7}, ModelRateLimitError, 429, "rate_limit_exceeded"),
        ({"status": 503}, ModelRateLimitError, 503, None),
        ({"status": 500}, ModelServiceError, 500, None),
        ({"status": 400}, ModelBadRequestError, 400, None),
    ],
)
async def test_status_errors_are_typed_and_change_nothing(
    client: OpenAIResponsesClient, model: EchoModel, fault, error, status, code
):
    agent, session = await _session_with_history(client)
    before = json.dumps(session.to_dict())
    model.fail_next(**fault)
    with pytest.raises(error) as info:
        await agent.run("this turn fails", session=session)
    assert info.value.status_code == status
    assert info.value.code == code
    if "retry_after" in fault:
        assert info.value.retry_after == 7
    assert json.dumps(session.to_dict()) == before
    reply = await agent.run("next", session=session)
    assert seen_user_messages(reply.text) == ["remember me", "next"]


async def test_bad_request_carries_the_service_error_code(client: OpenAIResponsesClient):
    agent = client.as_agent()
    with pytest.raises(ModelBadRequestError) as info:
        await agent.run("continue", session=agent.get_session("resp_unknown"))
    assert info.value.code == "previous_response_not_found"


async def test_timeout_is_typed(model_server: EchoModelServer, model: EchoModel):
    client = OpenAIResponsesClient(model="m", api_key="k", base_url=model_server.base_url, timeout=0.2, max_retries=0)
    agent, session = await _session_with_history(client)
    before = json.dumps(session.to_dict())
    model.stall_next(2)
    with pytest.raises(ModelTimeoutError):
        await agent.run("slow", session=session)
    assert json.dumps(session.to_dict()) == before


async def test_failed_stream_is_typed_and_changes_nothing(client: OpenAIResponsesClient, model: EchoModel):
    agent, session = await _session_with_history(client)
    before = json.dumps(session.to_dict())
    model.break_stream_next(after_deltas=2)
    received: list[str] = []

    async def consume() -> None:
        async for update in agent.run("stream then fail", session=session, stream=True):
            received.append(update.text)

    with pytest.raises(ModelServiceError, match="injected stream failure"):
        await consume()
    assert "".join(received)  # part of the answer arrived before the failure
    assert json.dumps(session.to_dict()) == before


async def test_failure_midway_through_tool_loop_changes_nothing(client: OpenAIResponsesClient, model: EchoModel):
    from agent_core import tool

    @tool
    def lookup(x: str) -> str:
        model.fail_next(500)  # the follow-up call with the tool result fails
        return "found"

    agent = client.as_agent(tools=[lookup])
    session = agent.create_session()
    with pytest.raises(ModelServiceError):
        await agent.run("lookup(a)", session=session)
    assert session.state == {}


async def test_unreachable_service_is_a_service_error():
    client = OpenAIResponsesClient(model="m", api_key="k", base_url="http://127.0.0.1:9/v1", max_retries=0)
    with pytest.raises(ModelServiceError, match="cannot reach"):
        await client.as_agent().run("hi")
