"""Fork and rewind of a local-history session, on the store's layout.

`fork` copies the history up to a turn into a new session of the caller (its state as it was after that
turn, from the turn rows' reverse patches, statelog.py; approvals pending at that point left out, with the
tool calls they held). `rewind` drops the turns after one ("regenerate", "edit and resend").

Atomic for readers, whatever the number of rows:
- A rewind is one conditional write of the header (If-Match the ETag it read, so a turn that claimed or
  committed meanwhile makes it fail with 409) that moves `turns` back and restores the state and counters.
  Readers ignore every row of a turn after the header's `turns`, so from that write on the session is
  the rewound one. When the dropped rows (and the idempotency records of dropped turns) fit in the same
  entity group transaction (99 rows) they are deleted in it; otherwise the write also takes the turn
  lease and marks the header (`dropping`), the rows are deleted 100 per transaction, and a last
  conditional write frees the lease and clears the mark. A rewind that crashes in between leaves the
  mark: the next turn to take the lease deletes what is left before it runs (turns.py).
- A fork writes its rows first and its header last (in the last transaction): until the header exists
  the new session does not, and a crash leaves only rows that the expiry sweep removes (the index row
  is written first, as for any new session).

Service-managed sessions are refused (`BranchingError`, 409): their history lives on the model service.
"""

from __future__ import annotations

import logging
import secrets
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from typing import Any

from azure.core import MatchConditions
from azure.data.tables import UpdateMode

from agent_core.approvals import APPROVALS_KEY, pending_requests
from agent_core.compaction import COMPACTION_STATE_KEY, CompactionState
from agent_core.messages import Message

from .errors import SessionConflictError, SessionNotFoundError, StorageUnavailableError, StoreError, storage_errors
from .history import spans_of, turn_groups, window_for
from .layout import (
    HEADER_RK,
    LOAD_COLUMNS,
    MAX_TRANSACTION_ENTITIES,
    MESSAGES,
    StoredSession,
    TurnSpan,
    header_entity,
    is_key_row_of,
    key_range,
    lease_props,
    new_inc,
    partition_key,
    require_current_layout,
    stored_state_props,
    turn_entities,
    turn_range,
    unpack,
)
from .statelog import (
    PATCH_COLUMNS,
    StateHistoryError,
    decoded,
    patch_props,
    read_patch,
    reverse_patch,
    rewound,
    stored_json,
)
from .store import TableSessionStore

logger = logging.getLogger(__name__)

BUSY_RETRY_AFTER = 1.0
Operation = tuple[str, dict[str, Any], dict[str, Any]]


class BranchingError(StoreError):
    """A fork or rewind that cannot be done on this session as it is (409): nothing was written."""

    def __init__(self, message: str, *, retry_after: float | None = None, **extra: Any) -> None:
        super().__init__(message)
        self.retry_after = retry_after
        self.extra = extra


@dataclass
class LoggedTurn:
    """One stored turn as fork and rewind read it: its rows, messages, size and reverse state patch."""

    turn: int
    keys: list[str]
    messages: list[Message]
    size: int
    patch: list[dict[str, Any]]


@dataclass
class TurnLog:
    """A session's header and its stored turns (oldest first), plus rows of turns the header no longer has."""

    header: StoredSession
    turns: list[LoggedTurn]
    stale_keys: list[str] = field(default_factory=list)

    def state_json_at(self, turn: int) -> Any:
        """The stored state JSON right after `turn`: the header's, with later turns' patches undone."""
        try:
            return rewound(self.header.state_json, [t.patch for t in reversed(self.turns) if t.turn > turn])
        except StateHistoryError as exc:
            raise BranchingError(f"the state as it was after turn {turn} cannot be restored: {exc}") from None

    def first_kept(self) -> int:
        """The first turn whose rows are kept (history retention may have removed older ones)."""
        return self.turns[0].turn if self.turns else self.header.turns + 1

    def spans(self, through: int) -> list[TurnSpan]:
        """The stored turns up to `through` with their first messages' indices (counted back from the header's
        message count, which ends with the last turn's messages)."""
        first_start = self.header.message_count - sum(len(t.messages) for t in self.turns)
        counted = [(t.turn, len(t.messages), len(t.keys), t.size) for t in self.turns]
        return [s for s in spans_of(counted, first_start) if s.turn <= through]


# --- reading -----------------------------------------------------------------------------------------


