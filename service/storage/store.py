"""Sessions in Azure Table Storage: one partition per session, one query to load, one transaction per turn.

The store is configured once (`StoreLimits`: TTL and size limits) and every call goes through
`storage_errors`, so only the store's typed errors leave it. The row layout is in layout.py.
"""

from __future__ import annotations

import contextlib
import secrets
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

from .errors import SessionConflictError, SessionExistsError, SessionNotFoundError, TurnTooLargeError, storage_errors
from .layout import (
    HEADER_RK,
    INDEX_PREFIX,
    LOAD_COLUMNS,
    MAX_TRANSACTION_BYTES,
    MAX_TRANSACTION_ENTITIES,
    MESSAGES,
    HistoryMode,
    StoredSession,
    estimate_bytes,
    expiry_bucket,
    group_turn_rows,
    header_entity,
    index_entity,
    partition_key,
    session_from_header,
    state_props,
    turn_entities,
    turn_range,
    unpack,
)

STORAGE_RETRIES = 2
"""azure-core retries of a throttled or failed storage request (honouring Retry-After) before a 503."""


@dataclass(frozen=True)
class StoreLimits:
    """What the store enforces on every write: the sliding TTL and the size limits (the app settings')."""

    ttl_seconds: int = 86_400
    max_session_bytes: int = 16 << 20
    max_state_bytes: int = 256 << 10


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
        return other

    async def ensure_table(self) -> None:
        with storage_errors(f"table {self.table.table_name!r}"), contextlib.suppress(ResourceExistsError):
            await self.table.create_table()

    async def close(self) -> None:
        await self.table.close()

    # -- sessions --

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
            inc=secrets.token_hex(4),
            size_bytes=0,
        )
        header = header_entity(session, state_props(state, self.limits.max_state_bytes))
        exists = SessionExistsError(f"session {session_id!r} already exists")
        with storage_errors(f"session {session_id!r}"):
            await self.table.upsert_entity(index_entity(pk, session.inc, session.expires_at))
            try:
                result = await self.table.create_entity(header)
            except ResourceExistsError:
                # An expired session that the sweep has not reached yet does not block its id.
                existing = await self.get_header(pk)
                if existing is None or existing.expires_at > now or not await self.delete(existing):
                    raise exists from None
                try:
                    result = await self.table.create_entity(header)
                except ResourceExistsError:
                    raise exists from None
        session.etag = str(result.get("etag", ""))
        return session

    async def load(
        self, owner: str, agent: str, session_id: str, *, now: datetime | None = None, with_history: bool = True
    ) -> StoredSession:
        """Header and history in one partition query (paged by the service past 1,000 rows)."""
        now = now or datetime.now(UTC)
        pk = partition_key(owner, agent, session_id)
        self._count("read")
        with storage_errors(f"session {session_id!r}"):
            if with_history:
                query = self.table.query_entities("PartitionKey eq @pk", parameters={"pk": pk}, select=LOAD_COLUMNS)
                rows = [row async for row in query]
            else:
                rows = [await self.table.get_entity(pk, HEADER_RK)]
        if not rows or rows[0]["RowKey"] != HEADER_RK:
            raise SessionNotFoundError(f"session {session_id!r} not found")
        session = session_from_header(rows[0])
        if session.owner != owner or session.agent != agent or session.expires_at <= now:
            raise SessionNotFoundError(f"session {session_id!r} not found")
        prefix = f"t~{session.inc}~"
        for group in group_turn_rows(r for r in rows[1:] if r["RowKey"].startswith(prefix)):
            session.messages.extend(MESSAGES.validate_json(unpack(group)))
        return session

    async def commit_turn(
        self, updated: StoredSession, new_messages: list[Message], *, now: datetime | None = None
    ) -> StoredSession:
        """Commit one turn: `updated` is the session as loaded with the turn's state, service id and
        conversation ownership applied. One entity group transaction writes the turn's row(s) and the
        header, conditioned on the ETag the session was read with; the committed session is returned.

        Raises SessionConflictError when another writer got there first, SessionNotFoundError when the
        session was deleted meanwhile, TurnTooLargeError before writing anything that would not fit.
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
        )
        operations: list[tuple[str, dict[str, Any], dict[str, Any]]] = []
        if new_messages and updated.history == "local":
            rows, size = turn_entities(updated.pk, updated.inc, turn, new_messages)
            committed.size_bytes += size
            committed.message_count += len(new_messages)
            operations += [("create", row, {}) for row in rows]
        if committed.size_bytes > limits.max_session_bytes:
            raise TurnTooLargeError(
                f"the session would grow to {committed.size_bytes} bytes; the limit is {limits.max_session_bytes}"
            )
        header = header_entity(committed, state_props(committed.state, limits.max_state_bytes))
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
        with storage_errors(f"session {updated.session_id!r}"):
            if len(operations) == 1:
                result = await self.table.update_entity(header, **condition)
                committed.etag = str(result.get("etag", ""))
            else:
                results = await self.table.submit_transaction(operations)
                committed.etag = str(results[0].get("etag", ""))
        return committed

    async def list_messages(
        self, owner: str, agent: str, session_id: str, *, after: int = 0, limit: int = 50
    ) -> tuple[StoredSession, list[Message], int | None]:
        """Messages `after` (a message index) up to `limit`, and the next index (None at the end)."""
        session = await self.load(owner, agent, session_id, with_history=True)
        page = session.messages[after : after + limit]
        next_after = after + len(page) if after + len(page) < len(session.messages) else None
        return session, page, next_after

    # -- deletion and expiry --

    async def delete(self, session: StoredSession) -> bool:
        """Delete the header (conditioned on the ETag read), then the history rows. False if it changed meanwhile."""
        try:
            with storage_errors(f"session {session.session_id!r}"), contextlib.suppress(ResourceNotFoundError):
                await self.table.delete_entity(
                    session.pk, HEADER_RK, etag=session.etag, match_condition=MatchConditions.IfNotModified
                )
        except SessionConflictError:  # the ETag no longer matches (a 412 however the SDK reports it)
            return False
        await self.delete_rows(session.pk, session.inc)
        return True

    async def delete_rows(self, pk: str, inc: str) -> int:
        """Delete one incarnation's turn rows, 100 per transaction. Idempotent."""
        low, high = turn_range(inc)
        query = "PartitionKey eq @pk and RowKey ge @low and RowKey lt @high"
        with storage_errors(f"rows of {pk!r}"):
            keys = [
                {"PartitionKey": row["PartitionKey"], "RowKey": row["RowKey"]}
                async for row in self.table.query_entities(
                    query, parameters={"pk": pk, "low": low, "high": high}, select=["PartitionKey", "RowKey"]
                )
            ]
            for start in range(0, len(keys), MAX_TRANSACTION_ENTITIES):
                batch = keys[start : start + MAX_TRANSACTION_ENTITIES]
                try:
                    await self.table.submit_transaction([("delete", key) for key in batch])
                except TableTransactionError:
                    for key in batch:  # some were already gone: delete one by one (delete is idempotent)
                        await self.table.delete_entity(key["PartitionKey"], key["RowKey"])
        return len(keys)

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

    async def refile(self, row: Mapping[str, Any], pk: str, inc: str, expires_at: datetime) -> None:
        """Move an index row to the bucket of the session's current deadline."""
        target = index_entity(pk, inc, expires_at)
        if target["PartitionKey"] != row["PartitionKey"]:
            with storage_errors("the expiry index"):
                await self.table.upsert_entity(target)
            await self.delete_index_row(row)

    async def delete_index_row(self, row: Mapping[str, Any]) -> None:
        with storage_errors("the expiry index"), contextlib.suppress(ResourceNotFoundError):
            await self.table.delete_entity(row["PartitionKey"], row["RowKey"])
