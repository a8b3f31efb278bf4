"""The expiry sweep against Azurite, with a controlled clock: whole deletes, renewals, cost, races, idempotence."""

from __future__ import annotations

import secrets
from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest

from agent_core import Message
from agent_core.openai import OpenAIResponsesClient
from devtools.echo_model import EchoModelServer
from service.expiry import sweep
from service.storage import SessionExistsError, SessionNotFoundError, StoredSession, StoreLimits, TableSessionStore

from .azurite import Azurite

T0 = datetime(2026, 1, 1, 12, 0, 30, tzinfo=UTC)


def ttl(store: TableSessionStore, seconds: int) -> TableSessionStore:
    """The same table with a sliding TTL of `seconds`."""
    return store.with_limits(StoreLimits(ttl_seconds=seconds, max_session_bytes=1 << 20, max_state_bytes=4096))


async def make(store: TableSessionStore, sid: str, seconds: int, *, at: datetime = T0, **kw) -> StoredSession:
    return await ttl(store, seconds).create(
        owner="o",
        agent="general",
        session_id=sid,
        history=kw.get("history", "local"),
        service_session_id=kw.get("service_session_id"),
        state={},
        now=at,
    )


async def turn(store: TableSessionStore, session: StoredSession, seconds: int, at: datetime) -> StoredSession:
    messages = [Message("user", text="hi"), Message("assistant", text="hello")]
    return await ttl(store, seconds).commit_turn(replace(session, state={}), messages, now=at)


async def rows(store: TableSessionStore, pk: str) -> list[str]:
    return [e["RowKey"] async for e in store.table.query_entities("PartitionKey eq @pk", parameters={"pk": pk})]


async def test_expired_gone_whole_renewed_kept(store: TableSessionStore):
    stale = await turn(store, await make(store, "stale", 60), 60, T0)
    renewed = await turn(store, await make(store, "renewed", 60), 60, T0 + timedelta(seconds=50))
    result = await sweep(store, now=T0 + timedelta(seconds=90))
    assert (result.expired, result.refiled) == (1, 1)  # renewed's row was due (T0+60s) but it lives: re-filed
    assert await rows(store, stale.pk) == []
    kept = await store.load("o", "general", "renewed", now=T0 + timedelta(seconds=90))
    assert len(kept.messages) == 2
    assert kept.etag == renewed.etag

    renewed_again = await turn(store, kept, 600, T0 + timedelta(seconds=100))
    result = await sweep(store, now=T0 + timedelta(seconds=200))
    assert (result.expired, result.refiled) == (0, 1)  # its old deadline passed but it was renewed: re-filed
    assert len((await store.load("o", "general", "renewed", now=T0 + timedelta(seconds=200))).messages) == 4
    result = await sweep(store, now=T0 + timedelta(seconds=800))
    assert result.expired == 1
    assert await rows(store, renewed_again.pk) == []


async def test_sweep_is_idempotent(store: TableSessionStore):
    await turn(store, await make(store, "a", 60), 60, T0)
    later = T0 + timedelta(minutes=5)
    assert (await sweep(store, now=later)).expired == 1
    again = await sweep(store, now=later)
    assert (again.expired, again.refiled, again.orphans, again.skipped) == (0, 0, 0, 0)
    assert again.storage_requests == 1  # one (empty) range query over the due index partitions


async def expired_among_live(azurite: Azurite, expired: int, live: int) -> int:
    store = TableSessionStore.from_connection_string(azurite.connection_string, f"c{secrets.token_hex(6)}")
    await store.ensure_table()
    try:
        for n in range(expired):
            await turn(store, await make(store, f"e{n}", 60), 60, T0)
        for n in range(live):
            await make(store, f"l{n}", 86400)
        result = await sweep(store, now=T0 + timedelta(minutes=10))
        assert result.expired == expired
        return result.storage_requests
    finally:
        await store.table.delete_table()
        await store.close()


async def test_sweep_cost_grows_with_expired_not_with_live_sessions(azurite: Azurite):
    few_live = await expired_among_live(azurite, expired=5, live=5)
    many_live = await expired_among_live(azurite, expired=5, live=100)
    assert few_live == many_live
    more_expired = await expired_among_live(azurite, expired=10, live=5)
    assert more_expired > few_live


async def test_renewal_racing_the_sweep_survives_whole(store: TableSessionStore):
    session = await turn(store, await make(store, "racy", 60), 60, T0)
    seen_by_sweep = await store.get_header(session.pk)  # the sweep read it as expired...
    assert seen_by_sweep is not None
    loaded = await store.load("o", "general", "racy", now=T0 + timedelta(seconds=30))
    await turn(store, loaded, 3600, T0 + timedelta(seconds=59))  # ...then a turn renewed it
    assert await store.delete(seen_by_sweep) is False  # the conditional delete loses; nothing is removed
    assert len((await store.load("o", "general", "racy", now=T0 + timedelta(minutes=5))).messages) == 4


async def test_turn_racing_a_delete_writes_nothing(store: TableSessionStore):
    session = await make(store, "gone", 60)
    loaded = await store.load("o", "general", "gone", now=T0)
    assert await store.delete(session) is True
    with pytest.raises(SessionNotFoundError):
        await turn(store, loaded, 60, T0 + timedelta(seconds=1))
    assert await rows(store, session.pk) == []


async def test_orphaned_index_rows_are_cleared(store: TableSessionStore):
    session = await make(store, "deleted", 60)
    await store.delete(session)
    result = await sweep(store, now=T0 + timedelta(minutes=5))
    assert result.orphans == 1
    assert [r async for r in store.due_index_rows(T0 + timedelta(days=1))] == []


async def test_service_conversations_deleted_when_configured(store: TableSessionStore, model_server: EchoModelServer):
    client = OpenAIResponsesClient(model="m", api_key="k", base_url=model_server.base_url, max_retries=0)
    kept_id, gone_id = await client.create_conversation(), await client.create_conversation()
    owned = await make(store, "owned", 60, history="service")
    await ttl(store, 60).commit_turn(replace(owned, service_session_id=gone_id, owns_conversation=True), [], now=T0)
    await make(store, "attached", 60, history="service", service_session_id=kept_id)
    result = await sweep(store, now=T0 + timedelta(minutes=5), client=client, delete_conversations=True)
    assert (result.expired, result.conversations_deleted) == (2, 1)
    assert await client.delete_conversation(gone_id) is False  # already deleted by the sweep
    assert await client.delete_conversation(kept_id) is True  # the attached one was the client's to keep


async def test_expired_id_can_be_reused_before_the_sweep(store: TableSessionStore):
    old = await turn(store, await make(store, "reuse", 60), 60, T0)
    with pytest.raises(SessionExistsError):
        await make(store, "reuse", 60, at=T0 + timedelta(seconds=30))  # still live
    fresh = await make(store, "reuse", 60, at=T0 + timedelta(minutes=5))  # expired: replaced whole
    assert fresh.inc != old.inc
    loaded = await store.load("o", "general", "reuse", now=T0 + timedelta(minutes=5))
    assert (loaded.messages, loaded.turns) == ([], 0)
    # the refused create wrote nothing; the old incarnation's index row is cleared
    assert (await sweep(store, now=T0 + timedelta(minutes=5))).orphans == 1
    assert len((await store.load("o", "general", "reuse", now=T0 + timedelta(minutes=5))).messages) == 0