async def branchable_header(
    store: TableSessionStore, owner: str, agent: str, session_id: str, turn: int | None, now: datetime
) -> tuple[StoredSession, int]:
    """The session's header and the turn to branch at (default: its last), refused before any other read:
    not found, service-managed, or a turn it does not have."""
    header = await store.get_header(partition_key(owner, agent, session_id))
    if header is None or header.owner != owner or header.agent != agent or header.expires_at <= now:
        raise SessionNotFoundError(f"session {session_id!r} not found")
    require_current_layout(header)
    if header.history != "local":
        raise BranchingError(
            "fork and rewind need local history; this session's history lives on the model service "
            "(history: service), which offers no way to copy or cut it"
        )
    target = header.turns if turn is None else turn
    if target > header.turns:
        raise BranchingError(f"turn {target} does not exist; the session has {header.turns} turns", turns=header.turns)
    return header, target


async def read_log(store: TableSessionStore, header: StoredSession) -> TurnLog:
    """The turn rows of the header's incarnation, checked whole: a row missing between the first kept turn
    and the last means the session changed while it was read (409, retry)."""
    low, high = turn_range(header.inc)
    query = "PartitionKey eq @pk and RowKey ge @low and RowKey lt @high"
    params = {"pk": header.pk, "low": low, "high": high}
    with storage_errors(f"session {header.session_id!r}"):
        rows = [
            row
            async for row in store.table.query_entities(
                query, parameters=params, select=[*LOAD_COLUMNS, *PATCH_COLUMNS]
            )
        ]
    log = TurnLog(header, [])
    for number, group in turn_groups(rows):  # the rows come newest first
        keys = [str(row["RowKey"]) for row in group]
        if number > header.turns:
            log.stale_keys += keys  # dropped by a rewind whose deletion has not finished
            continue
        text = unpack(group)
        log.turns.append(LoggedTurn(number, keys, MESSAGES.validate_json(text), len(text.encode()), read_patch(group)))
    numbers = [t.turn for t in log.turns]
    if numbers != list(range(log.first_kept(), header.turns + 1)):
        raise SessionConflictError("the session changed while it was read; nothing was written")
    return log


def check_kept(log: TurnLog, turn: int, state_json: Any) -> None:
    """Refuse a turn older than the kept history (history retention removed its rows), or one whose context
    (the compaction window it had) began in turns no longer kept: a session made from it could not load it."""
    first = log.first_kept()
    if first > 1 and turn < first:
        raise BranchingError(
            f"turn {turn} is older than the history kept for this session (from turn {first} on)",
            turns=log.header.turns,
        )
    spans = log.spans(turn)
    state = decoded(state_json)
    needed = CompactionState.of(state).first_kept if COMPACTION_STATE_KEY in state else 0
    if first > 1 and spans and needed < spans[0].start:
        raise BranchingError(
            f"turn {turn} was answered with messages of turns no longer kept for this session (history is kept "
            f"from turn {first} on)",
            turns=log.header.turns,
        )


# --- rewind ------------------------------------------------------------------------------------------


async def rewind(
    store: TableSessionStore, owner: str, agent: str, session_id: str, turn: int, *, now: datetime | None = None
) -> tuple[StoredSession, int]:
    """Drop the turns after `turn`: the session as it was right after it. Returns it and how many turns went."""
    now = now or datetime.now(UTC)
    header, turn = await branchable_header(store, owner, agent, session_id, turn, now)
    if header.leased(now):
        raise BranchingError("a turn is in progress on this session; nothing was done", retry_after=BUSY_RETRY_AFTER)
    if turn == header.turns and not header.dropping:
        return header, 0
    log = await read_log(store, header)
    state_json = log.state_json_at(turn)
    check_kept(log, turn, state_json)
    dropped = [t for t in log.turns if t.turn > turn]
    marker = f"rewind-{secrets.token_hex(8)}"
    rewound_session = replace(
        header,
        turns=turn,
        state=decoded(state_json),
        state_json=state_json,
        message_count=header.message_count - sum(len(t.messages) for t in dropped),
        size_bytes=max(0, header.size_bytes - sum(t.size for t in dropped)),
        updated_at=now,
        expires_at=now + timedelta(seconds=store.limits.ttl_seconds),
        full=0,
        last_turn_id=marker,
        lease_id="",
        lease_until=None,
        lease_key="",
        lease_fp="",
        dropping=0,
        record=None,
    )
    window = window_for(log.spans(turn), rewound_session.state)
    rewound_session.window_turn, rewound_session.window_start, rewound_session.window_rows = window
    doomed = [*(k for t in dropped for k in t.keys), *log.stale_keys, *await _dropped_records(store, header, turn)]
    keys = [{"PartitionKey": header.pk, "RowKey": k} for k in doomed]
    if len(keys) < MAX_TRANSACTION_ENTITIES:
        committed = await _write_header(store, header, rewound_session, [("delete", k, {}) for k in keys])
        return committed, len(dropped)
    marked = replace(
        rewound_session,
        lease_id=marker,
        lease_until=now + timedelta(seconds=store.limits.lease_seconds),
        dropping=max(header.turns, header.dropping),
    )
    marked = await _write_header(store, header, marked, [])
    try:
        await store.delete_keys(keys, "rows of a rewound session")
    except StoreError as exc:  # the rewind stands: the mark stays, and the next turn deletes what is left
        logger.warning("rewind of %s left rows for the next turn to delete: %s", header.session_id, exc)
        return await _release(store, marked, keep_mark=True), len(dropped)
    return await _release(store, marked), len(dropped)


