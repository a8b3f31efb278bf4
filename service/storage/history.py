"""Reading a session's history by key range: the turn's window, history pages, and what retention removes.

Turn rows are keyed newest first right after the header (layout.py), so:
- a turn's load is one range query from "h": the header, then the turns from the newest back to the window's
  first turn. Its `$top` is the header's row count of the window (`window_rows` + 1), so the query ends where
  the window does. The count is only known once the header is read, so the first request asks for what this
  process last saw of the session (a hint) or `FIRST_PAGE_ROWS`; when that falls short one more request asks
  for exactly the rest. Either way the rows read are the window's, plus at most the first request's guess.
- a history page is one range query over the turns it covers (`read_turns`), after the header's point read.
- retention removes the turns before `min(window's first turn, newest - keep + 1)`, a bounded batch per commit.
"""

from __future__ import annotations

import math
from collections import OrderedDict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

from azure.data.tables.aio import TableClient

from agent_core.compaction import COMPACTION_STATE_KEY, CompactionState
from agent_core.messages import Message

from .layout import (
    HEADER_RK,
    HISTORY_END,
    LOAD_COLUMNS,
    MAX_TRANSACTION_BYTES,
    MESSAGES,
    PIECE_BYTES,
    PIECES_PER_ENTITY,
    StoredSession,
    TurnSpan,
    group_turn_rows,
    row_turn,
    turn_range,
    turn_rk,
    unpack,
)

FIRST_PAGE_ROWS = 32
"""Rows the first request of a load asks for when this process has not seen the session yet."""
MAX_PAGE_ROWS = 1000
"""Table Storage answers at most 1,000 entities per request."""
HINTS = 10_000
"""Sessions whose window size a process remembers (least recently used go first)."""
MAX_ROWS_PER_TURN = math.ceil(MAX_TRANSACTION_BYTES / (PIECE_BYTES * PIECES_PER_ENTITY * 4 / 3)) + 1
"""A turn's rows are bounded by the commit transaction's body limit (base64 makes binary 4/3 larger)."""
RETENTION_BATCH = 8
"""Turns past retention that wait for one query of their keys, when the turn did not load them."""

Row = Mapping[str, Any]


class WindowHints:
    """How many rows each session's window had when this process last read or wrote it (bounded, LRU)."""

    def __init__(self, size: int = HINTS) -> None:
        self.size = size
        self._rows: OrderedDict[str, int] = OrderedDict()

    def get(self, pk: str) -> int | None:
        rows = self._rows.get(pk)
        if rows is not None:
            self._rows.move_to_end(pk)
        return rows

    def set(self, pk: str, rows: int) -> None:
        self._rows[pk] = rows
        self._rows.move_to_end(pk)
        while len(self._rows) > self.size:
            self._rows.popitem(last=False)


def _range_query(
    table: TableClient, pk: str, low: str, high: str, *, top: int, select: list[str], inclusive: bool = True
) -> Any:
    op = "ge" if inclusive else "gt"
    query = f"PartitionKey eq @pk and RowKey {op} @low and RowKey lt @high"
    return table.query_entities(
        query,
        parameters={"pk": pk, "low": low, "high": high},
        select=select,
        results_per_page=max(1, min(top, MAX_PAGE_ROWS)),
    )


async def read_window(table: TableClient, pk: str, first_page: int | None) -> list[Row]:
    """The header (first) and the window's turn rows, newest first; [] when there is no header."""
    rows: list[Row] = []
    pager = _range_query(table, pk, HEADER_RK, HISTORY_END, top=first_page or FIRST_PAGE_ROWS, select=LOAD_COLUMNS)
    pages = pager.by_page()
    async for row in await pages.__anext__():
        rows.append(row)
    if not rows or rows[0]["RowKey"] != HEADER_RK:
        return []
    header = rows[0]
    inc, first, last = str(header["inc"]), int(header.get("window_turn") or 1), int(header["turns"])
    kept = _in_window(rows[1:], inc, first, last)
    wanted = int(header.get("window_rows") or 0)
    if _ended(rows[1:], inc, first) or len(kept) >= wanted or pages.continuation_token is None:
        return [header, *kept]  # the window ended within the first answer
    rest = _range_query(
        table, pk, str(rows[-1]["RowKey"]), HISTORY_END, top=wanted - len(kept), select=LOAD_COLUMNS, inclusive=False
    )
    more: list[Row] = []
    async for row in rest:
        more.append(row)
        if len(kept) + len(more) >= wanted:
            break
    return [header, *kept, *_in_window(more, inc, first, last)]


