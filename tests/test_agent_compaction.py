"""Agent runs with a compaction strategy, against the echo model over real HTTP: what the model receives is
compacted before every call, calibrated by the reported input tokens, the same streamed or not."""

from __future__ import annotations

import json
from typing import Any

import pytest

from agent_core import AgentInputError, ConfigurationError, ModelBadRequestError, tool
from agent_core.compaction import (
    COMPACTION_STATE_KEY,
    SUMMARY_PREFIX,
    SlidingWindowStrategy,
    SummarizationStrategy,
    TokenBudgetComposedStrategy,
    ToolResultCompactionStrategy,
)
from agent_core.openai import OpenAIResponsesClient
from agent_core.tokens import estimate_instructions_tokens, estimate_items_tokens
from devtools.echo_model import EchoModel

INSTRUCTIONS = "You are a patient assistant."


def hundred_words(turn: int) -> str:
    return f"message {turn}: " + " ".join(f"w{turn}x{i}" for i in range(98))


def composed(budget: int = 2_000) -> TokenBudgetComposedStrategy:
    return TokenBudgetComposedStrategy(
        token_budget=budget, strategies=[ToolResultCompactionStrategy(), SummarizationStrategy()]
    )


def user_texts(body: dict[str, Any]) -> list[str]:
    return [i["content"] for i in body["input"] if i.get("type") == "message" and i["role"] == "user"]


def echo_tokens(body: dict[str, Any]) -> int:
    """What the echo model counts for a request: the words of every item's text, and of the instructions."""
    texts = [str(i.get("content") or i.get("arguments") or i.get("output") or "") for i in body["input"]]
    return sum(len(t.split()) for t in [*texts, body.get("instructions") or ""])


def agent_calls(model: EchoModel) -> list[dict[str, Any]]:
    """The agent's own model calls (summary calls carry the summarization prompt as instructions)."""
    return [b for b in model.responses_requests() if b.get("instructions") == INSTRUCTIONS]


async def chat(agent: Any, session: Any, turns: range, *, stream: bool) -> None:
    for turn in turns:
        if stream:
            await agent.run(hundred_words(turn), session=session, stream=True).get_final_response()
        else:
            await agent.run(hundred_words(turn), session=session)


@pytest.mark.parametrize("stream", [False, True])
async def test_a_long_chat_is_sent_as_a_summary_and_the_last_turns(
    client: OpenAIResponsesClient, model: EchoModel, stream: bool
):
    agent = client.as_agent(instructions=INSTRUCTIONS, compaction_strategy=composed())
    session = agent.create_session()
    await chat(agent, session, range(30), stream=stream)

    state = session.state[COMPACTION_STATE_KEY]
    assert state.summary
    assert state.first_kept > 0
    assert state.summary_calls >= 1
    calls = agent_calls(model)
    assert len(calls) == 30
    assert len(model.responses_requests()) == 30 + state.summary_calls  # every other call made a summary
    last = calls[-1]
    first = last["input"][0]
    assert first["role"] == "assistant"
    assert first["content"].startswith(SUMMARY_PREFIX)
    seen = user_texts(last)
    assert seen == [hundred_words(t) for t in range(30 - len(seen), 30)]  # the last turns, whole and in order
    assert len(seen) < 30
    assert len(session.state["in_memory"]["messages"]) == 60  # the stored history keeps everything
    assert max(echo_tokens(body) for body in calls) <= 2_000  # within the budget, in the model's own count


async def test_streamed_and_non_streamed_turns_compact_the_same(client: OpenAIResponsesClient, model: EchoModel):
    sent = []
    for stream in (False, True):
        model.reset()
        agent = client.as_agent(instructions=INSTRUCTIONS, compaction_strategy=composed())
        await chat(agent, agent.create_session(), range(20), stream=stream)
        sent.append([json.dumps([(i.get("role"), i.get("content")) for i in b["input"]]) for b in agent_calls(model)])
    assert sent[0] == sent[1]
    assert any(json.dumps(SUMMARY_PREFIX)[1:-1] in s for s in sent[0])  # they did compact


async def test_the_estimate_is_calibrated_by_the_reported_input_tokens(client: OpenAIResponsesClient, model: EchoModel):
    agent = client.as_agent(instructions=INSTRUCTIONS, compaction_strategy=SlidingWindowStrategy(max_tokens=5_000))
    session = agent.create_session()
    response = await agent.run(hundred_words(0), session=session)
    [body] = model.responses_requests()
    estimated = estimate_instructions_tokens(body["instructions"]) + estimate_items_tokens(body["input"])
    ratio = response.usage.input_token_count / estimated
    assert session.state[COMPACTION_STATE_KEY].token_ratio == pytest.approx(ratio)
    assert ratio < 1  # the echo model counts words, longer than 4 characters: its tokens are fewer


