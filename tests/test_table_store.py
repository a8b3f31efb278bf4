"""The Table Storage session store against Azurite: layout, limits, ETag concurrency, round trips."""

from __future__ import annotations

import secrets
from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest

from agent_core import Content, Message
from service.storage import (
    InvalidSessionIdError,
    SessionConflictError,
    SessionExistsError,
    SessionNotFoundError,
    StoredSession,
    StoreLimits,
    TableSessionStore,
    TurnTooLargeError,
    partition_key,
)


async def new_session(store: TableSessionStore, session_id: str = "s1", **kw) -> StoredSession:
    return await store.create(
        owner=kw.get("owner", "alice"),
        agent="general",
        session_id=session_id,
        history=kw.get("history", "local"),
        service_session_id=None,
        state=kw.get("state", {}),
    )


def turn(n: int, size: int = 10) -> list[Message]:
    return [Message(role="user", text=f"q{n} " + "x" * size), Message(role="assistant", text=f"a{n}")]


async def commit(store: TableSessionStore, session: StoredSession, messages: list[Message]) -> StoredSession:
    return await store.commit_turn(session, messages)


async def test_create_load_commit_roundtrip(store: TableSessionStore):
    created = await new_session(store, state={"prefs": {"theme": "dark"}})
    with pytest.raises(SessionExistsError):
        await new_session(store)
    loaded = await store.load("alice", "general", "s1")
    assert loaded.state == {"prefs": {"theme": "dark"}}
    assert loaded.etag == created.etag
    tool_turn = [
        Message("user", text="hi"),
        Message("assistant", [Content.from_function_call("c1", "lookup", '{"q": 1}')]),
        Message("tool", [Content.from_function_result("c1", "found", name="lookup")]),
        Message("assistant", text="done"),
    ]
    committed = await commit(store, loaded, tool_turn)
    again = await store.load("alice", "general", "s1")
    assert again.messages == tool_turn
    assert (again.turns, again.message_count, again.etag) == (1, 4, committed.etag)


async def test_other_owner_or_agent_sees_nothing(store: TableSessionStore):
    await new_session(store)
    with pytest.raises(SessionNotFoundError):
        await store.load("mallory", "general", "s1")
    with pytest.raises(SessionNotFoundError):
        await store.load("alice", "shopping", "s1")
    assert partition_key("alice", "general", "s1") != partition_key("mallory", "general", "s1")
    with pytest.raises(InvalidSessionIdError, match="session_id"):
        partition_key("alice", "general", "x' or PartitionKey ne '")


async def test_stale_etag_conflicts_and_writes_nothing(store: TableSessionStore):
    session = await new_session(store)
    first = await store.load("alice", "general", "s1")
    second = await store.load("alice", "general", "s1")
    await commit(store, first, turn(1))
    with pytest.raises(SessionConflictError):
        await commit(store, second, turn(2))
    final = await store.load("alice", "general", "s1")
    assert [m.text for m in final.messages] == [m.text for m in turn(1)]
    assert final.turns == 1
    assert session.etag != final.etag


async def test_one_query_and_one_transaction_per_turn(store: TableSessionStore):
    session = await new_session(store)
    for n in range(1, 101):
        session = await commit(store, session, turn(n))
    before = store.counter.snapshot()
    loaded = await store.load("alice", "general", "s1")
    await commit(store, loaded, turn(101))
    after = store.counter.snapshot()
    delta = {k: after.get(k, 0) - before.get(k, 0) for k in after}
    assert {k: v for k, v in delta.items() if v} == {"GET": 1, "POST": 1}  # one query, one batch


async def test_large_values_are_split_transparently(store: TableSessionStore):
    session = await new_session(store)
    big = "".join(secrets.token_hex(16) for _ in range(40_000))  # 1.28 MB of incompressible-ish text
    wide = "é" * 40_000  # over 64 KiB as UTF-16
    session = await commit(store, session, [Message("user", text=wide), Message("assistant", text=big)])
    loaded = await store.load("alice", "general", "s1")
    assert [m.text for m in loaded.messages] == [wide, big]
    big_state = {"blob": "y" * 100_000}
    await store.commit_turn(replace(loaded, state=big_state), [])
    assert (await store.load("alice", "general", "s1")).state == big_state


async def test_too_large_turns_and_sessions_write_nothing(store: TableSessionStore):
    session = await new_session(store)
    huge = "".join(secrets.token_hex(32) for _ in range(80_000))  # ~5 MB, more than a transaction holds
    with pytest.raises(TurnTooLargeError, match="transaction"):
        await commit(store, session, [Message("assistant", text=huge)])
    small = store.with_limits(StoreLimits(ttl_seconds=60, max_session_bytes=1000, max_state_bytes=1000))
    with pytest.raises(TurnTooLargeError, match="limit is 1000"):
        await small.commit_turn(session, turn(1, size=2000))
    loaded = await store.load("alice", "general", "s1")
    assert (loaded.turns, loaded.messages, loaded.etag) == (0, [], session.etag)


async def test_expired_session_is_not_found_and_delete_is_whole(store: TableSessionStore):
    session = await new_session(store)
    session = await commit(store, session, turn(1))
    with pytest.raises(SessionNotFoundError):
        await store.load("alice", "general", "s1", now=datetime.now(UTC) + timedelta(days=2))
    assert await store.delete(session) is True
    with pytest.raises(SessionNotFoundError):
        await store.load("alice", "general", "s1")
    remaining = [e async for e in store.table.query_entities("PartitionKey eq @pk", parameters={"pk": session.pk})]
    assert remaining == []


def test_load_selects_every_header_column():
    from service.storage.layout import HEADER_COLUMNS, header_entity

    session = StoredSession(
        pk="p", session_id="s", owner="o", agent="a", history="local", service_session_id=None, state={},
        created_at=datetime.now(UTC), updated_at=datetime.now(UTC), expires_at=datetime.now(UTC),
        turns=0, inc="i", size_bytes=0,
    )  # fmt: skip
    columns = set(header_entity(session, {}).keys()) - {"PartitionKey", "RowKey"}
    assert columns <= set(HEADER_COLUMNS)  # a new header field must be added to the load's select list
