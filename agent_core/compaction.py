"""Compaction: keep what a long conversation sends to the model within a token budget.

A strategy takes the conversation (the stored history, then this run's input and new messages), the
instructions and whatever else every call sends, and the session's `CompactionState`; it answers with
the messages to send and the next state. Names follow Microsoft Agent Framework 1.x where the idea is
the same (`SlidingWindowStrategy`, `ToolResultCompactionStrategy`, `SummarizationStrategy`,
`TokenBudgetComposedStrategy`, `compaction_strategy=`); the behaviour is this project's own:

- The conversation is cut into **turns**: a turn starts at a user message, unless that message falls
  between a function call and its output (a user who types while approving a call), so dropping whole
  turns never separates a call from its output. The turn holding this run's first message and every
  later one are never dropped, and instructions are never dropped: they count against the budget.
- **Monotonic**: what left the window stays out (`first_kept` only moves forward) and a result once
  stubbed stays stubbed. The prefix sent to the model changes only when compaction runs, which keeps
  the service's prompt cache useful and lets a store read only the window (from `first_kept` on).
- **Hysteresis**: nothing changes until the estimate exceeds `max_tokens`; then the strategy compacts
  down to `compact_to` (default 60% of the budget), so compaction (and any summary call) happens once
  every several turns rather than on every turn.
- Token counts are `agent_core.tokens` estimates times the state's `token_ratio`, which the run sets
  from the `input_tokens` the model reported for the previous call (`CompactionState.calibrated`).
"""

from __future__ import annotations

import math
from abc import ABC, abstractmethod
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from itertools import pairwise
from typing import Any, Final, Protocol, runtime_checkable

from pydantic import BaseModel, ConfigDict, Field

from .exceptions import AgentInputError, CompactionError, ConfigurationError, ModelBadRequestError
from .items import to_input_items
from .messages import Content, Message
from .model_api import InputItem, ModelClient, ModelRequest, UsageDetails
from .sessions import register_state_type
from .tokens import (
    CHARS_PER_TOKEN,
    ITEM_OVERHEAD_TOKENS,
    calibration_ratio,
    estimate_instructions_tokens,
    estimate_items_tokens,
    estimate_message_tokens,
    estimate_tools_tokens,
)
from .tools import FunctionTool

__all__ = [
    "COMPACTION_STATE_KEY",
    "DEFAULT_COMPACT_TO",
    "HISTORY_START_KEY",
    "SUMMARY_MESSAGE_ID",
    "BudgetStrategy",
    "ClientSummarizer",
    "CompactionRequest",
    "CompactionResult",
    "CompactionState",
    "CompactionStrategy",
    "CompactionWindow",
    "RunCompaction",
    "SlidingWindowStrategy",
    "SummarizationStrategy",
    "Summarizer",
    "TokenBudgetComposedStrategy",
    "ToolResultCompactionStrategy",
    "check_strategy",
    "compact_harder",
    "is_context_length_exceeded",
    "stub_message",
    "turn_starts",
]

COMPACTION_STATE_KEY = "compaction"
"""`session.state[COMPACTION_STATE_KEY]` holds the session's `CompactionState` (reserved, like "approvals")."""

HISTORY_START_KEY = "compaction.history_start"
"""`context.metadata[HISTORY_START_KEY]`: a history provider that loads only the window (the stored messages from
`CompactionState.first_kept` on) sets it to the index of the first message it loaded; absent means 0."""

DEFAULT_COMPACT_TO = 0.6
"""Fraction of `max_tokens` a strategy compacts down to once the budget is exceeded."""

HARDER_FACTOR = 0.5
"""`compact_harder` aims at this fraction of what a normal compaction aims at (or of what was sent)."""

CONTEXT_LENGTH_EXCEEDED = "context_length_exceeded"
"""The error code OpenAI and Azure OpenAI answer an over-long input with (HTTP 400)."""

SUMMARY_MESSAGE_ID = "compaction-summary"
SUMMARY_PREFIX = "Summary of the earlier conversation:\n"
SUMMARY_ROLE: Final = "assistant"
MIN_SUMMARY_TOKENS = 32
DEFAULT_SUMMARY_INPUT_TOKENS = 8_000
"""Largest transcript (estimated tokens) sent in one summary call; longer ones are summarized in pieces."""