async def test_a_per_run_strategy_replaces_the_agents(client: OpenAIResponsesClient, model: EchoModel):
    agent = client.as_agent(instructions=INSTRUCTIONS, compaction_strategy=SlidingWindowStrategy(max_tokens=100_000))
    session = agent.create_session()
    await chat(agent, session, range(6), stream=False)
    assert len(user_texts(model.responses_requests()[-1])) == 6  # the agent's budget sends everything
    await agent.run("short", session=session, compaction_strategy=SlidingWindowStrategy(max_tokens=400))
    body = model.responses_requests()[-1]
    assert user_texts(body)[-1] == "short"
    assert len(user_texts(body)) < 7


@pytest.mark.parametrize(
    ("strategy", "error"),
    [(object(), AgentInputError), (SlidingWindowStrategy(), ConfigurationError)],
    ids=["not-a-strategy", "no-budget"],
)
def test_a_strategy_that_cannot_compact_is_refused_by_the_agent(
    client: OpenAIResponsesClient, strategy: Any, error: type[Exception]
):
    with pytest.raises(error):
        client.as_agent(compaction_strategy=strategy)


async def test_service_sessions_refuse_a_per_run_strategy(client: OpenAIResponsesClient, model: EchoModel):
    agent = client.as_agent()
    session = await agent.create_service_session()
    with pytest.raises(AgentInputError, match="compaction_strategy"):
        await agent.run("hi", session=session, compaction_strategy=SlidingWindowStrategy(max_tokens=100))
    assert len(model.responses_requests()) == 0


async def test_old_tool_results_are_sent_as_stubs(client: OpenAIResponsesClient, model: EchoModel):
    @tool
    def fetch(page: str) -> str:
        """Fetch a page."""
        return f"page {page}: " + "lorem ipsum " * 300

    strategy = ToolResultCompactionStrategy(max_tokens=2_500, keep_last_turns=1)
    agent = client.as_agent(tools=[fetch], compaction_strategy=strategy)
    session = agent.create_session()
    for page in range(4):
        await agent.run(f"fetch({page})", session=session)
    last = model.responses_requests()[-1]
    outputs = [i["output"] for i in last["input"] if i["type"] == "function_call_output"]
    assert len(outputs) == 4
    assert outputs[-1].startswith("page 3: lorem")  # this turn's result is whole
    assert any(o.startswith("[tool result compacted") for o in outputs[:-1])
    calls = {i["call_id"] for i in last["input"] if i["type"] == "function_call"}
    assert calls == {i["call_id"] for i in last["input"] if i["type"] == "function_call_output"}


WINDOW = 3_000  # the echo model's context window, in its tokens (words)


async def test_a_chat_that_died_at_the_window_goes_on_with_compaction(client: OpenAIResponsesClient, model: EchoModel):
    model.context_window = WINDOW
    plain = client.as_agent(instructions=INSTRUCTIONS)
    with pytest.raises(ModelBadRequestError) as info:
        await chat(plain, plain.create_session(), range(30), stream=False)
    assert info.value.code == "context_length_exceeded"
    died_at = len(agent_calls(model))
    assert died_at < 30

    model.reset()
    model.context_window = WINDOW
    agent = client.as_agent(instructions=INSTRUCTIONS, compaction_strategy=composed())
    session = agent.create_session()
    await chat(agent, session, range(30), stream=False)
    calls = agent_calls(model)
    assert len(calls) == 30  # every turn answered at the first attempt, well past where the plain chat died
    last = calls[-1]
    assert last["input"][0]["content"].startswith(SUMMARY_PREFIX)
    assert user_texts(last)[-1] == hundred_words(29)


async def test_context_length_exceeded_compacts_harder_and_retries_once(
    client: OpenAIResponsesClient, model: EchoModel
):
    # The budget is above the model's real window (a misconfiguration): the model refuses, the run retries.
    agent = client.as_agent(instructions=INSTRUCTIONS, compaction_strategy=SlidingWindowStrategy(max_tokens=20_000))
    session = agent.create_session()
    await chat(agent, session, range(8), stream=False)
    model.reset()
    model.context_window = 2_500  # under what 9 turns send, over half of it
    response = await agent.run(hundred_words(8), session=session)
    first, retry = model.responses_requests()
    assert len(user_texts(retry)) < len(user_texts(first))
    assert user_texts(retry)[-1] == hundred_words(8)
    assert response.text
    assert session.state[COMPACTION_STATE_KEY].first_kept > 0


@pytest.mark.parametrize("stream", [False, True])
async def test_a_turn_that_cannot_fit_fails_after_one_retry_and_changes_nothing(
    client: OpenAIResponsesClient, model: EchoModel, stream: bool
):
    agent = client.as_agent(instructions=INSTRUCTIONS, compaction_strategy=SlidingWindowStrategy(max_tokens=2_000))
    session = agent.create_session()
    await chat(agent, session, range(3), stream=False)
    before = json.dumps(session.to_dict())
    model.reset()
    model.context_window = 50  # the new message alone is longer
    with pytest.raises(ModelBadRequestError) as info:
        await chat(agent, session, range(3, 4), stream=stream)
    assert info.value.code == "context_length_exceeded"
    assert len(model.responses_requests()) == 2  # the call and one retry, no more
    assert json.dumps(session.to_dict()) == before
