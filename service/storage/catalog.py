"""The caller's sessions: an owner-scoped index that lists them newest first, and their titles and metadata.

Layout: one partition per owner and agent, `o~<owner hash>~<agent>`, one row per session:
  RowKey "<10^13 - 1 - created ms, 13 digits>~<session id>"   session_id, inc, title, metadata (JSON)
so a partition query reads a caller's sessions newest first, and its cost does not depend on how many
sessions other principals have. A session's row key follows from its header (created_at), so a session's
title and metadata are one point read away.

What it costs: creating a session writes the row (one more write), deleting it deletes the row (one more
delete), PATCH writes the row only. Turns never touch it, so a turn keeps its one read and one
transaction. A page of `limit` sessions is one query on the index partition plus one point read per
listed session (its header: times, turns, and whether it still exists), run concurrently.

Rows can outlive their session (expired and swept, a crash between the row and the header, an id reused
after expiry): a listed row counts only when its session's header exists, is of the row's incarnation and
has not expired; stale rows are deleted by the list that finds them. A page can therefore hold fewer than
`limit` sessions while `next_cursor` is still set.

The title, when none was given, is made from the session's first user message the first time it is read
(no model call): the first turn's row is read once and the title written back to the index row (`auto_title`,
apart from a set `title`, so a rewind to turn 0 can forget it).
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from azure.core import MatchConditions
from azure.core.exceptions import ResourceNotFoundError
from azure.data.tables import UpdateMode
from azure.data.tables.aio import TableClient

from agent_core.messages import Message

from .errors import SessionConflictError, SessionNotFoundError, storage_errors
from .layout import HEADER_RK, MESSAGES, StoredSession, partition_key, session_from_header, turn_range, unpack

CATALOG_PREFIX = "o~"
_NEWEST = 10**13 - 1  # milliseconds since the epoch stay below this until the year 2286
TITLE_CHARS = 80
"""Length of a title made from the first user message (longer text is cut at a word and ends with '…')."""


def catalog_partition(owner: str, agent: str) -> str:
    owner_hash = hashlib.sha256(owner.encode()).hexdigest()[:32]
    return f"{CATALOG_PREFIX}{owner_hash}~{agent}"


def catalog_rk(created_at: datetime, session_id: str) -> str:
    """Newest first: the row key grows as the creation time shrinks."""
    millis = int(created_at.timestamp() * 1000)
    return f"{_NEWEST - millis:013d}~{session_id}"


def encode_list_cursor(row_key: str) -> str:
    return base64.urlsafe_b64encode(row_key.encode()).decode().rstrip("=")


def decode_list_cursor(cursor: str) -> str:
    """Inverse of `encode_list_cursor`; ValueError for anything this API did not return."""
    try:
        row_key = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
    except (ValueError, UnicodeDecodeError):
        raise ValueError("cursor is not valid") from None
    digits, _, session_id = row_key.partition("~")
    if len(digits) != 13 or not digits.isdigit() or not session_id:
        raise ValueError("cursor is not valid")
    return row_key


def title_from(messages: list[Message]) -> str | None:
    """A title from the first user message's text: whitespace collapsed, cut at a word near TITLE_CHARS."""
    for message in messages:
        text = " ".join(message.text.split()) if message.role == "user" else ""
        if text:
            if len(text) <= TITLE_CHARS:
                return text
            cut = text[: TITLE_CHARS - 1].rsplit(" ", 1)[0] or text[: TITLE_CHARS - 1]
            return cut.rstrip() + "…"
    return None


@dataclass
class Listed:
    """A session as the list shows it: its header, and its title and metadata from the index row."""

    session: StoredSession
    title: str | None
    metadata: dict[str, str] = field(default_factory=dict)


