"""Sessions in Azure Table Storage: one partition per session, one query to load, one transaction per turn.

Layout of a session's partition (`s~<owner hash>~<agent>~<session id>`):
  RowKey "h"                 the header: owner, agent, history mode, service id, state, times, counters, ETag
  RowKey "t~<inc>~<turn>"    one row per committed turn holding that turn's messages (continued in
                             "t~<inc>~<turn>~<n>" rows when a turn is over ~900 KB compressed)
`inc` is the session's incarnation: rows of an earlier session with the same id are ignored and swept.
The expiry index lives in partitions `x~<yyyymmddHHMM>` (one row per session deadline); see expiry.py.
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import json
import re
import secrets
import zlib
from collections.abc import AsyncIterator, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, Literal

from azure.core import MatchConditions
from azure.core.exceptions import (
    HttpResponseError,
    ResourceExistsError,
    ResourceModifiedError,
    ResourceNotFoundError,
    ServiceRequestError,
    ServiceResponseError,
)
from azure.core.pipeline import PipelineRequest
from azure.core.pipeline.policies import SansIOHTTPPolicy
from azure.data.tables import TableTransactionError, UpdateMode
from azure.data.tables.aio import TableClient
from pydantic import TypeAdapter

from agent_core.exceptions import AgentCoreError
from agent_core.messages import Message
from agent_core.sessions import decode_value, encode_value

SCHEMA_VERSION = 1
HEADER_RK = "h"
INDEX_PREFIX = "x~"
SESSION_PREFIX = "s~"
HistoryMode = Literal["local", "service"]
STORAGE_RETRIES = 2
"""azure-core retries of a throttled or failed storage request (honouring Retry-After) before a 503."""

SESSION_ID_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]{0,127}$")
"""Client-chosen session ids: letters, digits, '-' and '_', 1-128 characters (safe in keys and URLs)."""

# Table Storage limits, with margins: a string property holds 64 KiB of UTF-16, an entity 1 MiB,
# a transaction 100 entities and 4 MiB of request body.
_INLINE_UTF8_BYTES = 32_000  # UTF-8 bytes <= 32,000 guarantees UTF-16 <= 64,000 bytes
_PIECE_BYTES = 63_000  # one binary property
_PIECES_PER_ENTITY = 14  # 882,000 bytes of binary per entity
_MAX_TRANSACTION_ENTITIES = 100
_MAX_TRANSACTION_BYTES = 3_800_000  # estimated JSON body, base64 included
_MESSAGES = TypeAdapter(list[Message])
_PIECE_COLUMNS = ["j", "zn", *(f"z{n:02d}" for n in range(_PIECES_PER_ENTITY))]
_HEADER_COLUMNS = [
    "schema", "session_id", "owner", "agent", "history", "service_session_id", "owns_conversation",
    "created_at", "updated_at", "expires_at", "turns", "message_count", "inc", "size_bytes",
]  # fmt: skip
_LOAD_COLUMNS = ["PartitionKey", "RowKey", *_HEADER_COLUMNS, *(f"s{c}" for c in _PIECE_COLUMNS), *_PIECE_COLUMNS]
"""Selecting columns spares the SDK parsing every row's Timestamp (40% of a 1,000-row load's CPU)."""


class StoreError(AgentCoreError):
    """Base class of session store failures."""


class SessionNotFoundError(StoreError):
    """No such session for this owner and agent (or it expired)."""


class SessionExistsError(StoreError):
    """A session with this id already exists."""


class SessionConflictError(StoreError):
    """Another turn changed the session since it was read; nothing was written."""


class TurnTooLargeError(StoreError):
    """A turn or session exceeds a storage limit or a configured maximum; nothing was written."""


class StorageUnavailableError(StoreError):
    """Table Storage is throttling, unreachable or failing."""

    def __init__(self, message: str, *, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.retry_after = retry_after


def validate_session_id(session_id: str) -> str:
    if not SESSION_ID_PATTERN.fullmatch(session_id):
        raise ValueError("session_id must be 1-128 letters, digits, '-' or '_', starting with a letter or digit")
    return session_id


def partition_key(owner: str, agent: str, session_id: str) -> str:
    """The session's partition. The owner is hashed in, so another principal addresses a different key."""
    owner_hash = hashlib.sha256(owner.encode()).hexdigest()[:32]
    return f"{SESSION_PREFIX}{owner_hash}~{agent}~{validate_session_id(session_id)}"