STUB_PREVIEW_CHARS = 80
"""How much of a compacted tool result its stub still shows."""

TRANSCRIPT_PART_CHARS = 2_000
"""Longest text of one message part in a summary transcript (a huge tool result is cut to this)."""

DEFAULT_SUMMARIZATION_PROMPT = (
    "You keep a running summary of a conversation for the assistant that continues it. Merge the previous "
    "summary (if any) and the new part of the conversation into one summary that replaces the previous one. "
    "Keep what later turns may need: the user's goals, facts and preferences they stated, decisions made, "
    "tool results that matter, and open questions. Write plain sentences, at most {max_words} words, and "
    "answer with the summary only."
)


class CompactionState(BaseModel):
    """What compaction remembers between turns; lives in `session.state[COMPACTION_STATE_KEY]`.

    Indices count the messages of the stored history (oldest first, from 0), so a store can load only the
    messages from `first_kept` on and pass `start=first_kept` in the `CompactionRequest`.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    summary: str | None = None
    """The running summary of what left the window (it goes first in what the model sees)."""
    summarized_through: int = Field(default=0, ge=0)
    """Messages before this index are covered by `summary`."""
    first_kept: int = Field(default=0, ge=0)
    """The first message still sent (always a turn start); earlier ones are no longer loaded or sent."""
    stubbed_through: int = Field(default=0, ge=0)
    """Tool results in messages before this index are sent as short stubs."""
    token_ratio: float = Field(default=1.0, gt=0)
    """Model-reported input tokens per estimated token, from the last model call."""
    summary_calls: int = Field(default=0, ge=0)
    """Model calls spent on summaries in this session so far."""

    def calibrated(self, estimated_tokens: int, reported_input_tokens: int) -> CompactionState:
        """This state with `token_ratio` learnt from one call: what we estimated and what the model counted."""
        ratio = calibration_ratio(estimated_tokens, reported_input_tokens)
        return self if ratio is None else self.model_copy(update={"token_ratio": ratio})

    @classmethod
    def of(cls, state: Mapping[str, Any]) -> CompactionState:
        """The compaction state kept in a session's state dict (a fresh one if there is none yet)."""
        value = state.get(COMPACTION_STATE_KEY)
        if value is None:
            return cls()
        if not isinstance(value, cls):
            raise CompactionError(f"session.state[{COMPACTION_STATE_KEY!r}] is reserved for a CompactionState")
        return value


register_state_type(CompactionState, "agent_core.CompactionState")


class Summarizer(Protocol):
    """Folds messages leaving the window into the running summary: `(previous, messages, max_tokens) -> text`."""

    async def __call__(self, previous_summary: str | None, messages: Sequence[Message], *, max_tokens: int) -> str: ...


@dataclass(frozen=True)
class CompactionRequest:
    """One compaction: the conversation as loaded, the session's compaction state, and what else is sent."""

    messages: Sequence[Message]
    """The conversation from message index `start` on: stored history, then this run's input and new messages."""
    state: CompactionState = field(default_factory=CompactionState)
    start: int = 0
    """Index of `messages[0]` in the stored history; a store that loads only the window passes `first_kept`."""
    instructions: str | None = None
    fixed_tokens: int = 0
    """Estimated tokens of everything else sent with every call (tool schemas, other providers' messages)."""
    protected_from: int | None = None
    """Index of this run's first message: its turn and everything after it are always kept (default: last turn)."""
    summarizer: Summarizer | None = None
    """Used by summarization strategies that were not given their own (the agent passes its client)."""
    harder: bool = False
    """Compact beyond the usual target: the model answered `context_length_exceeded` to the last attempt."""


@dataclass(frozen=True)
class CompactionResult:
    """What to send (the summary message first, if any, then the kept turns) and the next state."""

    messages: list[Message]
    state: CompactionState
    tokens: int
    """Calibrated estimate of everything sent: instructions, fixed tokens and `messages`."""
    estimated_tokens: int
    """The same before calibration: pass it to `CompactionState.calibrated` with the model's `input_tokens`."""
    changed: bool
    """Whether this compaction moved the window, the stubs or the summary."""