class SessionCatalog:
    """The owner-scoped index of sessions, on the sessions' table."""

    def __init__(self, table: TableClient) -> None:
        self.table = table

    async def add(self, session: StoredSession, title: str | None, metadata: Mapping[str, str]) -> None:
        """List a new session (right after it is created; the caller deletes the session if this fails)."""
        with storage_errors(f"the sessions list of {session.session_id!r}"):
            await self.table.upsert_entity(self._row(session, title, metadata), mode=UpdateMode.REPLACE)

    async def remove(self, session: StoredSession) -> None:
        """Unlist a session (idempotent)."""
        pk, rk = catalog_partition(session.owner, session.agent), catalog_rk(session.created_at, session.session_id)
        with storage_errors(f"the sessions list of {session.session_id!r}"), contextlib.suppress(ResourceNotFoundError):
            await self.table.delete_entity(pk, rk)

    async def details(self, session: StoredSession) -> Listed:
        """Title and metadata of a session (its title made from the first user message when none was set)."""
        pk, rk = catalog_partition(session.owner, session.agent), catalog_rk(session.created_at, session.session_id)
        with storage_errors(f"the sessions list of {session.session_id!r}"):
            try:
                row = await self.table.get_entity(pk, rk)
            except ResourceNotFoundError:
                row = None
        if row is None or row.get("inc") != session.inc:
            return Listed(session, None)  # not listed (a session from before the list existed): no details
        return await self._listed(session, row)

    async def update(
        self, session: StoredSession, *, title: str | None, metadata: Mapping[str, str] | None, set_title: bool
    ) -> Listed:
        """Set the title (when `set_title`; None: back to the first message's) and/or replace the metadata.

        A merge of only the changed columns, so a concurrent PATCH of the other field is not undone."""
        changes: dict[str, Any] = {}
        if set_title:
            changes |= {"title": title or "", "has_title": title is not None}
        if metadata is not None:
            changes["metadata"] = json.dumps(dict(metadata), separators=(",", ":"))
        keys = self._row(session, None, {})
        entity = {k: keys[k] for k in ("PartitionKey", "RowKey", "session_id", "inc")} | changes
        with storage_errors(f"the sessions list of {session.session_id!r}"):
            await self.table.upsert_entity(entity, mode=UpdateMode.MERGE)
        return await self.details(session)

    async def forget_first_message(self, session: StoredSession) -> None:
        """Drop the title made from the first user message (a rewind to turn 0 removed that message): the next
        first message makes the next one. A title that was set stays."""
        keys = self._row(session, None, {})
        entity = {k: keys[k] for k in ("PartitionKey", "RowKey", "session_id", "inc")} | {"auto_title": ""}
        with storage_errors(f"the sessions list of {session.session_id!r}"):
            await self.table.upsert_entity(entity, mode=UpdateMode.MERGE)

    async def page(
        self, owner: str, agent: str, *, limit: int, after: str | None = None, now: datetime | None = None
    ) -> tuple[list[Listed], str | None]:
        """Up to `limit` index rows after the cursor's row key, the live sessions among them, and the next cursor."""
        now = now or datetime.now(UTC)
        pk = catalog_partition(owner, agent)
        query, params = "PartitionKey eq @pk", {"pk": pk}
        if after is not None:
            query, params = query + " and RowKey gt @after", {**params, "after": after}
        with storage_errors("the sessions list"):
            pages = self.table.query_entities(query, parameters=params, results_per_page=limit).by_page()
            rows: list[Mapping[str, Any]] = []
            async for page in pages:
                rows.extend([row async for row in page][:limit])
                break
            more = bool(getattr(pages, "continuation_token", None))
        headers = await asyncio.gather(*(self._header(owner, agent, row) for row in rows))
        listed: list[Listed] = []
        for row, header in zip(rows, headers, strict=True):
            if header is None or header.inc != row.get("inc"):
                await self._drop(row)
            elif header.expires_at > now:
                listed.append(await self._listed(header, row))
        next_cursor = encode_list_cursor(rows[-1]["RowKey"]) if rows and (more or len(rows) == limit) else None
        return listed, next_cursor

    # -- internals --

    def _row(self, session: StoredSession, title: str | None, metadata: Mapping[str, str]) -> dict[str, Any]:
        return {
            "PartitionKey": catalog_partition(session.owner, session.agent),
            "RowKey": catalog_rk(session.created_at, session.session_id),
            "session_id": session.session_id,
            "inc": session.inc,
            "title": title or "",
            "has_title": title is not None,
            "metadata": json.dumps(dict(metadata), separators=(",", ":")),
        }

    async def _header(self, owner: str, agent: str, row: Mapping[str, Any]) -> StoredSession | None:
        pk = partition_key(owner, agent, str(row["session_id"]))
        with storage_errors("the sessions list"):
            try:
                header = session_from_header(await self.table.get_entity(pk, HEADER_RK))
            except ResourceNotFoundError:
                return None
        return header if header.owner == owner and header.agent == agent else None

    async def _drop(self, row: Mapping[str, Any]) -> None:
        with storage_errors("the sessions list"), contextlib.suppress(ResourceNotFoundError):
            await self.table.delete_entity(row["PartitionKey"], row["RowKey"])

    async def _listed(self, session: StoredSession, row: Mapping[str, Any]) -> Listed:
        metadata: dict[str, str] = json.loads(row.get("metadata") or "{}")
        if row.get("has_title"):
            return Listed(session, str(row.get("title") or "") or None, metadata)
        if row.get("auto_title") and session.turns >= 1:
            return Listed(session, str(row["auto_title"]), metadata)
        title = await self._first_message_title(session)
        if title is not None:  # written back once, unless the row changed meanwhile (a PATCH wins)
            etag = getattr(row, "metadata", {}).get("etag")
            update = {"PartitionKey": row["PartitionKey"], "RowKey": row["RowKey"], "auto_title": title}
            with contextlib.suppress(SessionConflictError, SessionNotFoundError), storage_errors("the sessions list"):
                await self.table.update_entity(
                    update, mode=UpdateMode.MERGE, etag=etag, match_condition=MatchConditions.IfNotModified
                )
        return Listed(session, title, metadata)

    async def _first_message_title(self, session: StoredSession) -> str | None:
        if session.history != "local" or session.turns < 1:
            return None
        low, high = turn_range(session.inc, 1, 1)
        query = "PartitionKey eq @pk and RowKey ge @low and RowKey lt @high"
        params = {"pk": session.pk, "low": low, "high": high}
        with storage_errors(f"the first turn of {session.session_id!r}"):
            rows: list[Mapping[str, Any]] = [row async for row in self.table.query_entities(query, parameters=params)]
        if not rows:
            return None  # trimmed away by history retention
        return title_from(MESSAGES.validate_json(unpack(rows)))
