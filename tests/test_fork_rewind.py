"""Fork and rewind (POST .../fork, POST .../rewind) through HTTP, on Azurite and the echo model.

Counted from the outside: stored rows as the table holds them (read with azure-data-tables), model calls
as the echo model received them, states and histories through the API.
"""

from __future__ import annotations

import asyncio
import secrets
from collections.abc import AsyncIterator, Callable
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx2
import pytest
from azure.data.tables import UpdateMode

from agent_core.compaction import COMPACTION_STATE_KEY, CompactionState
from agent_core.messages import Message
from devtools.echo_model import EchoModel
from service.auth import SHARED_OWNER
from service.expiry import sweep
from service.storage import STORAGE_RETRIES, StoredSession, StoreLimits, TableSessionStore, partition_key
from service.storage.branching import BranchingError, fork, rewind
from service.storage.layout import turn_of
from service.storage.statelog import PATCH_COLUMNS

from .api_client import assert_problem, clean_proxy, create, history, say, say_raw, texts
from .azurite import Azurite
from .conftest import AppServers, FunctionAppServer, app_client
from .helpers import seen_user_messages
from .storage_proxy import StorageProxy

__all__ = ["clean_proxy"]  # a fixture
pytestmark = pytest.mark.usefixtures("clean_proxy")


@pytest.fixture
async def app_store(azurite: Azurite, function_app_server: FunctionAppServer) -> AsyncIterator[TableSessionStore]:
    """A store on the app's sessions table (straight to Azurite, not through the fault proxy), on the test's loop."""
    table = function_app_server.env["AGENT_SESSIONS_TABLE"]
    store = TableSessionStore.from_connection_string(azurite.connection_string, table)
    yield store
    await store.close()


def url(session: dict[str, Any], action: str = "") -> str:
    path = f"/agents/{session['agent']}/sessions/{session['session_id']}"
    return f"{path}/{action}" if action else path


async def chat(http: httpx2.AsyncClient, session: dict[str, Any], *lines: str) -> list[str]:
    replies = []
    for line in lines:
        response = await say(http, session, line)
        assert response.status_code == 200, response.text
        replies.append(response.json()["text"])
    return replies


async def partition_rows(store: TableSessionStore, session: dict[str, Any]) -> list[str]:
    """Every row key stored in the session's partition (header, turn rows, idempotency records)."""
    pk = partition_key(SHARED_OWNER, session["agent"], session["session_id"])
    rows = store.table.query_entities("PartitionKey eq @pk", parameters={"pk": pk}, select=["RowKey"])
    return [row["RowKey"] async for row in rows]


def turn_rows(keys: list[str]) -> list[int]:
    """The turns that have a first row among `keys` (continuations not counted)."""
    return sorted(turn_of(k) for k in keys if k.startswith("h~") and k.count("~") == 2)


def interleave(lines: list[str], replies: list[str]) -> list[str]:
    return [text for pair in zip(lines, replies, strict=True) for text in pair]


async def until(condition: Callable[[], bool]) -> None:
    """Wait (at most 5 s) until `condition` holds: the echo model counts requests in its own thread."""
    async with asyncio.timeout(5):
        while not condition():  # noqa: ASYNC110
            await asyncio.sleep(0.01)


async def all_rows(store: TableSessionStore) -> int:
    return len([row async for row in store.table.list_entities(select=["RowKey"])])


# --- rewind ------------------------------------------------------------------------------------------


@pytest.mark.parametrize("turn", [0, 1, 2, 3])
async def test_rewind_drops_the_turns_after_it(
    http: httpx2.AsyncClient, model: EchoModel, app_store: TableSessionStore, turn: int
):
    session = await create(http)
    lines = ["one", "two", "three"]
    replies = await chat(http, session, *lines)
    calls = model.model_calls

    response = await http.post(url(session, "rewind"), json={"turn": turn})
    assert response.status_code == 200, response.text
    body = response.json()
    assert (body["turns"], body["dropped_turns"], body["message_count"]) == (turn, 3 - turn, 2 * turn)
    assert model.model_calls == calls  # no model call
    assert texts(await history(http, session)) == interleave(lines, replies)[: 2 * turn]
    assert turn_rows(await partition_rows(app_store, session)) == list(range(1, turn + 1))

    reply = (await say(http, session, "again")).json()
    assert reply["turn"] == turn + 1
    assert seen_user_messages(reply["text"]) == [*lines[:turn], "again"]