@runtime_checkable
class CompactionStrategy(Protocol):
    """Anything with `async compact(request) -> CompactionResult` can be an agent's `compaction_strategy`."""

    async def compact(self, request: CompactionRequest) -> CompactionResult: ...


def is_context_length_exceeded(error: BaseException) -> bool:
    """Whether the model refused the input as longer than its context window."""
    return isinstance(error, ModelBadRequestError) and error.code == CONTEXT_LENGTH_EXCEEDED


async def compact_harder(strategy: CompactionStrategy, request: CompactionRequest) -> CompactionResult:
    """Compact beyond the usual target, for a retry after the model answered `context_length_exceeded`."""
    return await strategy.compact(replace(request, harder=True))


def turn_starts(messages: Sequence[Message]) -> list[int]:
    """Indices where a turn begins: 0, and every user message that is not between a call and its output."""
    calls: dict[str, int] = {}
    inside = [0] * (len(messages) + 1)  # +1 where a call/output span opens, -1 after it closes
    for j, message in enumerate(messages):
        for c in message.contents:
            if c.type == "function_call" and c.call_id is not None:
                calls.setdefault(c.call_id, j)
            elif c.type == "function_result" and c.call_id in calls:
                i = calls[c.call_id]
                if i < j:
                    inside[i + 1] += 1
                    inside[j + 1] -= 1
    starts: list[int] = []
    depth = 0
    for j, message in enumerate(messages):
        depth += inside[j]
        if j == 0 or (message.role == "user" and depth == 0):
            starts.append(j)
    return starts


def summary_message(summary: str) -> Message:
    """How the summary is sent: one assistant message, first in the input."""
    return Message(SUMMARY_ROLE, text=SUMMARY_PREFIX + summary, message_id=SUMMARY_MESSAGE_ID)


def clamp_summary(summary: str, max_tokens: int) -> str:
    """The summary cut (with an ellipsis) so that its message estimates at most `max_tokens`."""
    chars = (max_tokens - ITEM_OVERHEAD_TOKENS) * CHARS_PER_TOKEN - len(SUMMARY_ROLE) - len(SUMMARY_PREFIX)
    return summary if len(summary) <= chars else summary[: max(0, chars - 1)] + "…"


def stub_message(message: Message) -> Message | None:
    """The message with its long tool results replaced by stubs that keep the call id; None if none is long."""
    contents: list[Content] = []
    changed = False
    for c in message.contents:
        result = c.result or ""
        stub = f"[tool result compacted: {len(result)} characters; it began: {result[:STUB_PREVIEW_CHARS]}]"
        if c.type == "function_result" and len(stub) < len(result):
            contents.append(c.model_copy(update={"result": stub}))
            changed = True
        else:
            contents.append(c)
    if not changed:
        return None
    return Message(message.role, contents, author_name=message.author_name, message_id=message.message_id)


