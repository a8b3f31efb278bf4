"""The turn lease and the sweep at the store, against Azurite: takeovers, crashes, concurrent and failing sweeps."""

from __future__ import annotations

import asyncio
import os
import signal
import sys
import textwrap
import time
from dataclasses import replace
from datetime import UTC, datetime, timedelta

import httpx2
import pytest

from agent_core import Message
from devtools.echo_model import EchoModel
from service.expiry import sweep
from service.storage import SessionConflictError, TableSessionStore

from .api_client import assert_problem, create, say
from .azurite import Azurite
from .conftest import FunctionAppServer
from .storage_proxy import StorageProxy

TURN = [Message("user", text="hi"), Message("assistant", text="hello")]


async def test_a_turn_whose_lease_expired_and_was_taken_over_writes_nothing(store: TableSessionStore):
    short = store.with_limits(replace(store.limits, lease_seconds=1))
    created = await short.create(
        owner="o", agent="general", session_id="s", history="local", service_session_id=None, state={}
    )
    now = datetime.now(UTC)
    slow = await short.claim(created, "lease-a", now=now)
    loaded = await short.load("o", "general", "s")
    assert loaded.leased(now + timedelta(milliseconds=500))
    assert not loaded.leased(now + timedelta(seconds=2))
    taken = await short.claim(loaded, "lease-b", now=now + timedelta(seconds=2))  # A's lease has expired
    await short.commit_turn(taken, TURN)
    with pytest.raises(SessionConflictError):
        await short.commit_turn(slow, [Message("user", text="late"), Message("assistant", text="late")])
    final = await short.load("o", "general", "s")
    assert ([m.text for m in final.messages], final.turns, final.last_turn_id) == (["hi", "hello"], 1, "lease-b")
    assert not final.leased(datetime.now(UTC))


async def test_claiming_a_changed_header_conflicts(store: TableSessionStore):
    created = await store.create(
        owner="o", agent="general", session_id="s", history="local", service_session_id=None, state={}
    )
    now = datetime.now(UTC)
    await store.claim(created, "first", now=now)
    with pytest.raises(SessionConflictError):
        await store.claim(created, "second", now=now)  # read before the first claim: its ETag is stale


HOLD_LEASE = textwrap.dedent(
    """
    import asyncio, sys
    from datetime import UTC, datetime
    from service.storage import StoreLimits, TableSessionStore

    async def main(connection: str, table: str, session_id: str) -> None:
        store = TableSessionStore.from_connection_string(connection, table, StoreLimits(lease_seconds=3))
        session = await store.load("anonymous", "general", session_id)
        await store.claim(session, "crashing-turn", now=datetime.now(UTC))
        print("leased", flush=True)
        await asyncio.sleep(3600)  # a turn that never ends: killed with SIGKILL

    asyncio.run(main(*sys.argv[1:]))
    """
)


async def test_kill_9_with_a_lease_held_frees_the_session_when_the_lease_expires(
    http: httpx2.AsyncClient, model: EchoModel, function_app_server: FunctionAppServer, azurite: Azurite
):
    session = await create(http)
    table = function_app_server.env["AGENT_SESSIONS_TABLE"]
    holder = await asyncio.create_subprocess_exec(
        sys.executable, "-c", HOLD_LEASE, azurite.connection_string, table, session["session_id"],
        stdout=asyncio.subprocess.PIPE,
    )  # fmt: skip
    try:
        assert holder.stdout is not None
        line = await asyncio.wait_for(holder.stdout.readline(), timeout=60)
        assert line.decode().strip() == "leased"
        leased_at = time.monotonic()
    finally:
        holder.send_signal(signal.SIGKILL)
        await asyncio.wait_for(holder.wait(), timeout=10)
    assert holder.returncode == -signal.SIGKILL
    assert_problem(await say(http, session, "blocked"), 409)  # the dead turn's lease still holds
    assert model.responses_requests() == []
    await asyncio.sleep(max(0.0, 3.2 - (time.monotonic() - leased_at)))
    response = await say(http, session, "after the lease expired")
    assert response.status_code == 200, response.text
    assert response.json()["turn"] == 1


async def expired_sessions(store: TableSessionStore, count: int, at: datetime) -> None:
    short = store.with_limits(replace(store.limits, ttl_seconds=60))
    for n in range(count):
        await short.create(
            owner="o", agent="general", session_id=f"e{n}", history="local", service_session_id=None, state={}, now=at
        )


async def test_concurrent_sweeps_do_not_double_count(store: TableSessionStore):
    t0 = datetime(2026, 1, 1, 12, tzinfo=UTC)
    await expired_sessions(store, 8, t0)
    results = await asyncio.gather(*(sweep(store, now=t0 + timedelta(minutes=5)) for _ in range(3)))
    assert sum(r.expired for r in results) == 8  # each session counted by the one sweep whose delete won
    assert [r async for r in store.due_index_rows(t0 + timedelta(days=1))] == []


async def test_sweep_continues_past_a_failing_session(azurite: Azurite, storage_proxy: StorageProxy):
    connection = azurite.connection_string.replace(f":{azurite.port}/", f":{storage_proxy.port}/")
    store = TableSessionStore.from_connection_string(connection, f"f{os.getpid()}{time.time_ns() % 10**6}")
    await store.ensure_table()
    try:
        t0 = datetime(2026, 1, 1, 12, tzinfo=UTC)
        await expired_sessions(store, 4, t0)
        storage_proxy.fail_next("GET", 500, count=3, match="~e2'")  # reading e2's header fails, retries too
        first = await sweep(store, now=t0 + timedelta(minutes=5))
        assert (first.expired, first.failed) == (3, 1)
        second = await sweep(store, now=t0 + timedelta(minutes=5))  # e2 stayed due and goes now
        assert (second.expired, second.failed) == (1, 0)
    finally:
        storage_proxy.clear()
        await store.table.delete_table()
        await store.close()
