"""Long conversations through HTTP: a turn reads its window (the header and the turns from the compaction's
first kept message on, one range query), the served agents compact with a summary, service-kept sessions send
`truncation`, retention removes old rows, and history pages read only the page.

The 2,000-turn conversation is seeded straight into its partition (devtools/seed_history.py: the store's
own rows, and the header a served agent's compaction would leave: a summary and a window of the last turns),
then real turns run on it over HTTP and compact it further.
"""

from __future__ import annotations

import base64
import json
from collections.abc import AsyncIterator, Callable
from typing import Any

import httpx2
import pytest
from azure.data.tables.aio import TableClient

from agent_core import Message
from devtools.echo_model import EchoModel
from devtools.seed_history import seed_history
from service.storage import StoredSession, StoreLimits, TableSessionStore

from .api_client import assert_problem, create, say
from .azurite import Azurite
from .conftest import FunctionAppServer
from .helpers import seen_user_messages
from .storage_proxy import StorageProxy

OWNER, AGENT = "anonymous", "general"
BUDGET = "1500"
"""The served agents' token budget in these tests (AGENT_COMPACTION_TOKEN_BUDGET): a few dozen short turns."""
WINDOW_WORDS = 3000
"""The echo model's context window (words): a chat sent whole would outgrow it within ~40 turns."""


def seeded_turn(turn: int) -> list[Message]:
    return [Message("user", text=f"question {turn}"), Message("assistant", text=f"answer {turn} " + "word " * 20)]


@pytest.fixture
async def raw(azurite: Azurite, function_app_server: FunctionAppServer) -> AsyncIterator[TableClient]:
    """The app's table, directly (seeding, and counting the rows stored)."""
    name = function_app_server.env["AGENT_SESSIONS_TABLE"]
    table = TableClient.from_connection_string(azurite.connection_string, name)
    yield table
    await table.close()


@pytest.fixture(autouse=True)
async def drop_new_sessions(http: httpx2.AsyncClient) -> AsyncIterator[None]:
    """Delete the sessions a test made: long histories left as the newest would weigh on later tests that open
    the newest session (the playground's)."""

    async def listed() -> set[str]:
        page = (await http.get(f"/agents/{AGENT}/sessions", params={"limit": 100})).json()
        return {s["session_id"] for s in page["sessions"]}

    before = await listed()
    yield
    for session_id in await listed() - before:
        await http.delete(f"/agents/{AGENT}/sessions/{session_id}")


@pytest.fixture
async def reader(azurite: Azurite, function_app_server: FunctionAppServer) -> AsyncIterator[TableSessionStore]:
    """A store of the test's own on the app's table: headers read without counting as the app's."""
    name = function_app_server.env["AGENT_SESSIONS_TABLE"]
    store = TableSessionStore.from_connection_string(azurite.connection_string, name, StoreLimits(3600, 64 << 20))
    yield store
    await store.close()


@pytest.fixture
def windowed(configure: Callable[..., None], model: EchoModel) -> EchoModel:
    configure(AGENT_COMPACTION_TOKEN_BUDGET=BUDGET)
    model.context_window = WINDOW_WORDS
    return model


async def header(reader: TableSessionStore, session_id: str) -> StoredSession:
    return await reader.load(OWNER, AGENT, session_id, with_history=False)


async def seeded(
    http: httpx2.AsyncClient, reader: TableSessionStore, raw: TableClient, turns: int, window: int | None
) -> StoredSession:
    session = await create(http)
    stored = await header(reader, session["session_id"])
    return await seed_history(raw, stored, turns, seeded_turn, window_turns=window)


def input_texts(body: dict[str, Any]) -> list[str]:
    """The text of every input item the model received, in order."""
    texts = []
    for item in body["input"]:
        content = item.get("content")
        if isinstance(content, str):
            texts.append(content)
        elif isinstance(content, list):
            texts.append("".join(part.get("text", "") for part in content if isinstance(part, dict)))
        else:
            texts.append(json.dumps(item))
    return texts