class CompactionWindow:
    """The working set of one compaction: the kept turns, stubs and summary, with running token counts.

    Strategies change it only through `drop_before`, `stub_through` and `set_summary`, which keep the
    window valid: it starts at a turn, stubs keep call ids, and the protected turns stay.
    """

    def __init__(self, request: CompactionRequest) -> None:
        state = request.state
        end = request.start + len(request.messages)
        if not request.start <= state.first_kept <= end:
            raise CompactionError(
                f"the compaction window starts at message {state.first_kept}, but the messages given cover "
                f"{request.start}..{end}: load the history from message {state.first_kept} on"
            )
        self.state = state
        self.summarizer = request.summarizer
        self.end = end
        self.base = state.first_kept  # absolute index of self._messages[0]
        self._messages = list(request.messages[state.first_kept - request.start :])
        self.first_kept = state.first_kept
        self.stubbed_through = state.stubbed_through
        self.summary = state.summary
        self.summarized_through = state.summarized_through
        self.summary_calls = state.summary_calls
        self.fixed_tokens = estimate_instructions_tokens(request.instructions) + request.fixed_tokens
        self._raw = [estimate_message_tokens(m) for m in self._messages]
        self._stubs: dict[int, tuple[Message, int] | None] = {}
        self.turn_starts = [self.base + i for i in turn_starts(self._messages)]
        protected = end if request.protected_from is None else max(request.protected_from, self.base)
        if self.turn_starts:
            protected = min(protected, self.turn_starts[-1])
        self.protected_start = max((s for s in self.turn_starts if s <= protected), default=end)
        self._kept = sum(self._sent_tokens(i) for i in range(self.first_kept, end))

    # --- counts ------------------------------------------------------------------------------------

    def _stub(self, index: int) -> tuple[Message, int] | None:
        if index not in self._stubs:
            stub = stub_message(self._messages[index - self.base])
            self._stubs[index] = None if stub is None else (stub, estimate_message_tokens(stub))
        return self._stubs[index]

    def _sent(self, index: int) -> tuple[Message, int]:
        """The message as it is sent now (stubbed or not) and its estimated tokens."""
        stub = self._stub(index) if index < self.stubbed_through else None
        return stub if stub is not None else (self._messages[index - self.base], self._raw[index - self.base])

    def _sent_tokens(self, index: int) -> int:
        return self._sent(index)[1]

    def summary_tokens(self) -> int:
        return estimate_message_tokens(summary_message(self.summary)) if self.summary else 0

    def estimated_tokens(self) -> int:
        """Uncalibrated estimate of what would be sent now."""
        return self.fixed_tokens + self.summary_tokens() + self._kept

    def tokens(self) -> int:
        """Calibrated estimate of what would be sent now."""
        return self.calibrate(self.estimated_tokens())

    def calibrate(self, estimated: int) -> int:
        return math.ceil(estimated * self.state.token_ratio)

    # --- what strategies may change ----------------------------------------------------------------

    def droppable_turns(self) -> list[tuple[int, int]]:
        """The kept turns that may leave the window, oldest first, as (start, end) message indices."""
        bounds = [*self.turn_starts, self.end]
        return [(s, e) for s, e in pairwise(bounds) if s >= self.first_kept and e <= self.protected_start]

    def start_for(self, target: int, *, summary_tokens: int | None = None) -> int:
        """The earliest turn start from which the window fits `target` (else the protected turn's start).

        `summary_tokens` stands in for the summary's size (a summarization reserves its maximum).
        """
        summary = self.summary_tokens() if summary_tokens is None else summary_tokens
        kept = self._kept
        for start, end in self.droppable_turns():
            if self.calibrate(self.fixed_tokens + summary + kept) <= target:
                return start
            kept -= sum(self._sent_tokens(i) for i in range(start, end))
        return self.protected_start

    def drop_before(self, index: int) -> None:
        """Let every turn before `index` (a turn start, at most the protected turn's) leave the window."""
        if index <= self.first_kept:
            return
        if index not in self.turn_starts or index > self.protected_start:
            raise CompactionError(f"message {index} is not a turn start the window may move to")
        self._kept -= sum(self._sent_tokens(i) for i in range(self.first_kept, index))
        self.first_kept = index

    def stub_through(self, index: int) -> None:
        """Send the tool results of every message before `index` (at most the protected turn's start) as stubs."""
        index = min(index, self.protected_start)
        for i in range(max(self.stubbed_through, self.first_kept), index):
            before = self._sent_tokens(i)
            self.stubbed_through = i + 1
            self._kept -= before - self._sent_tokens(i)
        self.stubbed_through = max(self.stubbed_through, index)

    def messages_between(self, start: int, end: int) -> list[Message]:
        """The original (unstubbed) messages from `start` to `end` (within what was loaded)."""
        return self._messages[max(start, self.base) - self.base : end - self.base]

    def set_summary(self, summary: str, *, through: int) -> None:
        self.summary = summary
        self.summarized_through = max(self.summarized_through, through)

    # --- the answer --------------------------------------------------------------------------------

    def result(self) -> CompactionResult:
        kept = [self._sent(i)[0] for i in range(self.first_kept, self.end)]
        messages = [summary_message(self.summary), *kept] if self.summary else kept
        state = self.state.model_copy(
            update={
                "summary": self.summary,
                "summarized_through": self.summarized_through,
                "first_kept": self.first_kept,
                "stubbed_through": self.stubbed_through,
                "summary_calls": self.summary_calls,
            }
        )
        estimated = self.estimated_tokens()
        return CompactionResult(messages, state, self.calibrate(estimated), estimated, state != self.state)


