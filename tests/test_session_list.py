"""The caller's sessions (GET .../sessions), titles and metadata (create, PATCH), through the function app."""

from __future__ import annotations

import asyncio
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx2
import pytest

from service.expiry import sweep
from service.storage import TableSessionStore
from service.storage.catalog import SessionCatalog, catalog_partition

from .api_client import assert_problem, clean_proxy
from .storage_proxy import StorageProxy
from .test_auth_http import PLATFORM, as_platform

__all__ = ["clean_proxy"]

SESSIONS = "/agents/general/sessions"
T0 = datetime(2026, 1, 1, 12, 0, 30, tzinfo=UTC)


async def create(http: httpx2.AsyncClient, headers: dict[str, str] | None = None, **body: Any) -> dict[str, Any]:
    response = await http.post(SESSIONS, json=body, headers=headers)
    assert response.status_code == 201, response.text
    created: dict[str, Any] = response.json()
    return created


async def listing(http: httpx2.AsyncClient, headers: dict[str, str] | None = None, **params: Any) -> dict[str, Any]:
    response = await http.get(SESSIONS, params=params, headers=headers)
    assert response.status_code == 200, response.text
    page: dict[str, Any] = response.json()
    return page


async def every_id(http: httpx2.AsyncClient, headers: dict[str, str] | None = None, limit: int = 2) -> list[str]:
    """Every listed session id, following next_cursor page by page."""
    ids: list[str] = []
    cursor = None
    while True:
        page = await listing(http, headers, limit=limit, **({"cursor": cursor} if cursor else {}))
        assert len(page["sessions"]) <= limit
        ids += [s["session_id"] for s in page["sessions"]]
        cursor = page["next_cursor"]
        if cursor is None:
            return ids


async def test_the_callers_sessions_newest_first_paged(http: httpx2.AsyncClient, configure):
    configure(**PLATFORM)
    alice, bob = as_platform("alice-list"), as_platform("bob-list")
    made = []
    for n in range(5):
        made.append((await create(http, alice, title=f"chat {n}"))["session_id"])
        await asyncio.sleep(0.002)  # distinct creation milliseconds
    theirs = (await create(http, bob))["session_id"]

    assert await every_id(http, alice) == made[::-1]
    assert await every_id(http, bob) == [theirs]
    first = (await listing(http, alice, limit=1))["sessions"][0]
    assert first["title"] == "chat 4"
    assert first["metadata"] == {}
    assert {"created_at", "updated_at", "expires_at", "turns", "history", "agent"} <= set(first)
    assert (await listing(http, alice, limit=1))["sessions"][0]["session_id"] == made[-1]
    assert (await http.get("/agents/shopping/sessions", headers=alice)).json()["sessions"] == []  # per agent


async def test_deleted_and_expired_sessions_disappear(http: httpx2.AsyncClient, configure):
    configure(**PLATFORM)
    carol = as_platform("carol-list")
    kept, deleted = (await create(http, carol))["session_id"], (await create(http, carol))["session_id"]
    assert (await http.delete(f"{SESSIONS}/{deleted}", headers=carol)).status_code == 204
    assert await every_id(http, carol) == [kept]

    configure(**PLATFORM, AGENT_SESSION_TTL_SECONDS="1")
    short = (await create(http, carol))["session_id"]
    assert (await every_id(http, carol))[0] == short
    await asyncio.sleep(1.2)
    assert short not in await every_id(http, carol)


async def test_a_title_from_the_first_user_message(http: httpx2.AsyncClient):
    session = await create(http)
    assert session["title"] is None
    url = f"{SESSIONS}/{session['session_id']}"
    long = "Plan   a trip to Lisbon in May " + "with many details " * 10
    assert (await http.post(f"{url}/messages", json={"message": long})).status_code == 200
    title = (await http.get(url)).json()["title"]
    assert title.startswith("Plan a trip to Lisbon in May with many details")
    assert title.endswith("…")
    assert len(title) <= 80
    assert (await http.post(f"{url}/messages", json={"message": "second"})).status_code == 200
    listed = {s["session_id"]: s for s in (await listing(http, limit=100))["sessions"]}
    assert listed[session["session_id"]]["title"] == title  # the first message's, kept