class Counted:
    """The app store's logical operations and the storage proxy's requests and entities around one call."""

    def __init__(self, server: FunctionAppServer, proxy: StorageProxy) -> None:
        self.server, self.proxy = server, proxy

    async def __aenter__(self) -> Counted:
        self.before = dict(self.server.store.operations)
        self.proxy.clear()
        return self

    async def __aexit__(self, *exc: object) -> None:
        after = self.server.store.operations
        self.operations = {k: v - self.before.get(k, 0) for k, v in after.items() if v != self.before.get(k, 0)}
        self.gets = sum(1 for method, _ in self.proxy.requests if method == "GET")
        self.entities = self.proxy.entities_read()


# --- a turn reads its window ---------------------------------------------------------------------------


async def test_a_chat_over_http_compacts_and_then_reads_only_its_window(
    reader: TableSessionStore,
    http: httpx2.AsyncClient,
    windowed: EchoModel,
    function_app_server: FunctionAppServer,
    storage_proxy: StorageProxy,
):
    session = await create(http)
    sid = session["session_id"]
    for n in range(40):
        stored = await header(reader, sid)
        async with Counted(function_app_server, storage_proxy) as counted:
            reply = await say(http, session, f"message {n} " + "filler " * 30)
        assert reply.status_code == 200, reply.text
        assert counted.operations == {"read": 1, "write": 2}
        assert counted.entities == 1 + stored.window_rows  # the header and the window's rows, nothing else
        assert counted.gets == 1  # this process knew the window's size: one request
    final = await header(reader, sid)
    assert final.window_turn > 10  # the window moved on: the early turns are no longer read
    assert final.window_rows == final.turns - final.window_turn + 1
    last = windowed.responses_requests()[-1]
    sent = input_texts(last)
    assert sent[0].startswith("Summary of the earlier conversation:")
    assert sent[-1].startswith("message 39 ")
    assert not any(text.startswith("message 0 ") for text in sent)


async def test_a_2000_turn_conversation_keeps_answering_with_the_summary_and_the_last_turns(
    reader: TableSessionStore,
    http: httpx2.AsyncClient,
    windowed: EchoModel,
    function_app_server: FunctionAppServer,
    storage_proxy: StorageProxy,
    raw: TableClient,
):
    stored = await seeded(http, reader, raw, 2000, window=12)
    session = {"session_id": stored.session_id, "agent": AGENT}
    for n in range(8):
        before = await header(reader, stored.session_id)
        async with Counted(function_app_server, storage_proxy) as counted:
            reply = await say(http, session, f"late question {n}")
        assert reply.status_code == 200, reply.text
        assert reply.json()["turn"] == 2001 + n
        assert counted.operations == {"read": 1, "write": 2}
        assert counted.entities == 1 + before.window_rows <= 1 + 12 + n  # bounded by the window, not by 2,000
        # the rows were seeded behind the app's back: its first load asked for the window it knew (none), then
        # for exactly the rest; from then on it knows the window's size
        assert counted.gets == (2 if n == 0 else 1)
        body = windowed.responses_requests()[-1]
        sent = input_texts(body)
        assert sent[0].startswith("Summary of the earlier conversation:")
        users = seen_user_messages(reply.json()["text"])
        assert users[-1] == f"late question {n}"
        early = [int(u.split()[1]) for u in users if u.startswith("question ")]
        assert min(early, default=2000) >= 1989  # turns before the window are not sent
        if n == 0:
            assert early == list(range(1989, 2001))  # the window's turns are
    after = await header(reader, stored.session_id)
    assert after.turns == 2008
    assert after.message_count == 4000 + 16


async def test_an_idempotency_key_costs_one_more_read_request_sent_with_the_window(
    http: httpx2.AsyncClient, function_app_server: FunctionAppServer, storage_proxy: StorageProxy
):
    session = await create(http)
    await say(http, session, "first")
    url = f"/agents/general/sessions/{session['session_id']}/messages"
    async with Counted(function_app_server, storage_proxy) as counted:
        first = await http.post(url, json={"message": "keyed"}, headers={"Idempotency-Key": "k-1"})
    assert (counted.operations, counted.gets) == ({"read": 1, "write": 2}, 2)  # the window + the key's records
    async with Counted(function_app_server, storage_proxy) as again:
        replay = await http.post(url, json={"message": "keyed"}, headers={"Idempotency-Key": "k-1"})
    assert (again.operations, again.gets) == ({"read": 1}, 2)
    assert replay.headers["Idempotent-Replayed"] == "true"
    assert replay.json() == first.json()