class BudgetStrategy(ABC):
    """A strategy with a token budget: once the estimate exceeds `max_tokens`, `reduce` toward `compact_to`.

    Inside a `TokenBudgetComposedStrategy` a strategy takes the composition's budget and has none of its own.
    """

    def __init__(self, *, max_tokens: int | None = None, compact_to: int | None = None) -> None:
        if max_tokens is not None and max_tokens <= 0:
            raise ValueError("max_tokens must be greater than 0")
        if compact_to is not None and (max_tokens is None or not 0 < compact_to <= max_tokens):
            raise ValueError("compact_to needs max_tokens and must be in 1..max_tokens")
        self.max_tokens = max_tokens
        self.compact_to = compact_to if compact_to is not None else _default_target(max_tokens)

    def __repr__(self) -> str:
        return f"{type(self).__name__}(max_tokens={self.max_tokens!r}, compact_to={self.compact_to!r})"

    async def compact(self, request: CompactionRequest) -> CompactionResult:
        if self.max_tokens is None or self.compact_to is None:
            raise ConfigurationError(f"{type(self).__name__} needs max_tokens= when used on its own")
        window = CompactionWindow(request)
        limit, target = self.max_tokens, self.compact_to
        if request.harder:
            limit = target = int(min(target, window.tokens()) * HARDER_FACTOR)
        if window.tokens() > limit:
            await self.reduce(window, target)
        return window.result()

    @abstractmethod
    async def reduce(self, window: CompactionWindow, target: int) -> None:
        """Shrink `window` toward `target` calibrated tokens."""


def _default_target(max_tokens: int | None) -> int | None:
    return None if max_tokens is None else max(1, int(max_tokens * DEFAULT_COMPACT_TO))


class SlidingWindowStrategy(BudgetStrategy):
    """Drops the oldest whole turns until the conversation fits; the dropped turns are simply gone."""

    async def reduce(self, window: CompactionWindow, target: int) -> None:
        window.drop_before(window.start_for(target))


class ToolResultCompactionStrategy(BudgetStrategy):
    """Replaces old tool results (oldest turn first) with short stubs that keep the call id and a preview.

    The last `keep_last_turns` turns and the protected turns keep their results verbatim.
    """

    def __init__(self, *, max_tokens: int | None = None, compact_to: int | None = None, keep_last_turns: int = 1):
        super().__init__(max_tokens=max_tokens, compact_to=compact_to)
        if keep_last_turns < 0:
            raise ValueError("keep_last_turns must be 0 or more")
        self.keep_last_turns = keep_last_turns

    async def reduce(self, window: CompactionWindow, target: int) -> None:
        kept_turns = len([s for s in window.turn_starts if s >= window.first_kept])
        stubbable = window.droppable_turns()[: max(0, kept_turns - self.keep_last_turns)]
        for _, end in stubbable:
            if window.tokens() <= target:
                return
            window.stub_through(end)


