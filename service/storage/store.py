"""Sessions in Azure Table Storage: one partition per session, one range query to load, one transaction per turn.

The store is configured once (`StoreLimits`: TTL, size limits, retention) and every call goes through
`storage_errors`, so only the store's typed errors leave it. The row layout is in layout.py; the range
queries of the window, history pages and retention in history.py.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from typing import Any

from azure.core import MatchConditions
from azure.core.exceptions import ResourceExistsError, ResourceNotFoundError
from azure.core.pipeline import PipelineRequest
from azure.core.pipeline.policies import SansIOHTTPPolicy
from azure.data.tables import TableTransactionError, UpdateMode
from azure.data.tables.aio import TableClient

from agent_core.messages import Message
from agent_core.sessions import encode_value

from ..telemetry import traced
from .errors import (
    SessionConflictError,
    SessionExistsError,
    SessionFullError,
    SessionNotFoundError,
    StorageUnavailableError,
    StoreError,
    TurnTooLargeError,
    storage_errors,
)
from .history import (
    Order,
    Page,
    Position,
    WindowHints,
    add_window,
    history_page,
    move_window,
    plan_removal,
    read_window,
)
from .layout import (
    HEADER_RK,
    INDEX_PREFIX,
    LOAD_COLUMNS,
    MAX_TRANSACTION_BYTES,
    MAX_TRANSACTION_ENTITIES,
    MESSAGES,
    SESSION_PREFIX,
    HistoryMode,
    KeyRecord,
    StoredSession,
    TurnSpan,
    estimate_bytes,
    expiry_bucket,
    header_entity,
    index_entity,
    is_key_row_of,
    key_entities,
    key_range,
    key_record,
    key_rk,
    lease_props,
    legacy_turn_range,
    new_inc,
    partition_key,
    require_current_layout,
    session_from_header,
    state_props,
    stored_state_props,
    turn_entities,
    turn_range,
)
from .statelog import patch_props, reverse_patch

logger = logging.getLogger(__name__)

STORAGE_RETRIES = 2
"""azure-core retries of a throttled or failed storage request (honouring Retry-After) before a 503."""


def transactions(operations: list[tuple[str, dict[str, Any]]]) -> list[list[tuple[str, dict[str, Any]]]]:
    """Operations on one partition split into entity group transactions (100 entities, ~4 MiB each), in order."""
    batches: list[list[tuple[str, dict[str, Any]]]] = [[]]
    size = 0
    for operation in operations:
        grown = estimate_bytes(operation[1])
        if batches[-1] and (len(batches[-1]) == MAX_TRANSACTION_ENTITIES or size + grown > MAX_TRANSACTION_BYTES):
            batches.append([])
            size = 0
        batches[-1].append(operation)
        size += grown
    return batches


@dataclass(frozen=True)
class StoreLimits:
    """What the store enforces on every write: the sliding TTL and the size limits (the app settings')."""

    ttl_seconds: int = 86_400
    max_session_bytes: int = 16 << 20
    max_state_bytes: int = 256 << 10
    lease_seconds: int = 300
    """How long a turn holds its session before another turn may take it over (a crashed turn's bound)."""
    keep_turns: int = 0
    """Retention: 0 keeps every turn's rows; N removes the rows of turns older than the last N (and than the
    window), in the commits that move past them."""


class RequestCounter(SansIOHTTPPolicy[Any, Any]):
    """Counts the HTTP requests the table client sends, by method: the store's round trips, measured."""

    def __init__(self) -> None:
        self.counts: dict[str, int] = {}

    def on_request(self, request: PipelineRequest[Any]) -> None:
        method = request.http_request.method
        self.counts[method] = self.counts.get(method, 0) + 1

    def snapshot(self) -> dict[str, int]:
        return dict(self.counts)

    @property
    def total(self) -> int:
        return sum(self.counts.values())


class TableSessionStore:
    """Async session store on one table. Create it once per process; `close()` on shutdown."""

    def __init__(
        self, table: TableClient, limits: StoreLimits | None = None, *, counter: RequestCounter | None = None
    ) -> None:
        self.table = table
        self.limits = limits or StoreLimits()
        self.counter = counter or RequestCounter()
        self.operations: dict[str, int] = {}
        """Logical storage operations (a paged query counts once; `counter` has the HTTP requests)."""
        self.rows_read = 0
        """Entities the store's queries and point reads returned (the bench reads it)."""
        self.hints = WindowHints()
        """Each session's window size as this process last saw it: the first request of a load asks for that."""

    def _count(self, operation: str) -> None:
        self.operations[operation] = self.operations.get(operation, 0) + 1

    @classmethod
    def from_connection_string(
        cls, connection_string: str, table_name: str, limits: StoreLimits | None = None
    ) -> TableSessionStore:
        counter = RequestCounter()
        table = TableClient.from_connection_string(
            connection_string, table_name, per_call_policies=[counter], retry_total=STORAGE_RETRIES
        )
        return cls(table, limits, counter=counter)

    @classmethod
    def from_endpoint(
        cls, endpoint: str, table_name: str, *, credential: Any, limits: StoreLimits | None = None
    ) -> TableSessionStore:
        """Entra ID (managed identity) access to `https://<account>.table.core.windows.net`."""
        counter = RequestCounter()
        table = TableClient(
            endpoint, table_name, credential=credential, per_call_policies=[counter], retry_total=STORAGE_RETRIES
        )
        return cls(table, limits, counter=counter)

    def with_limits(self, limits: StoreLimits) -> TableSessionStore:
        """The same table (client, counters) under other limits: tests and tooling with their own TTL."""
        other = TableSessionStore(self.table, limits, counter=self.counter)
        other.operations = self.operations
        other.hints = self.hints
        other.rows_read = self.rows_read
        return other

    async def ensure_table(self) -> None:
        with storage_errors(f"table {self.table.table_name!r}"), contextlib.suppress(ResourceExistsError):
            await self.table.create_table()

    async def close(self) -> None:
        await self.table.close()

    # -- sessions --

    @traced("store.create")
    async def create(
        self,
        *,
        owner: str,
        agent: str,
        session_id: str,
        history: HistoryMode,
        service_session_id: str | None,
        state: dict[str, Any],
        now: datetime | None = None,
    ) -> StoredSession:
        """Write a new session (index row first, so a crash never leaves a session that cannot expire)."""
        now = now or datetime.now(UTC)
        pk = partition_key(owner, agent, session_id)
        session = StoredSession(
            pk=pk,
            session_id=session_id,
            owner=owner,
            agent=agent,
            history=history,
            service_session_id=service_session_id,
            state=state,
            created_at=now,
            updated_at=now,
            expires_at=now + timedelta(seconds=self.limits.ttl_seconds),
            turns=0,
            inc=new_inc(now),
            size_bytes=0,
        )
        return await self.write_new(session, now=now)

    async def write_new(
        self, session: StoredSession, rows: list[dict[str, Any]] | None = None, *, now: datetime | None = None
    ) -> StoredSession:
        """Write a new session: its index row first (so a crash never leaves a session that cannot expire),
        then `rows` (a fork's turns, in transactions of up to 100 entities), then the header, created in the
        last transaction: the session exists whole from that write on, or not at all."""
        now = now or datetime.now(UTC)
        session.state_json = encode_value(session.state)
        header = header_entity(session, stored_state_props(session.state_json, self.limits.max_state_bytes))
        existing = await self.get_header(session.pk)
        if existing is not None and existing.expires_at > now:
            raise SessionExistsError(f"session {session.session_id!r} already exists")  # nothing written
        try:
            etag = await self._create(session, header, existing, rows or [])
        except SessionNotFoundError:  # the table itself is missing (deleted): recreate it, try once more
            await self.ensure_table()
            etag = await self._create(session, header, existing, rows or [])
        session.etag = etag
        self.hints.set(session.pk, session.window_rows)
        return session

    async def _create(
        self, session: StoredSession, header: dict[str, Any], expired: StoredSession | None, rows: list[dict[str, Any]]
    ) -> str:
        exists = SessionExistsError(f"session {session.session_id!r} already exists")
        with storage_errors(f"session {session.session_id!r}"):
            await self.table.upsert_entity(index_entity(session.pk, session.inc, session.expires_at))
            # an expired session the sweep has not reached yet does not block its id
            if expired is not None and not await self.delete(expired):
                raise exists
            try:
                if not rows:
                    return str((await self.table.create_entity(header)).get("etag", ""))
                *earlier, last = transactions([("upsert", row) for row in rows] + [("create", header)])
                for batch in earlier:
                    await self.table.submit_transaction(batch)
                return str((await self.table.submit_transaction(last))[-1].get("etag", ""))
            except ResourceExistsError:
                raise exists from None
            except TableTransactionError as exc:
                if exc.status_code == 409:
                    raise exists from None
                raise

    @traced("store.load")
    async def load(
        self,
        owner: str,
        agent: str,
        session_id: str,
        *,
        now: datetime | None = None,
        with_history: bool = True,
        key_hash: str | None = None,
        any_layout: bool = False,
    ) -> StoredSession:
        """Header and window (`with_history`: the turns from the window's first on, see history.py) in one
        row-key range query; with `key_hash` also that idempotency record (`session.record`), by a second
        query sent at the same time. Without `with_history`, the header alone (a point read). A session stored in
        an earlier row layout is refused (SessionLayoutError) unless `any_layout` (to delete it)."""
        now = now or datetime.now(UTC)
        pk = partition_key(owner, agent, session_id)
        self._count("read")
        with storage_errors(f"session {session_id!r}"):
            if with_history:
                window = read_window(self.table, pk, self._first_page(pk))
                if key_hash:
                    rows, key_rows = await asyncio.gather(window, self._key_rows(pk, key_hash))
                else:
                    rows, key_rows = await window, []
            else:
                rows, key_rows = [await self.table.get_entity(pk, HEADER_RK)], []
        self.rows_read += len(rows) + len(key_rows)
        if not rows:
            raise SessionNotFoundError(f"session {session_id!r} not found")
        session = session_from_header(rows[0])
        if session.owner != owner or session.agent != agent or session.expires_at <= now:
            raise SessionNotFoundError(f"session {session_id!r} not found")
        if not any_layout:
            require_current_layout(session)
        if with_history:
            add_window(session, rows[1:])
            self.hints.set(pk, len(rows) - 1)
        if key_hash:
            mine = [r for r in key_rows if r["RowKey"].startswith(key_rk(session.inc, key_hash))]
            record = key_record(mine) if mine else None
            session.record = record if record is not None and record.turn <= session.turns else None  # rewound
        return session

    def _first_page(self, pk: str) -> int | None:
        hint = self.hints.get(pk)
        return None if hint is None else hint + 1

    async def _key_rows(self, pk: str, key_hash: str) -> list[Mapping[str, Any]]:
        """One idempotency key's records (every incarnation's; the caller keeps the current one's)."""
        low, high = key_range(key_hash)
        query = "PartitionKey eq @pk and RowKey ge @low and RowKey lt @high"
        params = {"pk": pk, "low": low, "high": high}
        return [row async for row in self.table.query_entities(query, parameters=params, select=LOAD_COLUMNS)]

    def check_room(self, session: StoredSession, new_messages: list[Message]) -> None:
        """Refuse (TurnTooLargeError) a turn that cannot fit, before any work is done for it: a session at
        its size or state limit, or input that alone would take it past the size limit."""
        limits = self.limits
        state_props(session.state, limits.max_state_bytes)
        if session.full and session.full >= limits.max_session_bytes:
            raise TurnTooLargeError(f"the session is at its size limit of {limits.max_session_bytes} bytes")
        if session.history == "local":
            grown = session.size_bytes + len(MESSAGES.dump_json(new_messages, exclude_defaults=True))
            if session.size_bytes >= limits.max_session_bytes or grown > limits.max_session_bytes:
                raise TurnTooLargeError(
                    f"the session holds {session.size_bytes} bytes and this turn's input would take it past "
                    f"the limit of {limits.max_session_bytes}"
                )

    # -- the turn lease --

    @traced("store.claim")
    async def claim(
        self, session: StoredSession, lease_id: str, *, key_hash: str = "", fingerprint: str = "", now: datetime
    ) -> StoredSession:
        """Take the turn lease: a conditional write of the header's lease columns (If-Match the ETag read).

        SessionConflictError when the header changed since it was read (another turn claimed or committed).
        """
        leased = replace(
            session,
            lease_id=lease_id,
            lease_until=now + timedelta(seconds=self.limits.lease_seconds),
            lease_key=key_hash,
            lease_fp=fingerprint,
        )
        self._count("write")
        entity = {"PartitionKey": session.pk, "RowKey": HEADER_RK, **lease_props(leased)}
        try:
            with storage_errors(f"session {session.session_id!r}"):
                result = await self.table.update_entity(
                    entity, mode=UpdateMode.MERGE, etag=session.etag, match_condition=MatchConditions.IfNotModified
                )
        except (StorageUnavailableError, SessionConflictError):
            # The answer may be lost after the write applied (or an SDK retry met our own write as a 412):
            # the header decides. Never leave a lease nobody knows it holds.
            header = await self._reread(session.pk)
            if header is not None and header.lease_id == lease_id:
                return replace(leased, etag=header.etag)
            raise
        leased.etag = str(result.get("etag", ""))
        return leased

    @traced("store.release")
    async def release(self, leased: StoredSession, *, full: bool = False) -> None:
        """Give the lease back without a turn (the turn failed; `full`: because the session is at its size
        limit, so that later turns are refused before any work). Best effort: an unreleased lease expires."""
        free = replace(leased, lease_id="", lease_until=None, lease_key="", lease_fp="")
        entity = {"PartitionKey": leased.pk, "RowKey": HEADER_RK, **lease_props(free)}
        if full:
            entity["full"] = self.limits.max_session_bytes
        try:
            with storage_errors(f"session {leased.session_id!r}"):
                await self.table.update_entity(
                    entity, mode=UpdateMode.MERGE, etag=leased.etag, match_condition=MatchConditions.IfNotModified
                )
        except StoreError as exc:
            logger.warning("could not release the lease of %s (it expires by itself): %s", leased.session_id, exc)

    async def _reread(self, pk: str) -> StoredSession | None:
        """The header after an ambiguous write, or None when it cannot be read either."""
        try:
            return await self.get_header(pk)
        except StoreError:
            return None

    @traced("store.commit_turn")
    async def commit_turn(
        self,
        updated: StoredSession,
        new_messages: list[Message],
        *,
        record: tuple[str, KeyRecord] | None = None,
        keep_from: int | None = None,
        now: datetime | None = None,
    ) -> StoredSession:
        """Commit one turn: `updated` is the session as loaded (and leased) with the turn's state, service id
        and conversation ownership applied. One entity group transaction writes the turn's row(s), the
        idempotency `record` (key hash, record) if any, and the header, which releases the lease; it is
        conditioned on the ETag the session was read (or leased) with. Returns the committed session.

        `keep_from` is the first message (an index in the whole history) later turns need, the compaction
        state's `first_kept`: the header's window moves to the turn holding it, so later loads start there
        (None: the window stays). With retention (`StoreLimits.keep_turns`) the same transaction deletes the
        rows of turns before both the window and the last `keep_turns` turns, as many as fit.

        Raises SessionConflictError when another writer got there first (a lease taken over included),
        SessionNotFoundError when the session was deleted meanwhile, TurnTooLargeError before writing
        anything that would not fit. When the answer is lost or ambiguous, the header is read again and
        the outcome decided from what is stored: the header names the lease of the last committed turn.
        """
        now = now or datetime.now(UTC)
        limits = self.limits
        turn = updated.turns + 1
        committed = replace(
            updated,
            turns=turn,
            updated_at=now,
            expires_at=now + timedelta(seconds=limits.ttl_seconds),
            messages=[*updated.messages, *new_messages],
            lease_id="",
            lease_until=None,
            lease_key="",
            lease_fp="",
            last_turn_id=updated.lease_id,
            record=None,
        )
        operations: list[tuple[str, dict[str, Any], dict[str, Any]]] = []
        committed.state_json = encode_value(committed.state)
        spans = list(updated.spans)
        if updated.history == "local":  # a row for every local turn: it carries the turn's state change too
            patch = patch_props(reverse_patch(updated.state_json, committed.state_json))
            rows, size = turn_entities(updated.pk, updated.inc, turn, new_messages, patch)
            spans.append(TurnSpan(turn, updated.message_count, len(new_messages), len(rows), size))
            committed.size_bytes += size
            committed.message_count += len(new_messages)
            operations += [("create", row, {}) for row in rows]
        if record is not None:
            key_hash, key = record
            operations += [("upsert", row, {}) for row in key_entities(updated.pk, updated.inc, key_hash, key)]
        window = move_window(spans, keep_from, (updated.window_turn, updated.window_start))
        committed.window_turn, committed.window_start, committed.window_rows = window
        committed.spans = [span for span in spans if span.turn >= committed.window_turn]
        committed.messages = committed.messages[committed.window_start - updated.window_start :]
        if limits.keep_turns:
            room = MAX_TRANSACTION_ENTITIES - 1 - len(operations)
            operations += await self._removal(committed, spans, updated.window_turn, room=room)
        if committed.size_bytes > limits.max_session_bytes:
            raise SessionFullError(
                f"the session would grow to {committed.size_bytes} bytes; the limit is {limits.max_session_bytes}"
            )
        header = header_entity(committed, stored_state_props(committed.state_json, limits.max_state_bytes))
        self.hints.set(committed.pk, committed.window_rows)
        condition: dict[str, Any] = {
            "mode": UpdateMode.REPLACE,
            "etag": updated.etag,
            "match_condition": MatchConditions.IfNotModified,
        }
        operations.insert(0, ("update", header, condition))
        if len(operations) > MAX_TRANSACTION_ENTITIES:
            raise TurnTooLargeError(f"the turn needs {len(operations)} table entities; one transaction holds 100")
        body = sum(estimate_bytes(entity) for _, entity, _ in operations)
        if body > MAX_TRANSACTION_BYTES:
            raise TurnTooLargeError(f"the turn is about {body} bytes; one table transaction holds 4 MiB")
        self._count("write")
        try:
            with storage_errors(f"session {updated.session_id!r}"):
                if len(operations) == 1:
                    result = await self.table.update_entity(header, **condition)
                    committed.etag = str(result.get("etag", ""))
                else:
                    results = await self.table.submit_transaction(operations)
                    committed.etag = str(results[0].get("etag", ""))
        except (StorageUnavailableError, SessionConflictError) as exc:
            header_now = await self._reread(updated.pk) if updated.lease_id else None
            if header_now is not None and header_now.last_turn_id == updated.lease_id and header_now.turns == turn:
                committed.etag = header_now.etag  # it was written: our answer was lost (or a retry met our own write)
                return committed
            if header_now is None and updated.lease_id and isinstance(exc, StorageUnavailableError):
                raise StorageUnavailableError(
                    "table storage failed while committing the turn and its outcome cannot be read; retry with the "
                    "same Idempotency-Key to get the committed reply or run the turn",
                    retry_after=exc.retry_after,
                ) from exc
            raise
        return committed

    async def _removal(
        self, committed: StoredSession, spans: list[TurnSpan], loaded_from: int, *, room: int
    ) -> list[tuple[str, dict[str, Any], dict[str, Any]]]:
        """Retention's deletes for this commit (and `committed`'s oldest kept turn and size updated)."""
        cutoff = min(committed.window_turn, committed.turns - self.limits.keep_turns + 1)
        with storage_errors(f"rows of {committed.session_id!r}"):
            removal = await plan_removal(self.table, committed, cutoff, room, spans=spans, loaded_from=loaded_from)
        if removal is None:
            return []
        if removal.queried:
            self._count("read")  # the keys of turns this turn did not load
            self.rows_read += len(removal.keys)
        committed.kept_from = removal.kept_from
        committed.size_bytes = max(0, committed.size_bytes - removal.nbytes)
        return [("delete", {"PartitionKey": committed.pk, "RowKey": key}, {}) for key in removal.keys]

    @traced("store.read_page")
    async def read_page(self, session: StoredSession, order: Order, position: Position | None, limit: int) -> Page:
        """A history page of the session read with `load(with_history=False)`: see `history.history_page`."""
        self._count("read")
        with storage_errors(f"session {session.session_id!r}"):
            page = await history_page(self.table, session, order, position, limit)
        self.rows_read += page.rows
        return page

    # -- deletion and expiry --

    @traced("store.delete")
    async def delete(self, session: StoredSession) -> bool:
        """Delete the header (conditioned on the ETag read), then the rows. False if it changed or went meanwhile."""
        if not await self.delete_header(session):
            return False
        await self.delete_rows(session.pk, session.inc)
        return True

    @traced("store.delete_header")
    async def delete_header(self, session: StoredSession) -> bool:
        """Delete the header, conditioned on the ETag read: the session is gone once this returns True. False
        when it changed (a turn renewed or leased it) or another deleter got there first."""
        key = {"PartitionKey": session.pk, "RowKey": HEADER_RK}
        return await self._delete_counted(key, f"session {session.session_id!r}", etag=session.etag)

    async def _delete_counted(self, key: dict[str, str], what: str, *, etag: str | None = None) -> bool:
        """Delete one entity and say whether this call deleted it. A one-operation transaction, because the
        SDK's delete_entity swallows 404 and so cannot tell "deleted" from "someone else already did"."""
        condition = {"etag": etag, "match_condition": MatchConditions.IfNotModified} if etag else {}
        try:
            with storage_errors(what):
                await self.table.submit_transaction([("delete", key, condition)])
        except (SessionConflictError, SessionNotFoundError):
            return False
        return True

    @traced("store.delete_rows")
    async def delete_rows(self, pk: str, inc: str) -> int:
        """Delete one incarnation's turn rows (schema 1's too) and idempotency records, 100 per transaction.
        Idempotent."""
        (t_low, t_high), (k_low, k_high), (l_low, l_high) = turn_range(inc), key_range(), legacy_turn_range(inc)
        query = (
            "PartitionKey eq @pk and ( ( RowKey ge @tl and RowKey lt @th ) or ( RowKey ge @kl and RowKey lt @kh ) "
            "or ( RowKey ge @ll and RowKey lt @lh ) )"
        )
        params = {"pk": pk, "tl": t_low, "th": t_high, "kl": k_low, "kh": k_high, "ll": l_low, "lh": l_high}
        with storage_errors(f"rows of {pk!r}"):
            keys = [
                {"PartitionKey": row["PartitionKey"], "RowKey": row["RowKey"]}
                async for row in self.table.query_entities(query, parameters=params, select=["PartitionKey", "RowKey"])
                if not row["RowKey"].startswith("k~") or is_key_row_of(row["RowKey"], inc)
            ]
        await self.delete_keys(keys, f"rows of {pk!r}")
        return len(keys)

    async def delete_keys(self, keys: list[dict[str, str]], what: str) -> None:
        """Delete rows of one partition by key, 100 per transaction. Idempotent: rows already gone are fine."""
        with storage_errors(what):
            for start in range(0, len(keys), MAX_TRANSACTION_ENTITIES):
                batch = keys[start : start + MAX_TRANSACTION_ENTITIES]
                try:
                    await self.table.submit_transaction([("delete", key) for key in batch])
                except TableTransactionError:
                    for key in batch:  # some were already gone: delete one by one (delete is idempotent)
                        with contextlib.suppress(ResourceNotFoundError):
                            await self.table.delete_entity(key["PartitionKey"], key["RowKey"])

    @traced("store.schedule_cleanup")
    async def schedule_cleanup(self, session: StoredSession, *, conversation: str | None, now: datetime) -> None:
        """Record for the sweep what a delete could not finish: an index row due now for the session's
        incarnation (the sweep removes what is left of it), naming the service conversation to delete."""
        row = {**index_entity(session.pk, session.inc, now), "conversation": conversation or ""}
        with storage_errors("the expiry index"):
            await self.table.upsert_entity(row)

    async def ping(self) -> None:
        """One cheap request proving the table answers (health); a missing table is created."""
        try:
            await self.get_header(f"{SESSION_PREFIX}health")
        except SessionNotFoundError:  # the table itself is missing
            await self.ensure_table()

    @traced("store.get_header")
    async def get_header(self, pk: str) -> StoredSession | None:
        with storage_errors(f"header of {pk!r}"):
            try:
                return session_from_header(await self.table.get_entity(pk, HEADER_RK))
            except ResourceNotFoundError:
                return None

    async def due_index_rows(self, now: datetime) -> AsyncIterator[Mapping[str, Any]]:
        """Index rows whose bucket is at or before `now`: a range over the index partitions only."""
        query = "PartitionKey ge @low and PartitionKey le @high"
        params = {"low": INDEX_PREFIX, "high": f"{INDEX_PREFIX}{expiry_bucket(now)}"}
        with storage_errors("the expiry index"):
            async for row in self.table.query_entities(query, parameters=params):
                yield row

    @traced("store.refile")
    async def refile(self, row: Mapping[str, Any], pk: str, inc: str, expires_at: datetime) -> bool:
        """Move an index row to the bucket of the session's current deadline; False if another sweep did."""
        target = index_entity(pk, inc, expires_at)
        if target["PartitionKey"] == row["PartitionKey"]:
            return False
        with storage_errors("the expiry index"):
            await self.table.upsert_entity(target)
        return await self.delete_index_row(row)

    @traced("store.delete_index_row")
    async def delete_index_row(self, row: Mapping[str, Any]) -> bool:
        """Delete an index row; False when it was already gone (another sweep took it)."""
        key = {"PartitionKey": str(row["PartitionKey"]), "RowKey": str(row["RowKey"])}
        return await self._delete_counted(key, "the expiry index")