def _in_window(rows: Sequence[Row], inc: str, first: int, last: int) -> list[Row]:
    """The leading rows that belong to incarnation `inc` and to turns `first..last` (rows of later turns, which
    an interrupted rewind left, are skipped)."""
    kept: list[Row] = []
    for row in rows:
        row_inc, turn = row_turn(str(row["RowKey"]))
        if row_inc != inc or turn < first:
            break
        if turn <= last:
            kept.append(row)
    return kept


def _ended(rows: Sequence[Row], inc: str, first: int) -> bool:
    """Whether `rows` reach past the window (another incarnation's rows, or a turn before `first`)."""
    if not rows:
        return False
    row_inc, turn = row_turn(str(rows[-1]["RowKey"]))
    return row_inc != inc or turn < first


def turn_groups(rows: Sequence[Row]) -> list[tuple[int, list[Row]]]:
    """Turn rows read newest first, as (turn, rows) oldest first."""
    groups = group_turn_rows(rows)
    return [(row_turn(str(group[0]["RowKey"]))[1], group) for group in reversed(groups)]


def add_window(session: StoredSession, rows: Sequence[Row]) -> None:
    """Fill `session.messages` and `session.spans` from the window's turn rows (newest first)."""
    start = session.window_start
    for turn, group in turn_groups(rows):
        messages = MESSAGES.validate_json(unpack(group))
        session.spans.append(TurnSpan(turn, start, len(messages), len(group), int(group[0].get("nb") or 0)))
        session.messages.extend(messages)
        start += len(messages)


def spans_of(turns: Sequence[tuple[int, int, int, int]], first_start: int) -> list[TurnSpan]:
    """Spans of stored turns given as (turn, messages, rows, bytes) oldest first, the first one's messages
    starting at index `first_start` of the whole history."""
    spans: list[TurnSpan] = []
    start = first_start
    for turn, messages, rows, nbytes in turns:
        spans.append(TurnSpan(turn, start, messages, rows, nbytes))
        start += messages
    return spans


def window_for(spans: Sequence[TurnSpan], state: Mapping[str, Any]) -> tuple[int, int, int]:
    """The window (first turn, its first message index, rows) of a session holding the turns `spans` with
    `state`: from the turn holding its compaction state's first kept message, else from the first span."""
    if not spans:
        return 1, 0, 0
    keep_from = CompactionState.of(state).first_kept if COMPACTION_STATE_KEY in state else None
    return move_window(spans, keep_from, (spans[0].turn, spans[0].start))


def move_window(spans: Sequence[TurnSpan], keep_from: int | None, current: tuple[int, int]) -> tuple[int, int, int]:
    """The window after a turn: (first turn, its first message's index, rows) for the compaction state's first
    kept message `keep_from` (None: the window does not move). `spans` are the loaded turns plus the new one."""
    turn, start = current
    if keep_from is not None:
        for span in spans:
            if span.start <= keep_from and span.turn >= turn:
                turn, start = span.turn, span.start
    return turn, start, sum(s.rows for s in spans if s.turn >= turn)


@dataclass(frozen=True)
class Removal:
    """What a commit deletes for retention: row keys, the bytes they held, and the new oldest kept turn."""

    keys: list[str]
    nbytes: int
    kept_from: int
    queried: bool = False
    """Whether the keys were read (one query) rather than known from the turn's own load."""


