"""The expiry sweep: deletes sessions past their sliding deadline, touching only index rows that are due.

Turns never write the index (a turn stays one read and one write). Each session has one index row, in the
time bucket of its deadline as last filed. When a bucket comes due the sweep reads each session's header:
expired sessions are deleted (header first, conditioned on its ETag, so one renewed meanwhile survives
whole), renewed ones are re-filed under their current deadline. Work grows with due rows, not with sessions.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from agent_core.model_client import ResponsesClient

from .storage import TableSessionStore

logger = logging.getLogger(__name__)


@dataclass
class SweepResult:
    expired: int = 0
    refiled: int = 0
    orphans: int = 0
    skipped: int = 0
    failed: int = 0
    """Sessions the sweep could not finish (storage or the model service failed); their index rows stay due."""
    conversations_deleted: int = 0
    storage_requests: int = 0


async def sweep(
    store: TableSessionStore,
    *,
    now: datetime | None = None,
    client: ResponsesClient | None = None,
    delete_conversations: bool = False,
) -> SweepResult:
    """Delete every expired session whole; idempotent, safe to run while turns run and alongside another sweep
    (each outcome is counted by the sweep whose conditional write made it). A session that fails is
    counted in `failed` and left for the next sweep; the others go on."""
    now = now or datetime.now(UTC)
    result = SweepResult()
    requests_before = store.counter.total
    async for row in store.due_index_rows(now):
        try:
            await _sweep_one(store, row, now, result, client if delete_conversations else None)
        except Exception as exc:
            result.failed += 1
            logger.warning("expiry sweep: %s failed and stays due: %s", row.get("RowKey"), exc)
    result.storage_requests = store.counter.total - requests_before
    logger.info("expiry sweep: %s", result)
    return result


async def _sweep_one(
    store: TableSessionStore,
    row: Mapping[str, Any],
    now: datetime,
    result: SweepResult,
    client: ResponsesClient | None,
) -> None:
    pk, _, inc = str(row["RowKey"]).rpartition("~")
    header = await store.get_header(pk)
    if header is None or header.inc != inc:
        # the session was deleted (or recreated under the same id): clear what is left of this incarnation,
        # and the service conversation a DELETE could not remove
        await store.delete_rows(pk, inc)
        conversation = str(row.get("conversation") or "")
        if conversation and client is not None and await client.delete_conversation(conversation):
            result.conversations_deleted += 1
        if await store.delete_index_row(row):
            result.orphans += 1
    elif header.expires_at > now:
        if await store.refile(row, pk, inc, header.expires_at):
            result.refiled += 1
    elif not await store.delete_header(header):
        result.skipped += 1  # a turn renewed it (or another sweep deleted it) after we read it
    else:
        await store.delete_rows(pk, inc)
        if client is not None and header.owns_conversation and header.service_session_id:
            try:
                if await client.delete_conversation(header.service_session_id):
                    result.conversations_deleted += 1
            except Exception as exc:  # the session is gone either way: leave the conversation to a later sweep
                await store.schedule_cleanup(header, conversation=header.service_session_id, now=now)
                logger.warning("could not delete conversation %s: %s", header.service_session_id, exc)
        await store.delete_index_row(row)
        result.expired += 1
