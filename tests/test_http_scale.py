"""Long histories through HTTP: over 1,000 messages and 2 MB, one read and two writes per turn, and once the
served agent has compacted, a turn reads its window only."""

from __future__ import annotations

import httpx2

from agent_core import Message
from service.storage import StoredSession, StoreLimits, TableSessionStore

from .azurite import Azurite
from .conftest import FunctionAppServer
from .helpers import seen_user_messages
from .storage_proxy import StorageProxy

FILLER = "lorem ipsum dolor sit amet " * 40  # ~1 KB per message


async def seed_turns(seeder: TableSessionStore, stored: StoredSession, until: int) -> StoredSession:
    """Commit turns through the store (the path a turn takes), without calling the model."""
    while stored.turns < until:
        n = stored.turns
        messages = [Message("user", text=f"question {n} {FILLER}"), Message("assistant", text=f"answer {n} {FILLER}")]
        stored = await seeder.commit_turn(stored, messages)
    return stored


async def test_round_trips_stay_flat_and_long_history_works(
    http: httpx2.AsyncClient, function_app_server: FunctionAppServer, azurite: Azurite, storage_proxy: StorageProxy
):
    session = (await http.post("/agents/general/sessions", json={})).json()
    sid = session["session_id"]
    url = f"/agents/general/sessions/{sid}/messages"
    seeder = TableSessionStore.from_connection_string(
        azurite.connection_string, function_app_server.env["AGENT_SESSIONS_TABLE"], StoreLimits(3600, 64 << 20)
    )
    store = function_app_server.store
    try:
        for history_turns in (1, 100, 1000, 1001):
            stored = await seed_turns(seeder, await seeder.load("anonymous", "general", sid), history_turns)
            ops_before, requests_before = dict(store.operations), store.counter.snapshot()
            storage_proxy.clear()
            response = await http.post(url, json={"message": f"after {history_turns} turns"})
            assert response.status_code == 200, response.text
            ops = {k: v - ops_before.get(k, 0) for k, v in store.operations.items()}
            requests = {k: v - requests_before.get(k, 0) for k, v in store.counter.snapshot().items()}
            assert ops == {"read": 1, "write": 2}, history_turns  # the read, the lease, the commit
            # the one read is one range query: the header and the window, in one request or (when this process
            # had not seen the window's current size) two, reading exactly the header and the window's rows
            assert requests["GET"] in (1, 2), history_turns
            assert storage_proxy.entities_read() == 1 + stored.window_rows, history_turns
            assert (requests["PATCH"], requests["POST"]) == (1, 1)  # the lease (a merge), the transaction
            seen = seen_user_messages(response.json()["text"])
            if history_turns <= 100:  # within the served agents' budget: everything is sent
                assert len(seen) == stored.turns + 1
            else:  # past it: the summary and the last turns
                assert len(seen) < 200
                assert seen[-1] == f"after {history_turns} turns"
        # turn 1,001 already read only the window the compaction at turn 1,000 left
        assert stored.window_rows < 200 < stored.turns
    finally:
        await seeder.close()
    final = await all_message_texts(http, url)
    assert len(final) > 2000
    assert sum(len(t) for t in final) > 2_000_000


async def all_message_texts(http: httpx2.AsyncClient, url: str) -> list[str]:
    texts: list[str] = []
    cursor = None
    while True:
        page = (await http.get(url, params={"limit": 200, **({"cursor": cursor} if cursor else {})})).json()
        texts += ["".join(c.get("text", "") for c in m["contents"]) for m in page["messages"]]
        cursor = page["next_cursor"]
        if cursor is None:
            return texts