async def test_regenerate_and_edit(http: httpx2.AsyncClient, model: EchoModel):
    session = await create(http)
    first, second = await chat(http, session, "my name is Ada", "what is my name?")
    assert (await http.post(url(session, "rewind"), json={"turn": 1})).status_code == 200
    [regenerated] = await chat(http, session, "what is my name?")  # regenerate: the same message again
    assert regenerated == second
    assert (await http.post(url(session, "rewind"), json={"turn": 0})).status_code == 200
    [edited] = await chat(http, session, "my name is Grace")  # edit: other text for the first message
    assert seen_user_messages(edited) == ["my name is Grace"]
    assert texts(await history(http, session)) == ["my name is Grace", edited]
    assert first != edited


async def test_rewind_to_a_pending_approval_asks_again_and_the_tool_runs_again(
    http: httpx2.AsyncClient, model: EchoModel
):
    session = await create(http, "shopping")
    asked = (await say(http, session, "place_order(B-7)")).json()
    [request] = asked["approval_requests"]
    approve = {"approvals": [{"id": request["id"], "approved": True}]}
    assert (await say_raw(http, session, approve)).status_code == 200
    assert (await http.get(url(session))).json()["pending_approvals"] == []

    rewound = (await http.post(url(session, "rewind"), json={"turn": 1})).json()
    assert [a["id"] for a in rewound["pending_approvals"]] == [request["id"]]  # the state as it was after turn 1
    assert (await say(http, session, "hello")).status_code == 409  # the approval is pending again
    again = await say_raw(http, session, {"approvals": [{"id": request["id"], "approved": False}]})
    assert again.status_code == 200, again.text
    contents = [c for m in await history(http, session) for c in m["contents"]]
    results = [c["result"] for c in contents if c["type"] == "function_result"]
    assert results == ["The user rejected this tool call."]  # the dropped approval's result is gone


async def test_a_rewound_idempotency_key_runs_again(http: httpx2.AsyncClient, model: EchoModel):
    session = await create(http)
    await chat(http, session, "one")
    keyed = await say(http, session, "two", headers={"Idempotency-Key": "k-2"})
    assert keyed.json()["turn"] == 2
    assert (await http.post(url(session, "rewind"), json={"turn": 1})).status_code == 200
    calls = model.model_calls
    again = await say(http, session, "two", headers={"Idempotency-Key": "k-2"})
    assert again.status_code == 200
    assert "Idempotent-Replayed" not in again.headers  # the dropped turn's reply is not replayed
    assert model.model_calls == calls + 1
    assert again.json()["turn"] == 2


async def test_a_rewind_racing_a_turn_gets_409_and_the_turn_commits(
    http: httpx2.AsyncClient, model: EchoModel, app_store: TableSessionStore
):
    session = await create(http)
    await chat(http, session, "one", "two")
    model.stall_next(0.6)
    running = asyncio.create_task(say(http, session, "three"))
    await until(lambda: model.model_calls == 3)  # the third turn holds the lease and waits for the model
    raced = await http.post(url(session, "rewind"), json={"turn": 0})
    problem = assert_problem(raced, 409)
    assert "in progress" in problem["detail"]
    assert raced.headers["Retry-After"] == "1"
    assert (await running).status_code == 200
    assert (await http.get(url(session))).json()["turns"] == 3
    assert turn_rows(await partition_rows(app_store, session)) == [1, 2, 3]