async def test_a_rewind_to_turn_0_forgets_the_first_messages_title_but_not_a_set_one(http: httpx2.AsyncClient):
    made, named = await create(http), await create(http, title="Kept")
    for session in (made, named):
        url = f"{SESSIONS}/{session['session_id']}"
        assert (await http.post(f"{url}/messages", json={"message": "Plan a trip to Lisbon"})).status_code == 200
        assert (await http.get(url)).json()["title"] in {"Plan a trip to Lisbon", "Kept"}
        rewound = await http.post(f"{url}/rewind", json={"turn": 0})
        assert rewound.status_code == 200, rewound.text
        assert (await http.post(f"{url}/messages", json={"message": "Book a hotel in Porto"})).status_code == 200
    titles = {s["session_id"]: s["title"] for s in (await listing(http, limit=100))["sessions"]}
    assert titles[made["session_id"]] == "Book a hotel in Porto"
    assert titles[named["session_id"]] == "Kept"


async def test_titles_and_metadata_at_create_and_patch(http: httpx2.AsyncClient):
    session = await create(http, title="Groceries", metadata={"project": "home", "color": "green"})
    assert (session["title"], session["metadata"]) == ("Groceries", {"project": "home", "color": "green"})
    url = f"{SESSIONS}/{session['session_id']}"
    assert (await http.post(f"{url}/messages", json={"message": "milk"})).status_code == 200
    assert (await http.get(url)).json()["title"] == "Groceries"  # a given title is never replaced

    renamed = await http.patch(url, json={"title": "Weekly groceries"})
    assert renamed.status_code == 200, renamed.text
    assert renamed.json()["metadata"] == {"project": "home", "color": "green"}  # untouched
    patched = (await http.patch(url, json={"metadata": {"project": "work"}})).json()
    assert (patched["title"], patched["metadata"]) == ("Weekly groceries", {"project": "work"})
    detail = (await http.get(url)).json()
    assert (detail["title"], detail["metadata"], detail["turns"]) == ("Weekly groceries", {"project": "work"}, 1)
    cleared = (await http.patch(url, json={"title": None})).json()
    assert cleared["title"] == "milk"  # back to the first message's


@pytest.mark.parametrize(
    "body",
    [
        {},
        {"metadata": {str(n): "x" for n in range(17)}},
        {"metadata": {"k" * 65: "v"}},
        {"metadata": {"k": "v" * 513}},
        {"metadata": {"k": 1}},
        {"metadata": None},
        {"title": ""},
        {"title": "t" * 257},
        {"name": "not a field"},
    ],
)
async def test_bad_patches_are_refused_and_change_nothing(http: httpx2.AsyncClient, body: dict[str, Any]):
    session = await create(http, title="Before", metadata={"a": "b"})
    url = f"{SESSIONS}/{session['session_id']}"
    assert_problem(await http.patch(url, json=body), 400)
    detail = (await http.get(url)).json()
    assert (detail["title"], detail["metadata"]) == ("Before", {"a": "b"})


async def test_the_limits_at_create(http: httpx2.AsyncClient):
    assert_problem(await http.post(SESSIONS, json={"metadata": {str(n): "x" for n in range(17)}}), 400)
    assert (await create(http, metadata={str(n): "v" * 512 for n in range(16)}))["metadata"]["15"] == "v" * 512