# --- service-kept sessions send truncation ---------------------------------------------------------------


@pytest.mark.parametrize(
    ("setting", "options", "sent"),
    [(None, {}, "auto"), ("disabled", {}, "disabled"), (None, {"truncation": "disabled"}, "disabled")],
)
async def test_service_sessions_send_truncation(
    http: httpx2.AsyncClient,
    model: EchoModel,
    configure: Callable[..., None],
    setting: str | None,
    options: dict[str, str],
    sent: str,
):
    if setting is not None:
        configure(AGENT_SERVICE_TRUNCATION=setting)
    session = await create(http, history="service")
    url = f"/agents/general/sessions/{session['session_id']}/messages"
    reply = await http.post(url, json={"message": "hello", "options": options})
    assert reply.status_code == 200, reply.text
    assert model.responses_requests()[-1]["truncation"] == sent


async def test_local_sessions_send_no_truncation(http: httpx2.AsyncClient, model: EchoModel):
    session = await create(http)
    await say(http, session, "hello")
    assert "truncation" not in model.responses_requests()[-1]


async def test_a_service_session_outgrowing_the_window_goes_on_with_truncation(
    http: httpx2.AsyncClient, model: EchoModel
):
    model.context_window = 400
    session = await create(http, history="service")
    for n in range(12):
        reply = await say(http, session, f"service message {n} " + "words " * 40)
        assert reply.status_code == 200, reply.text
    assert len(seen_user_messages(reply.json()["text"])) < 12  # the service dropped the oldest items


# --- retention ------------------------------------------------------------------------------------------


async def turn_rows(raw: TableClient, stored: StoredSession) -> list[str]:
    query = "PartitionKey eq @pk and RowKey ge @low and RowKey lt @high"
    params = {"pk": stored.pk, "low": f"h~{stored.inc}~", "high": f"h~{stored.inc}~~"}
    return [str(r["RowKey"]) async for r in raw.query_entities(query, parameters=params, select=["RowKey"])]


async def test_retention_removes_the_rows_of_old_turns_in_the_commits(
    reader: TableSessionStore,
    http: httpx2.AsyncClient,
    windowed: EchoModel,
    configure: Callable[..., None],
    function_app_server: FunctionAppServer,
    raw: TableClient,
):
    configure(AGENT_COMPACTION_TOKEN_BUDGET=BUDGET, AGENT_HISTORY_RETENTION_TURNS="5")
    session = await create(http)
    sid = session["session_id"]
    sizes = []
    for n in range(40):
        assert (await say(http, session, f"kept? {n} " + "filler " * 30)).status_code == 200
        sizes.append((await header(reader, sid)).size_bytes)
    stored = await header(reader, sid)
    rows = await turn_rows(raw, stored)
    assert stored.kept_from > 1
    assert len(rows) == stored.turns - stored.kept_from + 1  # one row per kept turn, none older
    assert stored.turns - stored.kept_from + 1 <= max(5, stored.turns - stored.window_turn + 1) + 8
    assert max(sizes) > sizes[-1]  # removing rows frees their bytes
    page = (await http.get(f"/agents/general/sessions/{sid}/messages", params={"limit": 2})).json()
    assert page["messages"][0]["contents"][0]["text"].startswith(f"kept? {stored.kept_from - 1} ")


async def test_retention_of_turns_older_than_the_window_reads_their_keys_in_batches(
    reader: TableSessionStore,
    http: httpx2.AsyncClient,
    configure: Callable[..., None],
    function_app_server: FunctionAppServer,
    storage_proxy: StorageProxy,
    raw: TableClient,
):
    configure(AGENT_HISTORY_RETENTION_TURNS="3")
    stored = await seeded(http, reader, raw, 300, window=20)
    session = {"session_id": stored.session_id, "agent": AGENT}
    reads = []
    for n in range(3):
        async with Counted(function_app_server, storage_proxy) as counted:
            assert (await say(http, session, f"on top {n}")).status_code == 200
        reads.append(counted.operations["read"])
    assert reads == [2, 2, 2]  # the window, then the keys of the next batch of old turns
    after = await header(reader, stored.session_id)
    assert after.kept_from > 1
    assert len(await turn_rows(raw, after)) == after.turns - after.kept_from + 1