async def test_parallel_rewinds_drop_once(http: httpx2.AsyncClient, app_store: TableSessionStore):
    session = await create(http)
    await chat(http, session, "one", "two", "three")
    responses = await asyncio.gather(*(http.post(url(session, "rewind"), json={"turn": 1}) for _ in range(8)))
    dropped = sorted(r.json().get("dropped_turns", -1) for r in responses if r.status_code == 200)
    assert all(r.status_code in (200, 409) for r in responses), [r.text for r in responses]
    assert dropped.count(2) == 1  # one rewind dropped the turns; the others met its write or found nothing to drop
    assert set(dropped) <= {0, 2}
    assert turn_rows(await partition_rows(app_store, session)) == [1]


# --- fork --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("turn", [None, 0, 1, 2])
async def test_fork_copies_the_history_up_to_a_turn(
    http: httpx2.AsyncClient, model: EchoModel, app_store: TableSessionStore, turn: int | None
):
    source = await create(http, state={"team": "blue"})
    lines = ["one", "two", "three"]
    replies = await chat(http, source, *lines)
    before = await partition_rows(app_store, source)
    calls = model.model_calls

    response = await http.post(url(source, "fork"), json={} if turn is None else {"turn": turn})
    assert response.status_code == 201, response.text
    forked = response.json()
    kept = 3 if turn is None else turn
    assert forked["forked_from"] == {"session_id": source["session_id"], "turn": kept}
    assert forked["session_id"] != source["session_id"]
    assert response.headers["Location"].endswith(f"/api/agents/general/sessions/{forked['session_id']}")
    assert (forked["turns"], forked["message_count"], forked["history"]) == (kept, 2 * kept, "local")
    assert model.model_calls == calls
    transcript = interleave(lines, replies)
    assert texts(await history(http, forked)) == transcript[: 2 * kept]
    assert (await http.get(url(forked))).json()["state"] == {"team": "blue"}
    assert turn_rows(await partition_rows(app_store, forked)) == list(range(1, kept + 1))

    reply = (await say(http, forked, "branch")).json()
    assert (reply["turn"], seen_user_messages(reply["text"])) == (kept + 1, [*lines[:kept], "branch"])
    assert texts(await history(http, source)) == transcript  # the source is untouched
    assert await partition_rows(app_store, source) == before


async def test_fork_under_a_chosen_id_and_a_taken_one(http: httpx2.AsyncClient, app_store: TableSessionStore):
    source = await create(http)
    await chat(http, source, "one")
    taken = await create(http)
    rows = await all_rows(app_store)
    conflict = await http.post(url(source, "fork"), json={"session_id": taken["session_id"]})
    assert_problem(conflict, 409)
    assert await all_rows(app_store) == rows  # nothing written
    chosen = await http.post(url(source, "fork"), json={"session_id": "my-fork"})
    assert chosen.status_code == 201, chosen.text
    assert chosen.json()["session_id"] == "my-fork"
    assert texts(await history(http, {"agent": "general", "session_id": "my-fork"}))[0] == "one"


async def test_fork_at_a_pending_approval_leaves_the_call_out(http: httpx2.AsyncClient, model: EchoModel):
    source = await create(http, "shopping")
    await chat(http, source, "hello")
    asked = (await say(http, source, "place_order(B-7)")).json()
    assert asked["approval_requests"]

    forked = (await http.post(url(source, "fork"), json={"turn": 2})).json()
    detail = (await http.get(url(forked))).json()
    assert detail["pending_approvals"] == []
    kinds = [c["type"] for m in await history(http, forked) for c in m["contents"]]
    assert "function_call" not in kinds
    assert "function_approval_request" not in kinds
    reply = await say(http, forked, "go on")  # not refused for a pending approval, and the input stays valid
    assert reply.status_code == 200, reply.text
    sent = model.responses_requests()[-1]["input"]
    assert not [item for item in sent if item.get("type") in ("function_call", "function_call_output")]
    assert (await http.get(url(source))).json()["pending_approvals"]  # the source still waits for its decision