class SummarizationStrategy(BudgetStrategy):
    """Summarizes the turns that leave the window into a running summary that goes first in the input.

    Each summary call gets the previous summary and the messages leaving (in pieces of at most
    `max_summary_input_tokens`) and answers with the new summary, which replaces the old: the summary is
    re-summarized as it grows and never exceeds `max_summary_tokens` (default a quarter of the target).
    `summarizer` defaults to the agent's own client (`ClientSummarizer`). Its output becomes part of every
    later request, so use a summarizer you trust as much as the model itself.
    """

    def __init__(
        self,
        *,
        max_tokens: int | None = None,
        compact_to: int | None = None,
        summarizer: Summarizer | None = None,
        max_summary_tokens: int | None = None,
        max_summary_input_tokens: int = DEFAULT_SUMMARY_INPUT_TOKENS,
    ) -> None:
        super().__init__(max_tokens=max_tokens, compact_to=compact_to)
        if max_summary_tokens is not None and max_summary_tokens < MIN_SUMMARY_TOKENS:
            raise ValueError(f"max_summary_tokens must be at least {MIN_SUMMARY_TOKENS}")
        if max_summary_tokens is not None and self.compact_to is not None and max_summary_tokens >= self.compact_to:
            raise ValueError("max_summary_tokens must leave room for the conversation: keep it below compact_to")
        if max_summary_input_tokens < MIN_SUMMARY_TOKENS:
            raise ValueError(f"max_summary_input_tokens must be at least {MIN_SUMMARY_TOKENS}")
        self.summarizer = summarizer
        self.max_summary_tokens = max_summary_tokens
        self.max_summary_input_tokens = max_summary_input_tokens

    def summary_limit(self, target: int) -> int:
        return self.max_summary_tokens or max(MIN_SUMMARY_TOKENS, target // 4)

    async def reduce(self, window: CompactionWindow, target: int) -> None:
        summarizer = self.summarizer or window.summarizer
        if summarizer is None:
            raise ConfigurationError("SummarizationStrategy needs a summarizer (an agent passes its own client)")
        limit = self.summary_limit(target)
        start = window.start_for(target, summary_tokens=limit)
        if start <= window.first_kept:
            return
        summary = window.summary
        for piece in _pieces(window.messages_between(window.first_kept, start), self.max_summary_input_tokens):
            text = (await summarizer(summary, piece, max_tokens=limit)).strip()
            window.summary_calls += 1
            summary = text or summary
        if summary:
            window.set_summary(clamp_summary(summary, limit), through=start)
        window.drop_before(start)


def _pieces(messages: Sequence[Message], max_tokens: int) -> list[list[Message]]:
    """Consecutive runs of messages of at most `max_tokens` estimated tokens each (a longer message alone)."""
    pieces: list[list[Message]] = []
    size = 0
    for message in messages:
        tokens = min(estimate_message_tokens(message), max_tokens)
        if not pieces or size + tokens > max_tokens:
            pieces.append([])
            size = 0
        pieces[-1].append(message)
        size += tokens
    return pieces


class TokenBudgetComposedStrategy(BudgetStrategy):
    """Runs `strategies` in order under one `token_budget` until the conversation fits `compact_to`.

    If they do not get there, the oldest turns are dropped (a sliding window) as a last resort. A typical
    composition stubs old tool results first (cheap), then summarizes:
    `TokenBudgetComposedStrategy(token_budget=N, strategies=[ToolResultCompactionStrategy(), SummarizationStrategy()])`.
    """

    def __init__(
        self, *, token_budget: int, strategies: Sequence[BudgetStrategy], compact_to: int | None = None
    ) -> None:
        super().__init__(max_tokens=token_budget, compact_to=compact_to)
        for strategy in strategies:
            if not isinstance(strategy, BudgetStrategy):
                raise TypeError(f"{strategy!r} cannot be composed: compose BudgetStrategy instances")
            if strategy.max_tokens is not None:
                raise ValueError(f"{strategy!r} has its own max_tokens: composed strategies use token_budget")
        self.strategies = list(strategies)

    @property
    def token_budget(self) -> int:
        assert self.max_tokens is not None
        return self.max_tokens

    async def reduce(self, window: CompactionWindow, target: int) -> None:
        for strategy in self.strategies:
            await strategy.reduce(window, target)
            if window.tokens() <= target:
                return
        window.drop_before(window.start_for(target))


class ClientSummarizer:
    """A `Summarizer` that asks a model: the agent's own client unless you give another one."""

    def __init__(
        self, client: ModelClient, *, prompt: str = DEFAULT_SUMMARIZATION_PROMPT, options: dict[str, Any] | None = None
    ) -> None:
        self.client = client
        self.prompt = prompt
        self.options = dict(options or {})

    async def __call__(self, previous_summary: str | None, messages: Sequence[Message], *, max_tokens: int) -> str:
        parts = [f"Previous summary:\n{previous_summary}\n"] if previous_summary else []
        parts.append("New part of the conversation:")
        parts.extend(transcript_line(m) for m in messages)
        request = ModelRequest(
            input=to_input_items([Message("user", text="\n".join(p for p in parts if p))]),
            instructions=self.prompt.format(max_words=max(1, max_tokens * 3 // 4)),
            options=self.options,
        )
        turn = await self.client.get_response(request)
        return turn.message.text


def transcript_line(message: Message) -> str:
    """One message as plain text for a summarizer (long parts cut to `TRANSCRIPT_PART_CHARS`)."""
    lines: list[str] = []
    speaker = "User" if message.role == "user" else "Assistant" if message.role == "assistant" else message.role
    for c in message.contents:
        if c.type == "text" and c.text:
            lines.append(f"{speaker}: {_cut(c.text)}")
        elif c.type == "function_call":
            lines.append(f"Assistant called {c.name}({_cut(c.arguments or '')})")
        elif c.type == "function_result":
            lines.append(f"Result of {c.name or 'the tool'}: {_cut(c.result or '')}")
    return "\n".join(lines)


def _cut(text: str) -> str:
    return text if len(text) <= TRANSCRIPT_PART_CHARS else text[:TRANSCRIPT_PART_CHARS] + "…"


class RunCompaction:
    """Compaction for one agent run: applied before each model call, calibrated by each call's usage.

    It compacts the history the history providers loaded (from message `history_start` of the stored
    history), then the run's input and new messages, the same way for streamed and non-streamed runs.
    Other providers' context messages are sent whole just before the input and count, like the
    instructions and tool schemas, as fixed tokens. The state goes to the run's working copy of
    `session.state`, so it is kept only if the run succeeds.
    """

    def __init__(
        self,
        strategy: CompactionStrategy,
        session_state: dict[str, Any],
        *,
        history: Sequence[Message],
        history_start: int,
        context_messages: Sequence[Message],
        inputs: Sequence[Message],
        instructions: str | None,
        tools: Sequence[FunctionTool],
        summarizer: Summarizer,
    ) -> None:
        if not isinstance(history_start, int) or history_start < 0:
            raise CompactionError(f"{HISTORY_START_KEY} must be a message index (an int from 0), got {history_start!r}")
        self.strategy = strategy
        self._session_state = session_state
        self._conversation = [*history, *inputs]
        self._start = history_start
        self._run_from = history_start + len(history)  # this run's first message
        self._inputs = len(inputs)
        self._context_items = to_input_items(context_messages)
        self._instructions = instructions
        self._fixed = estimate_tools_tokens(tools) + estimate_items_tokens(self._context_items)
        self._summarizer = summarizer
        self._last: CompactionResult | None = None
        self.state = CompactionState.of(session_state)

    async def input_items(self, new_messages: Sequence[Message], *, harder: bool = False) -> list[InputItem]:
        """The items for the next model call: the compacted conversation, with other context before the input."""
        request = CompactionRequest(
            [*self._conversation, *new_messages],
            self.state,
            start=self._start,
            instructions=self._instructions,
            fixed_tokens=self._fixed,
            protected_from=self._run_from,
            summarizer=self._summarizer,
            harder=harder,
        )
        result = await self.strategy.compact(request)
        self._last = result
        self._store(result.state)
        split = max(0, len(result.messages) - self._inputs - len(new_messages))  # the run's messages are kept
        before, run = result.messages[:split], result.messages[split:]
        return [*to_input_items(before), *self._context_items, *to_input_items(run)]

    def record(self, usage: UsageDetails) -> None:
        """Calibrate the estimate with the input tokens the model reported for the call just made."""
        if self._last is not None:
            self._store(self.state.calibrated(self._last.estimated_tokens, usage.input_token_count))

    def _store(self, state: CompactionState) -> None:
        self.state = state
        self._session_state[COMPACTION_STATE_KEY] = state


def check_strategy(strategy: object) -> CompactionStrategy | None:
    """Refuse, before any work, what cannot compact: not a strategy, or a budget strategy without a budget."""
    if strategy is None:
        return None
    if not isinstance(strategy, CompactionStrategy):
        raise AgentInputError(f"compaction_strategy must have an async compact(request) method, got {strategy!r}")
    if isinstance(strategy, BudgetStrategy) and strategy.max_tokens is None:
        raise ConfigurationError(f"{type(strategy).__name__} needs max_tokens= when used on its own")
    return strategy