async def _write_header(
    store: TableSessionStore, read: StoredSession, new: StoredSession, deletes: list[Operation]
) -> StoredSession:
    """Replace the header (If-Match the ETag read), with `deletes` in the same transaction. A lost answer is
    settled by reading the header again: it names this write (`last_turn_id`) if it was applied."""
    header = header_entity(new, stored_state_props(new.state_json, store.limits.max_state_bytes))
    condition: dict[str, Any] = {
        "mode": UpdateMode.REPLACE,
        "etag": read.etag,
        "match_condition": MatchConditions.IfNotModified,
    }
    try:
        with storage_errors(f"session {read.session_id!r}"):
            if deletes:
                results = await store.table.submit_transaction([("update", header, condition), *deletes])
                etag = results[0].get("etag", "")
            else:
                etag = (await store.table.update_entity(header, **condition)).get("etag", "")
    except (StorageUnavailableError, SessionConflictError, SessionNotFoundError) as exc:
        now_stored = await _reread(store, read.pk)
        if now_stored is not None and now_stored.last_turn_id == new.last_turn_id:
            return replace(new, etag=now_stored.etag)
        if isinstance(exc, StorageUnavailableError):
            raise
        raise SessionConflictError("the session changed while being rewound (a turn ran); nothing was changed") from exc
    return replace(new, etag=str(etag))


async def _release(store: TableSessionStore, marked: StoredSession, *, keep_mark: bool = False) -> StoredSession:
    """Free the rewind's lease, and clear its mark once the rows are gone (best effort: a lease expires)."""
    dropping = marked.dropping if keep_mark else 0
    free = replace(marked, lease_id="", lease_until=None, lease_key="", lease_fp="", dropping=dropping)
    entity = {"PartitionKey": marked.pk, "RowKey": HEADER_RK, **lease_props(free), "dropping": dropping}
    try:
        with storage_errors(f"session {marked.session_id!r}"):
            result = await store.table.update_entity(
                entity, mode=UpdateMode.MERGE, etag=marked.etag, match_condition=MatchConditions.IfNotModified
            )
    except StoreError:
        return marked  # its lease expires; the next turn finds the mark and finishes (nothing is left to delete)
    return replace(free, etag=str(result.get("etag", "")))


async def finish_dropping(store: TableSessionStore, leased: StoredSession) -> StoredSession:
    """Delete what an interrupted rewind left (rows of turns after `turns`, records of dropped turns), under
    the lease of the turn that found the mark; the returned session commits with the mark cleared."""
    low, high = turn_range(leased.inc, leased.turns + 1)
    query = "PartitionKey eq @pk and RowKey ge @low and RowKey lt @high"
    params = {"pk": leased.pk, "low": low, "high": high}
    with storage_errors(f"session {leased.session_id!r}"):
        rows = [r async for r in store.table.query_entities(query, parameters=params, select=["RowKey"])]
    doomed = [str(r["RowKey"]) for r in rows] + await _dropped_records(store, leased, leased.turns)
    await store.delete_keys([{"PartitionKey": leased.pk, "RowKey": k} for k in doomed], "rows of a rewound session")
    return replace(leased, dropping=0)


