"""Compaction strategies, property-based: over random histories of text, tool calls, results and approvals,
every strategy sends a valid Responses input made of whole turns, within budget whenever that is possible,
and its state (the summary included) survives the session's serialization."""

from __future__ import annotations

import json
import math
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, replace

import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from agent_core import AgentSession, Content, Message
from agent_core.compaction import (
    COMPACTION_STATE_KEY,
    SUMMARY_MESSAGE_ID,
    BudgetStrategy,
    ClientSummarizer,
    CompactionRequest,
    CompactionResult,
    CompactionState,
    SlidingWindowStrategy,
    SummarizationStrategy,
    TokenBudgetComposedStrategy,
    ToolResultCompactionStrategy,
    compact_harder,
    stub_message,
    turn_starts,
)
from agent_core.exceptions import CompactionError, ConfigurationError
from agent_core.items import to_input_items
from agent_core.openai import OpenAIResponsesClient
from agent_core.tokens import estimate_instructions_tokens, estimate_items_tokens, estimate_message_tokens
from devtools.echo_model import EchoModelServer

WORDS = ["alpha", "boots", "hiking", "order", "size", "weather", "refund", "tent", "42", "yes", "Paris", "blue"]
STUB_MARK = "[tool result compacted:"


@dataclass
class Conversation:
    """A generated history and where its turns start (the oracle the strategies are checked against)."""

    messages: list[Message]
    starts: list[int]
    instructions: str

    def prefix(self, turns: int) -> list[Message]:
        end = self.starts[turns] if turns < len(self.starts) else len(self.messages)
        return self.messages[:end]