async def plan_removal(
    table: TableClient, session: StoredSession, cutoff: int, room: int, *, spans: Sequence[TurnSpan], loaded_from: int
) -> Removal | None:
    """The rows of turns before `cutoff` this commit can delete within `room` entities (None: none now).

    Turns the turn loaded (in its window) are known row by row. Older ones are looked up with one query of
    their keys, once `RETENTION_BATCH` of them are due, `room // MAX_ROWS_PER_TURN` turns at a time.
    """
    kept_from = session.kept_from
    if cutoff <= kept_from or room <= 0:
        return None
    if kept_from >= loaded_from:  # every turn due was loaded (it is in `spans`): its rows are known
        keys: list[str] = []
        nbytes, new_kept = 0, cutoff
        for span in spans:
            if span.turn < kept_from:
                continue
            if span.turn >= cutoff:
                break
            if len(keys) + span.rows > room:
                new_kept = span.turn
                break
            first = turn_rk(session.inc, span.turn)
            keys += [first, *(f"{first}~{n:03d}" for n in range(1, span.rows))]
            nbytes += span.nbytes
        return Removal(keys, nbytes, new_kept) if new_kept > kept_from else None
    if cutoff - kept_from < RETENTION_BATCH:
        return None
    last = min(cutoff, kept_from + max(1, room // MAX_ROWS_PER_TURN)) - 1
    low, high = turn_range(session.inc, kept_from, last)
    rows = [row async for row in _range_query(table, session.pk, low, high, top=room, select=["RowKey", "nb"])]
    return Removal([str(r["RowKey"]) for r in rows], sum(int(r.get("nb") or 0) for r in rows), last + 1, True)


async def read_turns(
    table: TableClient, session: StoredSession, first: int, last: int, counted: list[int] | None = None
) -> list[tuple[int, list[Message]]]:
    """The stored turns `first..last` (one range query), as (turn, messages) oldest first; the number of rows
    read is appended to `counted`."""
    if last < first:
        return []
    low, high = turn_range(session.inc, first, last)
    rows = [row async for row in _range_query(table, session.pk, low, high, top=MAX_PAGE_ROWS, select=LOAD_COLUMNS)]
    if counted is not None:
        counted.append(len(rows))
    return [(turn, MESSAGES.validate_json(unpack(group))) for turn, group in turn_groups(rows)]


Order = Literal["asc", "desc"]
Position = tuple[int, int]
"""A place in the history: (turn, index of a message within that turn)."""
PAGE_ROUNDS = 4
"""Range queries one page makes at most (more only when turns hold far fewer messages than on average)."""


@dataclass(frozen=True)
class Page:
    messages: list[Message]
    next: Position | None
    """asc: the next page's first message; desc: the message the next page ends before. None: no more."""
    rows: int = 0
    """Entities the page's range queries returned."""


async def history_page(
    table: TableClient, session: StoredSession, order: Order, position: Position | None, limit: int
) -> Page:
    """Up to `limit` messages from `position` on (asc, default the oldest kept) or before it (desc, newest
    first; default the newest): range queries over the turns the page covers, sized by the session's mean
    messages per turn, so the cost depends on `limit`, not on the session's length."""
    if session.history != "local" or session.turns == 0:
        return Page([], None)
    mean = max(1, session.message_count // session.turns)
    counted: list[int] = []
    if order == "asc":
        page = await _ascending(table, session, position or (session.kept_from, 0), limit, mean, counted)
    else:
        page = await _descending(table, session, position or (session.turns + 1, 0), limit, mean, counted)
    return Page(page.messages, page.next, sum(counted))


async def _ascending(
    table: TableClient, session: StoredSession, start: Position, limit: int, mean: int, counted: list[int]
) -> Page:
    found: list[Message] = []
    turn, offset = max(start[0], session.kept_from), start[1] if start[0] >= session.kept_from else 0
    for _ in range(PAGE_ROUNDS):
        if turn > session.turns:
            return Page(found, None)
        last = min(session.turns, turn + min(limit, math.ceil((limit - len(found)) / mean) + (offset > 0)) - 1)
        for number, messages in await read_turns(table, session, turn, last, counted):
            skip = offset if number == turn else 0
            room = limit - len(found)
            found += messages[skip : skip + room]
            if len(messages) - skip > room:
                return Page(found, (number, skip + room))
            if len(found) == limit:
                return Page(found, (number + 1, 0) if number < session.turns else None)
        turn, offset = last + 1, 0
    return Page(found, (turn, 0) if turn <= session.turns else None)


async def _descending(
    table: TableClient, session: StoredSession, before: Position, limit: int, mean: int, counted: list[int]
) -> Page:
    found: list[Message] = []
    turn, offset = min(before[0], session.turns + 1), before[1] if before[0] <= session.turns else 0
    for _ in range(PAGE_ROUNDS):
        high = turn if offset > 0 else turn - 1
        if high < session.kept_from:
            return Page(found, None)
        low = max(session.kept_from, high - min(limit, math.ceil((limit - len(found)) / mean) + (offset > 0)) + 1)
        for number, messages in reversed(await read_turns(table, session, low, high, counted)):
            end = offset if number == turn else len(messages)
            room = limit - len(found)
            found += reversed(messages[max(0, end - room) : end])
            if end > room:
                return Page(found, (number, end - room))
            if len(found) == limit:
                return Page(found, (number, 0) if number > session.kept_from else None)
        turn, offset = low, 0
    return Page(found, (turn, 0) if turn > session.kept_from else None)