async def test_a_fork_is_listed_with_the_sources_title_and_metadata_unless_given(http: httpx2.AsyncClient):
    source = await create(http, title="Trip to Rome", metadata={"topic": "travel"})
    await chat(http, source, "one")
    copied = (await http.post(url(source, "fork"), json={})).json()
    assert (copied["title"], copied["metadata"]) == ("Trip to Rome", {"topic": "travel"})
    named = (await http.post(url(source, "fork"), json={"title": "Rome, take 2", "metadata": {}})).json()
    assert (named["title"], named["metadata"]) == ("Rome, take 2", {})
    listed = (await http.get("/agents/general/sessions", params={"limit": 3})).json()["sessions"]
    assert [s["session_id"] for s in listed] == [named["session_id"], copied["session_id"], source["session_id"]]
    assert [s["title"] for s in listed] == ["Rome, take 2", "Trip to Rome", "Trip to Rome"]
    assert [s["turns"] for s in listed] == [1, 1, 1]


# --- refused -----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("action", "body", "status"),
    [
        ("rewind", None, 400),
        ("rewind", {}, 400),
        ("rewind", {"turn": "1"}, 400),
        ("rewind", {"turn": True}, 400),
        ("rewind", {"turn": -1}, 400),
        ("rewind", {"turn": 1, "extra": 1}, 400),
        ("rewind", {"turn": 3}, 409),
        ("fork", {"turn": 3}, 409),
        ("fork", {"turn": 1.5}, 400),
        ("fork", {"session_id": "no spaces"}, 400),
    ],
)
async def test_bad_input_is_refused_and_nothing_is_written(
    http: httpx2.AsyncClient, app_store: TableSessionStore, action: str, body: Any, status: int
):
    session = await create(http)
    await chat(http, session, "one", "two")
    rows = await all_rows(app_store)
    response = await http.post(url(session, action), **({} if body is None else {"json": body}))
    problem = assert_problem(response, status)
    if status == 409:
        assert problem["turns"] == 2
        assert "turn 3 does not exist" in problem["detail"]
    assert await all_rows(app_store) == rows
    assert (await http.get(url(session))).json()["turns"] == 2


@pytest.mark.parametrize("action", ["fork", "rewind"])
async def test_service_managed_sessions_are_refused(
    http: httpx2.AsyncClient, app_store: TableSessionStore, action: str
):
    session = await create(http, history="service")
    await chat(http, session, "one")
    rows = await all_rows(app_store)
    problem = assert_problem(await http.post(url(session, action), json={"turn": 0}), 409)
    assert "history lives on the model service" in problem["detail"]
    assert await all_rows(app_store) == rows


@pytest.mark.parametrize("action", ["fork", "rewind"])
async def test_unknown_sessions_and_wrong_methods(http: httpx2.AsyncClient, action: str):
    missing = {"agent": "general", "session_id": "nope"}
    assert_problem(await http.post(url(missing, action), json={"turn": 0}), 404)
    session = await create(http)
    assert_problem(await http.post(url({**session, "agent": "shopping"}, action), json={"turn": 0}), 404)
    assert_problem(await http.get(url(session, action)), 405)


# --- many rows: atomic for readers, and an interrupted rewind ---------------------------------------


async def grow(store: TableSessionStore, session: dict[str, Any], turns: int) -> None:
    """`turns` more turns committed straight through the store (as a turn commits them), quickly."""
    for n in range(turns):
        stored = await store.load(SHARED_OWNER, session["agent"], session["session_id"])
        said = [Message("user", [f"line {n}"]), Message("assistant", [f"reply {n}"])]
        await store.commit_turn(stored, said)


async def test_a_rewind_of_many_rows_and_a_fork_of_them(http: httpx2.AsyncClient, app_store: TableSessionStore):
    store = app_store
    session = await create(http)
    await grow(store, session, 130)
    forked = (await http.post(url(session, "fork"), json={"turn": 120})).json()
    assert forked["turns"] == 120
    assert turn_rows(await partition_rows(store, forked)) == list(range(1, 121))  # over two transactions

    response = await http.post(url(session, "rewind"), json={"turn": 5})
    assert response.status_code == 200, response.text
    assert response.json()["dropped_turns"] == 125
    assert turn_rows(await partition_rows(store, session)) == [1, 2, 3, 4, 5]
    assert (await http.get(url(session))).json()["turns"] == 5
    assert len(await history(http, session)) == 10
    assert len(await history(http, forked)) == 240


