"""#10: long conversations: input tokens sent per turn against the compaction budget, and model calls spent on
summaries per 100 turns.

One agent with the served kind of strategy (tool-result stubs, then a running summary, under one token
budget) chats `compaction_turns` turns of 100-word messages with the echo model, whose usage counts words:
the input tokens of every turn's call are the model's own count. The same chat without compaction shows
what the budget saves (its input grows with every turn; it is run for the first `compaction_uncompacted`
turns only, since the echo model's recap makes it grow fast).
"""

from __future__ import annotations

from typing import Any

from agent_core.compaction import (
    COMPACTION_STATE_KEY,
    CompactionState,
    SummarizationStrategy,
    TokenBudgetComposedStrategy,
    ToolResultCompactionStrategy,
)
from agent_core.openai import OpenAIResponsesClient

from ..context import Context
from ..result import Result
from ..stats import median

BUDGET = 4_000
INSTRUCTIONS = "You are a patient assistant."


def message(turn: int) -> str:
    return f"message {turn}: " + " ".join(f"w{turn}x{i}" for i in range(98))


async def chat(client: OpenAIResponsesClient, turns: int, *, compact: bool) -> tuple[list[int], CompactionState]:
    strategy = TokenBudgetComposedStrategy(
        token_budget=BUDGET, strategies=[ToolResultCompactionStrategy(), SummarizationStrategy()]
    )
    agent = client.as_agent(instructions=INSTRUCTIONS, compaction_strategy=strategy if compact else None)
    session = agent.create_session()
    sent: list[int] = []
    for turn in range(turns):
        response = await agent.run(message(turn), session=session)
        sent.append(response.usage.input_token_count)
    state = session.state.get(COMPACTION_STATE_KEY, CompactionState())
    return sent, state


async def run(ctx: Context) -> list[Result]:
    sizes = ctx.sizes
    client = OpenAIResponsesClient(model="echo-1", api_key="bench", base_url=ctx.model.base_url, max_retries=0)
    try:
        before = ctx.model.responses()
        sent, state = await chat(client, sizes.compaction_turns, compact=True)
        calls = ctx.model.responses() - before
        uncompacted, _ = await chat(client, sizes.compaction_uncompacted, compact=False)
    finally:
        await client.close()
    turns = len(sent)
    per_100 = 100 * state.summary_calls / turns
    figures: dict[str, Any] = {
        "budget": BUDGET,
        "turns": turns,
        "input_tokens_per_turn": sent,
        "max_over_budget": max(sent) / BUDGET,
        "median_over_budget": median([float(s) for s in sent]) / BUDGET,
        "summary_calls": state.summary_calls,
        "summary_calls_per_100_turns": per_100,
        "model_calls": calls,
        "uncompacted_input_tokens_per_turn": uncompacted,
    }
    at = len(uncompacted) - 1
    notes = [
        f"{turns} turns of 100-word messages, budget {BUDGET:,} tokens (the echo model counts words); "
        f"{calls} model calls in all ({turns} turns + {state.summary_calls} summaries).",
        f"Without compaction turn {at + 1} sent {uncompacted[at]:,} tokens (with: {sent[at]:,}), and every later "
        "turn more: the input grows with the conversation until the model's window refuses it.",
    ]
    measured = (
        f"max {max(sent):,} / {BUDGET:,} tokens per turn ({max(sent) / BUDGET:.0%}), median "
        f"{figures['median_over_budget']:.0%}; {per_100:.1f} summary calls per 100 turns"
    )
    met = max(sent) <= BUDGET and calls == turns + state.summary_calls
    return [
        Result(
            10,
            "input tokens per turn against the budget; summary calls",
            "≤ budget every turn",
            measured,
            met,
            figures,
            notes,
        )
    ]
