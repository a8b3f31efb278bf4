"""Long histories, fast: a session's turn rows written in 100-entity transactions, straight to its partition.

For tests and the bench, which need sessions with thousands of turns without running thousands of turns. The
rows are the store's own (`layout.turn_entities`); the header is then set as the served agents' compaction
would have left it: a summary standing for the turns before the last `window_turns`, the window starting at
the first of those (`first_kept`), so a turn on the seeded session reads what it would after a real chat.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from typing import Any

from azure.core import MatchConditions
from azure.data.tables import UpdateMode
from azure.data.tables.aio import TableClient

from agent_core.compaction import COMPACTION_STATE_KEY, CompactionState
from agent_core.messages import Message
from service.storage import StoredSession
from service.storage.layout import MAX_TRANSACTION_ENTITIES, header_entity, state_props, turn_entities

MessagesFor = Callable[[int], list[Message]]
"""The messages of turn n (1-based)."""


async def seed_history(
    table: TableClient,
    stored: StoredSession,
    turns: int,
    messages_for: MessagesFor,
    *,
    window_turns: int | None = None,
    summary: str = "The user asked many questions, each answered.",
    max_state_bytes: int = 1 << 20,
) -> StoredSession:
    """Append turns until `stored` has `turns`, then commit the header (If-Match its ETag). With
    `window_turns`, the window is the last that many turns and a compaction state with `summary` covers
    the rest; without it the window is the whole history (no compaction yet). Returns the seeded session."""
    rows: list[dict[str, Any]] = []
    counts: list[tuple[int, int, int]] = []  # per turn: first message index, rows, bytes
    messages, size = stored.message_count, stored.size_bytes
    for turn in range(stored.turns + 1, turns + 1):
        turn_messages = messages_for(turn)
        entities, nbytes = turn_entities(stored.pk, stored.inc, turn, turn_messages)
        counts.append((messages, len(entities), nbytes))
        rows += entities
        messages += len(turn_messages)
        size += nbytes
    for start in range(0, len(rows), MAX_TRANSACTION_ENTITIES):
        await table.submit_transaction([("create", row) for row in rows[start : start + MAX_TRANSACTION_ENTITIES]])
    state = dict(stored.state)
    first_turn, window_start = stored.window_turn, stored.window_start
    window_rows = stored.window_rows + sum(n for _, n, _ in counts)
    if window_turns is not None and window_turns < turns:
        first_turn = turns - window_turns + 1
        if first_turn <= stored.turns:
            raise ValueError("the seeded window must lie within the seeded turns")
        window_start = counts[first_turn - stored.turns - 1][0]
        window_rows = sum(n for _, n, _ in counts[first_turn - stored.turns - 1 :])
        state[COMPACTION_STATE_KEY] = CompactionState(
            summary=summary, summarized_through=window_start, first_kept=window_start
        )
    seeded = replace(
        stored,
        state=state,
        turns=turns,
        message_count=messages,
        size_bytes=size,
        window_turn=first_turn,
        window_start=window_start,
        window_rows=window_rows,
        messages=[],
        spans=[],
    )
    header = header_entity(seeded, state_props(state, max_state_bytes))
    result = await table.update_entity(
        header, mode=UpdateMode.REPLACE, etag=stored.etag, match_condition=MatchConditions.IfNotModified
    )
    seeded.etag = str(result.get("etag", ""))
    return seeded