async def test_an_interrupted_rewind_is_invisible_and_the_next_turn_finishes_it(
    http: httpx2.AsyncClient, app_store: TableSessionStore, storage_proxy: StorageProxy
):
    store = app_store
    session = await create(http)
    await grow(store, session, 110)
    storage_proxy.fail_next("POST", 503, count=40, match="$batch")  # every deletion batch fails
    response = await http.post(url(session, "rewind"), json={"turn": 2})
    storage_proxy.clear()
    assert response.status_code == 200, response.text  # the rewind happened (its header write), rows remain
    assert len(turn_rows(await partition_rows(store, session))) == 110
    assert texts(await history(http, session)) == ["line 0", "reply 0", "line 1", "reply 1"]  # readers see it whole

    reply = await say(http, session, "three")
    assert reply.status_code == 200, reply.text
    assert reply.json()["turn"] == 3
    assert turn_rows(await partition_rows(store, session)) == [1, 2, 3]  # the turn deleted what was left
    assert texts(await history(http, session))[:4] == ["line 0", "reply 0", "line 1", "reply 1"]


async def test_a_fork_that_fails_leaves_no_session_and_the_sweep_clears_its_rows(
    app_servers: AppServers, azurite: Azurite, storage_proxy: StorageProxy, model: EchoModel
):
    table = f"forks{secrets.token_hex(4)}"  # a table of its own, so the sweep below reads only this test's rows
    store = TableSessionStore.from_connection_string(azurite.connection_string, table)
    with app_servers.serve(AGENT_SESSIONS_TABLE=table) as server:
        async with app_client(server) as http:
            session = await create(http)
            await grow(store, session, 120)  # 120 rows and the header: two transactions, the header in the last
            header_batch = b'"RowKey": "h"'
            storage_proxy.fail_next("POST", 503, count=1 + STORAGE_RETRIES, match="$batch", body=header_batch)
            failed = await http.post(url(session, "fork"), json={"session_id": "doomed"})
            storage_proxy.clear()
            assert_problem(failed, 503)
            doomed = {"agent": "general", "session_id": "doomed"}
            assert_problem(await http.get(url(doomed)), 404)  # it does not exist: its header was never written
    assert len(turn_rows(await partition_rows(store, doomed))) == 100  # the first transaction's rows
    assert (await sweep(store, now=datetime.now(UTC) + timedelta(days=2))).orphans == 1
    assert await partition_rows(store, doomed) == []  # the sweep found them from the index row written first
    await store.table.delete_table()
    await store.close()


# --- the state as it was after each turn (store level) ------------------------------------------------


def compaction(summary: str | None, ratio: float) -> CompactionState:
    return CompactionState(summary=summary, token_ratio=ratio)


LONG_SUMMARY = "the story so far " * 2_000  # 34 KB: over one inline property, so the patch is compressed
STATES: list[dict[str, Any]] = [
    {"team": "blue"},  # at create
    {"team": "blue", "seen": [1]},
    {"team": "blue", "seen": [1]},  # unchanged: no patch stored
    {"team": "red", "seen": [1, 2], COMPACTION_STATE_KEY: compaction(None, 1.1)},
    {"team": "red", "seen": [1, 2], COMPACTION_STATE_KEY: compaction(LONG_SUMMARY, 1.2)},
    {"team": "red", "seen": [1, 2], COMPACTION_STATE_KEY: compaction(LONG_SUMMARY, 1.3)},  # only the ratio moves
    {"seen": None, "nested": {"a": {"b": [None, {"c": 1}]}}},
]