async def _dropped_records(store: TableSessionStore, header: StoredSession, turn: int) -> list[str]:
    """Row keys of the idempotency records of turns after `turn` (a retry must not replay a dropped turn)."""
    low, high = key_range()
    query = "PartitionKey eq @pk and RowKey ge @low and RowKey lt @high"
    params = {"pk": header.pk, "low": low, "high": high}
    with storage_errors(f"session {header.session_id!r}"):
        rows = [r async for r in store.table.query_entities(query, parameters=params, select=["RowKey", "turn"])]
    return [
        str(r["RowKey"])
        for r in rows
        if is_key_row_of(str(r["RowKey"]), header.inc) and r.get("turn") is not None and int(r["turn"]) > turn
    ]


async def _reread(store: TableSessionStore, pk: str) -> StoredSession | None:
    try:
        return await store.get_header(pk)
    except StoreError:
        return None


# --- fork --------------------------------------------------------------------------------------------


@dataclass
class Forked:
    session: StoredSession
    """The new session."""
    source: StoredSession
    """The header of the session it was forked from, as read."""
    turn: int
    """The source's turn it holds the history up to."""


async def fork(
    store: TableSessionStore,
    owner: str,
    agent: str,
    source_id: str,
    *,
    turn: int | None,
    new_id: str,
    now: datetime | None = None,
) -> Forked:
    """A new session `new_id` of `owner` holding `source_id`'s history up to `turn` (default: all of it) and
    its state as it was then, without the approvals pending at that point."""
    now = now or datetime.now(UTC)
    header, turn = await branchable_header(store, owner, agent, source_id, turn, now)
    log = await read_log(store, header)
    state_json = log.state_json_at(turn)
    check_kept(log, turn, state_json)
    kept = [t for t in log.turns if t.turn <= turn]
    state = decoded(state_json)
    pending = pending_requests(state)
    copied_state = {k: v for k, v in state.items() if k != APPROVALS_KEY}
    copied_json = stored_json(copied_state)
    messages = [t.messages for t in kept]
    if pending and kept:  # the calls waiting for a decision go with it: the copy's history stays valid input
        calls = {r.call_id for r in pending}
        calls |= {c.call_id for c in state.get(APPROVALS_KEY, {}).get("auto", [])}
        messages[-1] = without_calls(messages[-1], calls)
    session = StoredSession(
        pk=partition_key(owner, agent, new_id),
        session_id=new_id,
        owner=owner,
        agent=agent,
        history="local",
        service_session_id=None,
        state=copied_state,
        state_json=copied_json,
        created_at=now,
        updated_at=now,
        expires_at=now + timedelta(seconds=store.limits.ttl_seconds),
        turns=turn,
        inc=new_inc(now),
        size_bytes=0,
        kept_from=log.first_kept() if kept else turn + 1,
    )
    rows: list[dict[str, Any]] = []
    counted: list[tuple[int, int, int, int]] = []
    removed = sum(len(t.messages) for t in log.turns) - sum(len(m) for m in messages)
    session.message_count = header.message_count - removed
    session.size_bytes = max(0, header.size_bytes - sum(t.size for t in log.turns))
    for logged, turn_messages in zip(kept, messages, strict=True):
        patch = logged.patch
        if logged.turn == turn and copied_json != state_json:  # the last copied turn undoes to the copy's state
            patch = reverse_patch(rewound(state_json, [logged.patch]), copied_json)
        turn_rows, size = turn_entities(session.pk, session.inc, logged.turn, turn_messages, patch_props(patch))
        rows += turn_rows
        counted.append((logged.turn, len(turn_messages), len(turn_rows), size))
        session.size_bytes += size
    first_start = log.spans(turn)[0].start if kept else session.message_count
    window = window_for(spans_of(counted, first_start), copied_state)
    session.window_turn, session.window_start, session.window_rows = window
    await store.write_new(session, rows, now=now)
    return Forked(session, header, turn)


def without_calls(messages: list[Message], call_ids: set[str | None]) -> list[Message]:
    """`messages` without the function calls (and their approval requests) in `call_ids`; emptied ones go."""
    gated = {"function_call", "function_approval_request"}
    kept: list[Message] = []
    for message in messages:
        contents = [c for c in message.contents if not (c.type in gated and c.call_id in call_ids)]
        if contents:
            kept.append(message.model_copy(update={"contents": contents}))
    return kept