def expiry_bucket(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y%m%d%H%M")


def index_entity(pk: str, inc: str, expires_at: datetime) -> dict[str, Any]:
    return {"PartitionKey": f"{INDEX_PREFIX}{expiry_bucket(expires_at)}", "RowKey": f"{pk}~{inc}"}


def _turn_rk(inc: str, turn: int) -> str:
    return f"t~{inc}~{turn:08d}"


# --- packing text into entity properties ------------------------------------------------------------


def _pack(text: str) -> list[dict[str, Any]]:
    """Property sets holding `text`: inline when small, else zlib-compressed and split over binary properties
    (and over several entities when one cannot hold it)."""
    raw = text.encode()
    if len(raw) <= _INLINE_UTF8_BYTES:
        return [{"j": text}]
    packed = zlib.compress(raw, 6)
    pieces = [packed[i : i + _PIECE_BYTES] for i in range(0, len(packed), _PIECE_BYTES)]
    groups = [pieces[i : i + _PIECES_PER_ENTITY] for i in range(0, len(pieces), _PIECES_PER_ENTITY)]
    props: list[dict[str, Any]] = [{f"z{n:02d}": piece for n, piece in enumerate(group)} for group in groups]
    props[0]["zn"] = len(groups)
    return props


def _unpack(entities: list[Mapping[str, Any]]) -> str:
    first = entities[0]
    if "j" in first:
        return str(first["j"])
    chunks = [bytes(e[k]) for e in entities for k in sorted(k for k in e if re.fullmatch(r"z\d\d", k))]
    return zlib.decompress(b"".join(chunks)).decode()


def _estimate_bytes(entity: Mapping[str, Any]) -> int:
    size = 200
    for key, value in entity.items():
        size += len(key) + 40
        if isinstance(value, bytes):
            size += len(value) * 4 // 3 + 4
        else:
            size += len(str(value).encode()) + 2
    return size


# --- the stored session ------------------------------------------------------------------------------


@dataclass
class StoredSession:
    """A session as loaded from its partition: header fields plus (local mode) its message history."""

    pk: str
    session_id: str
    owner: str
    agent: str
    history: HistoryMode
    service_session_id: str | None
    state: dict[str, Any]
    created_at: datetime
    updated_at: datetime
    expires_at: datetime
    turns: int
    inc: str
    size_bytes: int
    owns_conversation: bool = False
    etag: str = ""
    messages: list[Message] = field(default_factory=list)
    message_count: int = 0

    def metadata(self) -> dict[str, Any]:
        """What the HTTP API shows of a session."""
        return {
            "session_id": self.session_id,
            "agent": self.agent,
            "history": self.history,
            "service_session_id": self.service_session_id,
            "created_at": self.created_at.isoformat(),
            "updated_at": self.updated_at.isoformat(),
            "expires_at": self.expires_at.isoformat(),
            "turns": self.turns,
            "message_count": self.message_count,
        }


def _header_entity(s: StoredSession, state_props: dict[str, Any]) -> dict[str, Any]:
    return {
        "PartitionKey": s.pk,
        "RowKey": HEADER_RK,
        "schema": SCHEMA_VERSION,
        "session_id": s.session_id,
        "owner": s.owner,
        "agent": s.agent,
        "history": s.history,
        "service_session_id": s.service_session_id or "",
        "owns_conversation": s.owns_conversation,
        "created_at": s.created_at,
        "updated_at": s.updated_at,
        "expires_at": s.expires_at,
        "turns": s.turns,
        "message_count": s.message_count,
        "inc": s.inc,
        "size_bytes": s.size_bytes,
        **{f"s{k}": v for k, v in state_props.items()},
    }


def _state_props(state: dict[str, Any], max_state_bytes: int) -> dict[str, Any]:
    text = json.dumps(encode_value(state), separators=(",", ":"))
    size = len(text.encode())
    if size > max_state_bytes:
        raise TurnTooLargeError(f"session state is {size} bytes; the limit is {max_state_bytes}")
    props = _pack(text)
    if len(props) > 1:
        raise TurnTooLargeError("session state is too large for one table entity")
    return props[0]


def _session_from_header(entity: Mapping[str, Any]) -> StoredSession:
    state_entity = {k[1:]: v for k, v in entity.items() if k.startswith("s") and re.fullmatch(r"s(j|z\d\d|zn)", k)}
    state = decode_value(json.loads(_unpack([state_entity]))) if state_entity else {}
    metadata = getattr(entity, "metadata", {}) or {}
    return StoredSession(
        pk=entity["PartitionKey"],
        session_id=entity["session_id"],
        owner=entity["owner"],
        agent=entity["agent"],
        history=entity["history"],
        service_session_id=entity.get("service_session_id") or None,
        owns_conversation=bool(entity.get("owns_conversation", False)),
        state=state,
        created_at=entity["created_at"],
        updated_at=entity["updated_at"],
        expires_at=entity["expires_at"],
        turns=int(entity["turns"]),
        message_count=int(entity.get("message_count", 0)),
        inc=entity["inc"],
        size_bytes=int(entity.get("size_bytes", 0)),
        etag=str(metadata.get("etag", "")),
    )


def _group_turn_rows(rows: Iterable[Mapping[str, Any]]) -> list[list[Mapping[str, Any]]]:
    """Rows of one turn (the first plus its continuations) together, in turn order."""
    groups: list[list[Mapping[str, Any]]] = []
    for row in rows:
        if row["RowKey"].count("~") == 3 and groups:  # t~inc~turn~n continues the previous row
            groups[-1].append(row)
        else:
            groups.append([row])
    return groups


# --- counting round trips ----------------------------------------------------------------------------


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


def _storage_error(exc: Exception) -> StorageUnavailableError:
    status = getattr(exc, "status_code", None)
    retry_after: float | None = None
    response = getattr(exc, "response", None)
    if response is not None:
        header = response.headers.get("Retry-After") if hasattr(response, "headers") else None
        if header:
            try:
                retry_after = float(header)
            except ValueError:
                retry_after = None
    if status in (429, 503) or isinstance(exc, (ServiceRequestError, ServiceResponseError)):
        return StorageUnavailableError(f"table storage is unavailable: {exc}", retry_after=retry_after or 1.0)
    return StorageUnavailableError(f"table storage failed: {exc}", retry_after=None)


# --- the store ---------------------------------------------------------------------------------------


class TableSessionStore:
    """Async session store on one table. Create it once per process; `close()` on shutdown."""

    def __init__(self, table: TableClient, *, counter: RequestCounter | None = None) -> None:
        self.table = table
        self.counter = counter or RequestCounter()
        self.operations: dict[str, int] = {}
        """Logical storage operations (a paged query counts once; `counter` has the HTTP requests)."""

    def _count(self, operation: str) -> None:
        self.operations[operation] = self.operations.get(operation, 0) + 1

    @classmethod
    def from_connection_string(cls, connection_string: str, table_name: str) -> TableSessionStore:
        counter = RequestCounter()
        table = TableClient.from_connection_string(
            connection_string, table_name, per_call_policies=[counter], retry_total=STORAGE_RETRIES
        )
        return cls(table, counter=counter)

    @classmethod
    def from_endpoint(cls, endpoint: str, table_name: str, *, credential: Any) -> TableSessionStore:
        """Entra ID (managed identity) access to `https://<account>.table.core.windows.net`."""
        counter = RequestCounter()
        table = TableClient(
            endpoint, table_name, credential=credential, per_call_policies=[counter], retry_total=STORAGE_RETRIES
        )
        return cls(table, counter=counter)

    async def ensure_table(self) -> None:
        with contextlib.suppress(ResourceExistsError):
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
        ttl_seconds: int,
        max_state_bytes: int,
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
            expires_at=now + timedelta(seconds=ttl_seconds),
            turns=0,
            inc=secrets.token_hex(4),
            size_bytes=0,
        )
        header = _header_entity(session, _state_props(state, max_state_bytes))
        try:
            await self.table.upsert_entity(index_entity(pk, session.inc, session.expires_at))
            try:
                result = await self.table.create_entity(header)
            except ResourceExistsError:
                # An expired session that the sweep has not reached yet does not block its id.
                existing = await self.get_header(pk)
                if existing is None or existing.expires_at > now or not await self.delete(existing):
                    raise SessionExistsError(f"session {session_id!r} already exists") from None
                result = await self.table.create_entity(header)
        except ResourceExistsError:
            raise SessionExistsError(f"session {session_id!r} already exists") from None
        except (HttpResponseError, ServiceRequestError, ServiceResponseError) as exc:
            raise _storage_error(exc) from exc
        session.etag = str(result.get("etag", ""))
        return session

    async def load(
        self, owner: str, agent: str, session_id: str, *, now: datetime | None = None, with_history: bool = True
    ) -> StoredSession:
        """Header and history in one partition query (paged by the service past 1,000 rows)."""
        now = now or datetime.now(UTC)
        pk = partition_key(owner, agent, session_id)
        self._count("read")
        try:
            if with_history:
                query = self.table.query_entities("PartitionKey eq @pk", parameters={"pk": pk}, select=_LOAD_COLUMNS)
                rows = [row async for row in query]
            else:
                rows = [await self.table.get_entity(pk, HEADER_RK)]
        except ResourceNotFoundError:
            raise SessionNotFoundError(f"session {session_id!r} not found") from None
        except (HttpResponseError, ServiceRequestError, ServiceResponseError) as exc:
            raise _storage_error(exc) from exc
        if not rows or rows[0]["RowKey"] != HEADER_RK:
            raise SessionNotFoundError(f"session {session_id!r} not found")
        session = _session_from_header(rows[0])
        if session.owner != owner or session.agent != agent or session.expires_at <= now:
            raise SessionNotFoundError(f"session {session_id!r} not found")
        prefix = f"t~{session.inc}~"
        for group in _group_turn_rows(r for r in rows[1:] if r["RowKey"].startswith(prefix)):
            session.messages.extend(_MESSAGES.validate_json(_unpack(group)))
        return session

    async def commit_turn(
        self,
        session: StoredSession,
        new_messages: list[Message],
        *,
        state: dict[str, Any],
        service_session_id: str | None,
        owns_conversation: bool | None = None,
        ttl_seconds: int,
        max_session_bytes: int,
        max_state_bytes: int,
        now: datetime | None = None,
    ) -> StoredSession:
        """One entity group transaction: the turn's row(s) plus the header, conditioned on the header's ETag.

        Raises SessionConflictError when another writer got there first, SessionNotFoundError when the
        session was deleted meanwhile, TurnTooLargeError before writing anything that would not fit.
        """
        now = now or datetime.now(UTC)
        turn = session.turns + 1
        updated = StoredSession(**{**session.__dict__, "messages": []})
        updated.turns = turn
        updated.updated_at = now
        updated.expires_at = now + timedelta(seconds=ttl_seconds)
        updated.state = state
        updated.service_session_id = service_session_id
        if owns_conversation is not None:
            updated.owns_conversation = owns_conversation
        operations: list[tuple[str, dict[str, Any], dict[str, Any]]] = []
        if new_messages and session.history == "local":
            text = _MESSAGES.dump_json(new_messages, exclude_defaults=True).decode()
            updated.size_bytes += len(text.encode())
            updated.message_count += len(new_messages)
            rk = _turn_rk(session.inc, turn)
            for n, props in enumerate(_pack(text)):
                row_key = rk if n == 0 else f"{rk}~{n:03d}"
                operations.append(("create", {"PartitionKey": session.pk, "RowKey": row_key, **props}, {}))
        if updated.size_bytes > max_session_bytes:
            raise TurnTooLargeError(
                f"the session would grow to {updated.size_bytes} bytes; the limit is {max_session_bytes}"
            )
        header = _header_entity(updated, _state_props(state, max_state_bytes))
        condition: dict[str, Any] = {
            "mode": UpdateMode.REPLACE,
            "etag": session.etag,
            "match_condition": MatchConditions.IfNotModified,
        }
        operations.insert(0, ("update", header, condition))
        if len(operations) > _MAX_TRANSACTION_ENTITIES:
            raise TurnTooLargeError(f"the turn needs {len(operations)} table entities; one transaction holds 100")
        body = sum(_estimate_bytes(entity) for _, entity, _ in operations)
        if body > _MAX_TRANSACTION_BYTES:
            raise TurnTooLargeError(f"the turn is about {body} bytes; one table transaction holds 4 MiB")
        self._count("write")
        try:
            if len(operations) == 1:
                result = await self.table.update_entity(header, **condition)
                updated.etag = str(result.get("etag", ""))
            else:
                results = await self.table.submit_transaction(operations)
                updated.etag = str(results[0].get("etag", ""))
        except TableTransactionError as exc:
            raise self._transaction_error(exc, session) from exc
        except ResourceModifiedError:
            raise SessionConflictError("the session was changed by another turn; nothing was written") from None
        except ResourceNotFoundError:
            raise SessionNotFoundError(f"session {session.session_id!r} no longer exists") from None
        except (HttpResponseError, ServiceRequestError, ServiceResponseError) as exc:
            if getattr(exc, "status_code", None) == 412:
                raise SessionConflictError("the session was changed by another turn; nothing was written") from None
            raise _storage_error(exc) from exc
        updated.messages = [*session.messages, *new_messages]
        return updated

    @staticmethod
    def _transaction_error(exc: TableTransactionError, session: StoredSession) -> StoreError:
        status = exc.status_code
        if status == 412 or (status == 409 and getattr(exc, "index", 0) != 0):
            return SessionConflictError("the session was changed by another turn; nothing was written")
        if status == 404:
            return SessionNotFoundError(f"session {session.session_id!r} no longer exists")
        if status == 413:
            return TurnTooLargeError("the turn is too large for one table transaction")
        return _storage_error(exc)

    async def list_messages(
        self, owner: str, agent: str, session_id: str, *, after: int = 0, limit: int = 50
    ) -> tuple[StoredSession, list[Message], int | None]:
        """Messages `after` (a message index) up to `limit`, and the next cursor (None at the end)."""
        session = await self.load(owner, agent, session_id, with_history=True)
        page = session.messages[after : after + limit]
        next_after = after + len(page) if after + len(page) < len(session.messages) else None
        return session, page, next_after

    # -- deletion and expiry --

    async def delete(self, session: StoredSession) -> bool:
        """Delete the header (conditioned on the ETag read), then the history rows. False if it changed meanwhile."""
        try:
            await self.table.delete_entity(
                session.pk, HEADER_RK, etag=session.etag, match_condition=MatchConditions.IfNotModified
            )
        except ResourceModifiedError:
            return False
        except ResourceNotFoundError:
            pass
        except (HttpResponseError, ServiceRequestError, ServiceResponseError) as exc:
            if getattr(exc, "status_code", None) == 412:
                return False
            raise _storage_error(exc) from exc
        await self.delete_rows(session.pk, session.inc)
        return True

    async def delete_rows(self, pk: str, inc: str) -> int:
        """Delete one incarnation's turn rows, 100 per transaction. Idempotent."""
        low, high = f"t~{inc}~", f"t~{inc}~~"
        query = "PartitionKey eq @pk and RowKey ge @low and RowKey lt @high"
        keys = [
            {"PartitionKey": row["PartitionKey"], "RowKey": row["RowKey"]}
            async for row in self.table.query_entities(
                query, parameters={"pk": pk, "low": low, "high": high}, select=["PartitionKey", "RowKey"]
            )
        ]
        for start in range(0, len(keys), _MAX_TRANSACTION_ENTITIES):
            batch = keys[start : start + _MAX_TRANSACTION_ENTITIES]
            try:
                await self.table.submit_transaction([("delete", key) for key in batch])
            except TableTransactionError:
                for key in batch:  # some were already gone: delete one by one (delete is idempotent)
                    await self.table.delete_entity(key["PartitionKey"], key["RowKey"])
        return len(keys)

    async def get_header(self, pk: str) -> StoredSession | None:
        try:
            return _session_from_header(await self.table.get_entity(pk, HEADER_RK))
        except ResourceNotFoundError:
            return None

    async def due_index_rows(self, now: datetime) -> AsyncIterator[Mapping[str, Any]]:
        """Index rows whose bucket is at or before `now`: a range over the index partitions only."""
        query = "PartitionKey ge @low and PartitionKey le @high"
        params = {"low": INDEX_PREFIX, "high": f"{INDEX_PREFIX}{expiry_bucket(now)}"}
        async for row in self.table.query_entities(query, parameters=params):
            yield row

    async def refile(self, row: Mapping[str, Any], pk: str, inc: str, expires_at: datetime) -> None:
        """Move an index row to the bucket of the session's current deadline."""
        target = index_entity(pk, inc, expires_at)
        if target["PartitionKey"] != row["PartitionKey"]:
            await self.table.upsert_entity(target)
            await self.delete_index_row(row)

    async def delete_index_row(self, row: Mapping[str, Any]) -> None:
        with contextlib.suppress(ResourceNotFoundError):
            await self.table.delete_entity(row["PartitionKey"], row["RowKey"])


def encode_cursor(after: int) -> str:
    return base64.urlsafe_b64encode(str(after).encode()).decode().rstrip("=")


def decode_cursor(cursor: str) -> int:
    try:
        value = int(base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode())
    except (ValueError, UnicodeDecodeError):
        raise ValueError("cursor is not valid") from None
    if value < 0:
        raise ValueError("cursor is not valid")
    return value