async def test_fork_and_rewind_restore_the_state_after_each_turn(store: TableSessionStore):
    created = await store.create(
        owner="o", agent="a", session_id="s", history="local", service_session_id=None, state=STATES[0]
    )
    stored: StoredSession = created
    for n, state in enumerate(STATES[1:], start=1):
        stored = await store.commit_turn(replace(stored, state=state), [Message("user", [f"turn {n}"])])
    patches = {
        turn_of(row["RowKey"]): {k: v for k, v in row.items() if k in PATCH_COLUMNS and v is not None}
        async for row in store.table.query_entities(
            "PartitionKey eq @pk and RowKey gt @h and RowKey lt @end",
            parameters={"pk": stored.pk, "h": "h~", "end": "h~~"},
            select=["RowKey", *PATCH_COLUMNS],
        )
    }
    assert patches[2] == {}  # turn 2 changed nothing: no patch
    assert list(patches[5]) == ["pj"]
    assert len(patches[5]["pj"]) < 200  # a new token ratio costs a few bytes
    assert "pzn" in patches[6]  # undoing turn 6 brings the long summary back: compressed
    for turn, state in enumerate(STATES):
        forked = await fork(store, "o", "a", "s", turn=turn, new_id=f"f{turn}")
        assert (await store.load("o", "a", f"f{turn}")).state == state
        assert forked.session.turns == turn
    for turn in reversed(range(len(STATES))):  # rewinding one turn at a time walks the states back
        rewound, _ = await rewind(store, "o", "a", "s", turn)
        assert rewound.state == STATES[turn]
        assert (await store.load("o", "a", "s")).state == STATES[turn]
    # a fork of a fork keeps the chain: its own turns rewind to the same states
    for turn in reversed(range(4)):
        assert (await rewind(store, "o", "a", "f4", turn))[0].state == STATES[turn]


async def test_a_state_changed_outside_the_turns_is_refused_not_guessed(store: TableSessionStore):
    created = await store.create(
        owner="o", agent="a", session_id="s", history="local", service_session_id=None, state={"a": 1}
    )
    stored = await store.commit_turn(replace(created, state={"a": 1, "b": 2}), [Message("user", ["one"])])
    # the header's state rewritten behind the turns' back: turn 1's patch ("remove b") no longer applies
    await store.table.update_entity({"PartitionKey": stored.pk, "RowKey": "h", "sj": '{"a":1}'}, mode=UpdateMode.MERGE)
    with pytest.raises(BranchingError, match="cannot be restored"):
        await rewind(store, "o", "a", "s", 0)
    assert (await store.load("o", "a", "s")).turns == 1  # nothing written


async def test_turns_whose_history_retention_removed_are_refused(store: TableSessionStore):
    kept = store.with_limits(StoreLimits(keep_turns=2))
    stored = await kept.create(owner="o", agent="a", session_id="s", history="local", service_session_id=None, state={})
    # turns 1-5 keep their context from message 0 (the window spans them all); turn 6 moves it to itself
    for turn, first_kept in [(1, 0), (2, 0), (3, 0), (4, 0), (5, 0), (6, 10)]:
        loaded = await kept.load("o", "a", "s")
        said = [Message("user", [f"line {turn}"]), Message("assistant", [f"reply {turn}"])]
        state = {COMPACTION_STATE_KEY: CompactionState(first_kept=first_kept)}
        stored = await kept.commit_turn(replace(loaded, state=state), said, keep_from=first_kept)
    assert stored.kept_from == 5  # turns 1-4 went: before the window and the last two turns
    rows = await kept.get_header(stored.pk)
    assert rows is not None
    for turn, reason in [(4, "older than the history kept"), (5, "messages of turns no longer kept")]:
        for attempt in (fork(kept, "o", "a", "s", turn=turn, new_id=f"f{turn}"), rewind(kept, "o", "a", "s", turn)):
            with pytest.raises(BranchingError, match=reason):
                await attempt
    forked = await fork(kept, "o", "a", "s", turn=6, new_id="f6")
    assert forked.session.kept_from == 5
    loaded = await kept.load("o", "a", "f6")  # the fork loads its window: turn 6 alone
    assert [m.text for m in loaded.messages] == ["line 6", "reply 6"]
    assert (await kept.get_header(stored.pk)) == rows  # nothing written to the source