# --- history pages ----------------------------------------------------------------------------------------


async def all_pages(http: httpx2.AsyncClient, session_id: str, order: str, limit: int) -> list[str]:
    url = f"/agents/{AGENT}/sessions/{session_id}/messages"
    found: list[str] = []
    cursor: str | None = None
    while True:
        params: dict[str, Any] = {"limit": limit, "order": order, **({"cursor": cursor} if cursor else {})}
        page = (await http.get(url, params=params)).json()
        found += ["".join(c.get("text", "") for c in m["contents"]) for m in page["messages"]]
        assert len(page["messages"]) <= limit
        cursor = page["next_cursor"]
        if cursor is None:
            return found


@pytest.mark.parametrize("limit", [1, 7, 50])
async def test_history_pages_in_both_orders(
    http: httpx2.AsyncClient, reader: TableSessionStore, raw: TableClient, limit: int
):
    stored = await seeded(http, reader, raw, 60, window=10)
    every = [text for turn in range(1, 61) for text in (m.text for m in seeded_turn(turn))]
    assert await all_pages(http, stored.session_id, "asc", limit) == every
    assert await all_pages(http, stored.session_id, "desc", limit) == every[::-1]


@pytest.mark.parametrize("order", ["asc", "desc"])
async def test_a_page_costs_the_same_whatever_the_sessions_length(
    http: httpx2.AsyncClient,
    function_app_server: FunctionAppServer,
    storage_proxy: StorageProxy,
    reader: TableSessionStore,
    raw: TableClient,
    order: str,
):
    costs = []
    for turns in (10, 2000):
        stored = await seeded(http, reader, raw, turns, window=5)
        url = f"/agents/{AGENT}/sessions/{stored.session_id}/messages"
        first = (await http.get(url, params={"limit": 20, "order": order})).json()
        async with Counted(function_app_server, storage_proxy) as counted:
            page = await http.get(url, params={"limit": 20, "order": order, "cursor": first["next_cursor"]})
        assert page.status_code == 200
        assert len(page.json()["messages"]) == 20
        costs.append((counted.gets, counted.entities))
    assert costs[0] == costs[1] == (2, 1 + 10)  # the header's point read, then one range query of 10 turns


async def test_cursors_are_bound_to_their_session_and_order(
    http: httpx2.AsyncClient, reader: TableSessionStore, raw: TableClient
):
    one = await seeded(http, reader, raw, 10, window=None)
    other = await seeded(http, reader, raw, 10, window=None)
    url = f"/agents/{AGENT}/sessions/{{}}/messages"
    cursor = (await http.get(url.format(one.session_id), params={"limit": 3})).json()["next_cursor"]
    assert (await http.get(url.format(one.session_id), params={"limit": 3, "cursor": cursor})).status_code == 200
    _, mac = cursor.split(".")
    forged = base64.urlsafe_b64encode(b"asc.1.0").decode().rstrip("=") + "." + mac
    refused = {
        "another session's": (other.session_id, cursor, "asc"),
        "edited": (one.session_id, forged, "asc"),
        "for the other order": (one.session_id, cursor, "desc"),
        "not a cursor": (one.session_id, "!!!", "asc"),
    }
    for why, (session_id, sent, order) in refused.items():
        response = await http.get(url.format(session_id), params={"limit": 3, "cursor": sent, "order": order})
        problem = assert_problem(response, 400)
        assert "cursor" in problem["detail"], why
    assert_problem(await http.get(url.format(one.session_id), params={"order": "sideways"}), 400)


async def test_a_recreated_session_refuses_the_cursors_of_the_one_before(http: httpx2.AsyncClient):
    session = await create(http, session_id="recreated-history")
    for n in range(3):
        await say(http, session, f"m{n}")
    url = "/agents/general/sessions/recreated-history/messages"
    cursor = (await http.get(url, params={"limit": 2})).json()["next_cursor"]
    assert (await http.delete("/agents/general/sessions/recreated-history")).status_code == 204
    session = await create(http, session_id="recreated-history")
    for n in range(3):
        await say(http, session, f"again {n}")
    assert_problem(await http.get(url, params={"limit": 2, "cursor": cursor}), 400)