async def test_another_principal_cannot_see_or_patch(http: httpx2.AsyncClient, configure):
    configure(**PLATFORM)
    dave, erin = as_platform("dave-list"), as_platform("erin-list")
    session = await create(http, dave, title="Dave's")
    url = f"{SESSIONS}/{session['session_id']}"
    assert_problem(await http.patch(url, json={"title": "Erin's now"}, headers=erin), 404)
    assert session["session_id"] not in await every_id(http, erin)
    assert (await http.get(url, headers=dave)).json()["title"] == "Dave's"


@pytest.mark.parametrize("params", [{"limit": 0}, {"limit": 101}, {"limit": "x"}, {"cursor": "not-a-cursor"}])
async def test_bad_list_queries(http: httpx2.AsyncClient, params: dict[str, Any]):
    assert_problem(await http.get(SESSIONS, params=params), 400)


async def test_a_turn_does_not_write_to_the_list(http: httpx2.AsyncClient, function_app_server):
    """The list's row is written at create only: a turn keeps its one read and one transaction."""
    from datetime import datetime

    from azure.data.tables.aio import TableClient

    from service.auth import SHARED_OWNER
    from service.storage.catalog import catalog_partition, catalog_rk

    session = await create(http, title="Counted")
    key = (
        catalog_partition(SHARED_OWNER, "general"),
        catalog_rk(datetime.fromisoformat(session["created_at"]), session["session_id"]),
    )
    env = function_app_server.env
    async with TableClient.from_connection_string(env["SessionStorage"], env["AGENT_SESSIONS_TABLE"]) as table:
        before = await table.get_entity(*key)
        assert before["title"] == "Counted"
        reply = await http.post(f"{SESSIONS}/{session['session_id']}/messages", json={"message": "hello"})
        assert reply.status_code == 200
        after = await table.get_entity(*key)
    assert after.metadata["etag"] == before.metadata["etag"]


async def list_requests(http: httpx2.AsyncClient, proxy: StorageProxy, headers: dict[str, str]) -> list[str]:
    """The storage requests one GET of the caller's first page makes (method and path, as the proxy saw them)."""
    proxy.clear()
    await listing(http, headers, limit=20)
    return [f"{method} {path.split('?')[0]}" for method, path in proxy.requests]


async def test_the_lists_cost_does_not_depend_on_other_principals(http, configure, clean_proxy: StorageProxy):
    """Counted at the storage proxy: one query of the caller's partition plus one header read per listed session,
    the same with 0 or 30 sessions of another principal."""
    configure(**PLATFORM)
    frank, grace = as_platform("frank-list"), as_platform("grace-list")
    for _ in range(3):
        await create(http, frank)
    alone = await list_requests(http, clean_proxy, frank)
    for _ in range(30):
        await create(http, grace)
    crowded = await list_requests(http, clean_proxy, frank)
    assert len(crowded) == len(alone) == 1 + 3
    assert sorted(crowded) == sorted(alone)


async def test_a_swept_session_is_unlisted_by_the_next_list(store: TableSessionStore):
    """The sweep does not touch the list (its cost stays one read and deletes per expired session); the next
    list finds the header gone, leaves the session out and deletes its row (counted in the table)."""
    catalog = SessionCatalog(store.table)
    short = store.with_limits(replace(store.limits, ttl_seconds=60))
    made = {}
    for sid, owner_store in (("kept", store), ("gone", short)):
        made[sid] = await owner_store.create(
            owner="o", agent="general", session_id=sid, history="local", service_session_id=None, state={}, now=T0
        )
        await catalog.add(made[sid], None, {})
    later = T0 + timedelta(minutes=10)
    assert (await sweep(store, now=later)).expired == 1
    partition = catalog_partition("o", "general")

    async def row_ids() -> list[str]:
        query = store.table.query_entities("PartitionKey eq @pk", parameters={"pk": partition})
        return sorted([row["session_id"] async for row in query])

    assert await row_ids() == ["gone", "kept"]
    listed, _ = await catalog.page("o", "general", limit=10, now=later)
    assert [item.session.session_id for item in listed] == ["kept"]
    assert await row_ids() == ["kept"]