def _text(draw: st.DrawFn, max_words: int) -> str:
    """Up to `max_words` words: a short drawn phrase repeated (lengths spread evenly, not mostly tiny)."""
    count = draw(st.integers(0, max_words))
    phrase = draw(st.lists(st.sampled_from(WORDS), min_size=1, max_size=4))
    return " ".join((phrase * (count // len(phrase) + 1))[:count])


@st.composite
def conversations(draw: st.DrawFn) -> Conversation:
    """Turns of: a user message, tool rounds (calls, sometimes gated by an approval the user answers with
    text, then their results), and an optional final answer. Every call gets its output."""
    messages: list[Message] = []
    starts: list[int] = []
    calls = 0
    for _ in range(draw(st.integers(1, 10))):
        starts.append(len(messages))
        messages.append(Message("user", text=_text(draw, 60)))
        for _ in range(draw(st.integers(0, 3))):
            batch = [
                Content.from_function_call(f"call_{calls + i}", draw(st.sampled_from(["search", "weather"])), "{}")
                for i in range(draw(st.integers(1, 3)))
            ]
            calls += len(batch)
            gated = draw(st.booleans())
            contents = [*batch, *(Content.from_function_approval_request(c) for c in batch)] if gated else batch
            messages.append(Message("assistant", contents, text=_text(draw, 10) or None))
            if gated and draw(st.booleans()):
                messages.append(Message("user", text="approved, go ahead " + _text(draw, 10)))
            results = [Content.from_function_result(c.call_id or "", _text(draw, 300), name=c.name) for c in batch]
            messages.append(Message("tool", results))
        if draw(st.booleans()):
            messages.append(Message("assistant", text=_text(draw, 80)))
    return Conversation(messages, starts, _text(draw, 80))


def reported_tokens(result: CompactionResult, instructions: str) -> int:
    """What a model whose tokens are words would report (the echo model's rule), to calibrate against."""
    texts = [str(v) for item in to_input_items(result.messages) for k, v in item.items() if k != "type"]
    return sum(len(t.split()) for t in [*texts, instructions])


def assert_valid_input(messages: list[Message]) -> None:
    """No function_call_output without an earlier call, no call without its output."""
    calls: set[str] = set()
    answered: set[str] = set()
    for item in to_input_items(messages):
        if item["type"] == "function_call":
            calls.add(item["call_id"])
        elif item["type"] == "function_call_output":
            assert item["call_id"] in calls, f"orphan output {item['call_id']}"
            answered.add(item["call_id"])
    assert calls == answered, f"calls without output: {sorted(calls - answered)}"


def kept_part(result: CompactionResult) -> list[Message]:
    if result.state.summary is not None:
        assert result.messages[0].message_id == SUMMARY_MESSAGE_ID  # the summary goes first
        assert result.state.summary in result.messages[0].text
        return result.messages[1:]
    assert all(m.message_id != SUMMARY_MESSAGE_ID for m in result.messages)
    return result.messages


def assert_whole_turns(result: CompactionResult, conv: Conversation, sent: list[Message]) -> int:
    """The kept messages are the history from a turn start on, with some tool results stubbed; returns the start."""
    kept = kept_part(result)
    start = len(sent) - len(kept)
    assert start == result.state.first_kept
    assert start in conv.starts
    for index, (mine, original) in enumerate(zip(kept, sent[start:], strict=True), start):
        if mine == original:
            continue
        assert index < result.state.stubbed_through
        assert mine.role == original.role
        for c, o in zip(mine.contents, original.contents, strict=True):
            assert c.model_copy(update={"result": o.result}) == o  # same call id, name and type
            assert c.result == o.result or (c.result or "").startswith(STUB_MARK)
            assert len(c.result or "") <= len(o.result or "")
    return start


def roundtrip(state: CompactionState) -> CompactionState:
    session = AgentSession(state={COMPACTION_STATE_KEY: state, "other": [1, "x"]})
    restored = AgentSession.from_dict(json.loads(json.dumps(session.to_dict())))
    assert restored.state["other"] == [1, "x"]
    return CompactionState.of(restored.state)


@pytest.fixture(scope="module")
async def summarizer(model_server: EchoModelServer) -> AsyncIterator[ClientSummarizer]:
    """Summaries come from the echo model over real HTTP (its recap of the transcript it was given)."""
    client = OpenAIResponsesClient(model="echo-1", api_key="test-key", base_url=model_server.base_url, max_retries=0)
    yield ClientSummarizer(client)
    await client.close()


STRATEGIES: dict[str, Callable[[int], BudgetStrategy]] = {
    "sliding": lambda budget: SlidingWindowStrategy(max_tokens=budget),
    "tool_results": lambda budget: ToolResultCompactionStrategy(max_tokens=budget),
    "summarization": lambda budget: SummarizationStrategy(max_tokens=budget),
    "composed": lambda budget: TokenBudgetComposedStrategy(
        token_budget=budget, strategies=[ToolResultCompactionStrategy(), SummarizationStrategy()]
    ),
}

SLOW_MACHINE = [HealthCheck.too_slow, HealthCheck.data_too_large]  # a loaded CI machine is no test failure
property_settings = settings(
    max_examples=30, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture, *SLOW_MACHINE]
)


@settings(max_examples=50, deadline=None, suppress_health_check=SLOW_MACHINE)
@given(conv=conversations())
def test_turn_starts_are_user_messages_outside_call_spans(conv: Conversation):
    assert turn_starts(conv.messages) == conv.starts


@pytest.mark.parametrize("name", list(STRATEGIES))
@property_settings
@given(conv=conversations(), budget=st.integers(150, 2_000))
async def test_every_turn_sends_valid_whole_turns_within_budget(
    name: str, conv: Conversation, budget: int, summarizer: ClientSummarizer
):
    """A conversation replayed turn by turn, the state carried (through JSON) from each turn to the next."""
    strategy = STRATEGIES[name](budget)
    state = CompactionState()
    for turn in range(1, len(conv.starts) + 1):
        sent = conv.prefix(turn)
        request = CompactionRequest(
            sent, state, instructions=conv.instructions, protected_from=conv.starts[turn - 1], summarizer=summarizer
        )
        result = await strategy.compact(request)

        assert_valid_input(result.messages)
        start = assert_whole_turns(result, conv, sent)
        event("window moved" if start > state.first_kept else "window kept")
        event("summary sent" if result.state.summary else "no summary")
        event(
            "results stubbed"
            if any(STUB_MARK in (c.result or "") for m in result.messages for c in m.contents)
            else "no stubs"
        )
        event("over budget (minimal)" if result.tokens > budget else "within budget")
        assert start >= state.first_kept  # the window only moves forward
        estimated = estimate_instructions_tokens(conv.instructions) + estimate_items_tokens(
            to_input_items(result.messages)
        )
        assert result.estimated_tokens == estimated
        assert result.tokens == math.ceil(estimated * state.token_ratio)
        if result.tokens > budget:  # only allowed when nothing more may go
            if name == "tool_results":
                assert_long_results_stubbed(result, sent, before=conv.starts[turn - 1])
            else:
                assert start == conv.starts[turn - 1]
        as_is = await SlidingWindowStrategy(max_tokens=10**9).compact(replace(request, summarizer=None))
        if as_is.tokens <= budget:  # hysteresis: nothing changes while the conversation fits
            assert not result.changed
            assert result.messages == as_is.messages
        if result.state.summary is not None:
            assert result.state.summarized_through <= result.state.first_kept
            assert estimate_message_tokens(result.messages[0]) <= summary_limit(strategy)

        # what a store that loads only the window (from first_kept on) gets is the same
        windowed = await strategy.compact(
            CompactionRequest(
                sent[state.first_kept :],
                state,
                start=state.first_kept,
                instructions=conv.instructions,
                protected_from=conv.starts[turn - 1],
                summarizer=summarizer,
            )
        )
        assert windowed.messages == result.messages
        assert windowed.state == result.state

        state = roundtrip(result.state.calibrated(result.estimated_tokens, reported_tokens(result, conv.instructions)))
        assert state.token_ratio > 0


def summary_limit(strategy: BudgetStrategy) -> int:
    assert strategy.compact_to is not None
    inner = [s for s in getattr(strategy, "strategies", [strategy]) if isinstance(s, SummarizationStrategy)]
    return inner[0].summary_limit(strategy.compact_to)


def assert_long_results_stubbed(result: CompactionResult, sent: list[Message], *, before: int) -> None:
    """Over budget with only tool-result compaction: every result before the last turn that a stub
    would shorten is a stub."""
    kept = kept_part(result)
    start = len(sent) - len(kept)
    for index in range(start, before):
        if stub_message(sent[index]) is not None:
            assert kept[index - start] == stub_message(sent[index])


@property_settings
@given(conv=conversations(), budget=st.integers(150, 2_000))
async def test_compacting_harder_sends_less(conv: Conversation, budget: int):
    strategy = TokenBudgetComposedStrategy(token_budget=budget, strategies=[ToolResultCompactionStrategy()])
    request = CompactionRequest(conv.messages, instructions=conv.instructions, protected_from=conv.starts[-1])
    normal = await strategy.compact(request)
    harder = await compact_harder(strategy, replace(request, state=normal.state))
    assert_valid_input(harder.messages)
    minimal = await SlidingWindowStrategy(max_tokens=1).compact(request)  # only the protected turn is left
    if normal.tokens > minimal.tokens:
        assert harder.tokens <= max(minimal.tokens, normal.tokens // 2)
        assert harder.tokens < normal.tokens
    assert harder.state.first_kept >= normal.state.first_kept


@settings(deadline=None, suppress_health_check=SLOW_MACHINE)
@given(
    summary=st.text(max_size=2_000),
    first_kept=st.integers(0, 10_000),
    ratio=st.floats(0.1, 10.0),
    calls=st.integers(0, 1_000),
)
def test_state_survives_session_serialization(summary: str, first_kept: int, ratio: float, calls: int):
    state = CompactionState(
        summary=summary,
        summarized_through=first_kept // 2,
        first_kept=first_kept,
        stubbed_through=first_kept,
        token_ratio=ratio,
        summary_calls=calls,
    )
    assert roundtrip(state) == state


async def test_no_change_while_within_budget():
    conv = [Message("user", text="hello there"), Message("assistant", text="hi")]
    result = await SlidingWindowStrategy(max_tokens=1_000).compact(CompactionRequest(conv, instructions="Be brief."))
    assert result.messages == conv
    assert not result.changed
    assert result.state == CompactionState()


async def test_summarization_keeps_a_summary_of_what_left(summarizer: ClientSummarizer, model_server: EchoModelServer):
    turns = [
        [Message("user", text=f"fact number {i} is {WORDS[i % len(WORDS)]} " * 5), Message("assistant", text="noted")]
        for i in range(12)
    ]
    history = [m for t in turns for m in t]
    model_server.model.reset()
    strategy = SummarizationStrategy(max_tokens=400, max_summary_tokens=100)
    result = await strategy.compact(CompactionRequest(history, summarizer=summarizer, protected_from=len(history) - 2))
    assert result.state.summary is not None
    assert "fact number 0" in result.state.summary  # the echo model recaps the transcript it summarized
    assert result.state.summary_calls == len(model_server.model.responses_requests()) >= 1
    assert result.tokens <= 400
    assert result.messages[-2:] == history[-2:]


@pytest.mark.parametrize(
    ("make", "error"),
    [
        (lambda: SlidingWindowStrategy(max_tokens=0), ValueError),
        (lambda: SlidingWindowStrategy(max_tokens=100, compact_to=200), ValueError),
        (lambda: ToolResultCompactionStrategy(max_tokens=100, keep_last_turns=-1), ValueError),
        (lambda: SummarizationStrategy(max_tokens=100, max_summary_tokens=80), ValueError),
        (
            lambda: TokenBudgetComposedStrategy(token_budget=100, strategies=[SlidingWindowStrategy(max_tokens=50)]),
            ValueError,
        ),
    ],
)
def test_bad_settings_are_refused(make: Callable[[], object], error: type[Exception]):
    with pytest.raises(error):
        make()


async def test_a_strategy_without_budget_or_summarizer_is_a_configuration_error():
    history = [Message("user", text="a " * 400), Message("assistant", text="b"), Message("user", text="c")]
    with pytest.raises(ConfigurationError, match="max_tokens"):
        await ToolResultCompactionStrategy().compact(CompactionRequest(history))
    with pytest.raises(ConfigurationError, match="summarizer"):
        await SummarizationStrategy(max_tokens=60).compact(CompactionRequest(history))


async def test_a_window_that_does_not_cover_the_state_is_refused():
    state = CompactionState(first_kept=5)
    with pytest.raises(CompactionError, match="from message 5"):
        await SlidingWindowStrategy(max_tokens=100).compact(
            CompactionRequest([Message("user", text="x")], state, start=6)
        )
