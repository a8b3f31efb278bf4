"""Sessions stored by an earlier version (row layout 1: turn rows `t~<inc>~<turn>`, oldest first) are refused
with a 409 that says so, never read as if they had no history; they can still be deleted, rows and all.

The old layout is made by rewriting a session this version created: its header's `schema` set back to 1 and
its turn row moved to the old key, as an earlier version would have left them.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import httpx2
import pytest
from azure.data.tables import UpdateMode
from azure.data.tables.aio import TableClient

from devtools.echo_model import EchoModel
from service.storage import HEADER_RK, partition_key

from .api_client import assert_problem, create, say
from .azurite import Azurite
from .conftest import FunctionAppServer

OWNER, AGENT = "anonymous", "general"


@pytest.fixture
async def raw(azurite: Azurite, function_app_server: FunctionAppServer) -> AsyncIterator[TableClient]:
    name = function_app_server.env["AGENT_SESSIONS_TABLE"]
    table = TableClient.from_connection_string(azurite.connection_string, name)
    yield table
    await table.close()


async def rows(table: TableClient, pk: str) -> list[dict[str, Any]]:
    return [dict(r) async for r in table.query_entities("PartitionKey eq @pk", parameters={"pk": pk})]


@pytest.fixture
async def old_session(http: httpx2.AsyncClient, raw: TableClient) -> dict[str, Any]:
    """A session with one turn, rewritten into row layout 1."""
    session = await create(http)
    assert (await say(http, session, "hello")).status_code == 200
    pk = partition_key(OWNER, AGENT, session["session_id"])
    stored = await rows(raw, pk)
    header = next(r for r in stored if r["RowKey"] == HEADER_RK)
    turn_rows = [r for r in stored if r["RowKey"].startswith(f"h~{header['inc']}~")]
    assert len(turn_rows) == 1
    for row in turn_rows:
        await raw.delete_entity(pk, row["RowKey"])
        await raw.create_entity({**row, "RowKey": f"t~{header['inc']}~{1:08d}"})
    await raw.update_entity({"PartitionKey": pk, "RowKey": HEADER_RK, "schema": 1}, mode=UpdateMode.MERGE)
    return {**session, "pk": pk}


@pytest.mark.parametrize(
    ("method", "path", "body"),
    [
        ("GET", "", None),
        ("PATCH", "", {"title": "renamed"}),
        ("GET", "/messages", None),
        ("POST", "/messages", {"message": "still there?"}),
        ("POST", "/fork", {}),
        ("POST", "/rewind", {"turn": 0}),
    ],
    ids=["view", "patch", "history", "turn", "fork", "rewind"],
)
async def test_an_old_layout_session_is_refused_and_left_as_it_was(
    http: httpx2.AsyncClient,
    raw: TableClient,
    model: EchoModel,
    old_session: dict[str, Any],
    method: str,
    path: str,
    body: dict[str, Any] | None,
):
    before = await rows(raw, old_session["pk"])
    calls = model.model_calls
    url = f"/agents/{AGENT}/sessions/{old_session['session_id']}{path}"
    problem = assert_problem(await http.request(method, url, json=body), 409)
    assert "earlier version" in problem["detail"]
    assert model.model_calls == calls
    after = await rows(raw, old_session["pk"])
    strip = [{k: v for k, v in r.items() if k != "Timestamp"} for r in before]
    assert [{k: v for k, v in r.items() if k != "Timestamp"} for r in after] == strip


async def test_an_old_layout_session_can_be_deleted_rows_and_all(
    http: httpx2.AsyncClient, raw: TableClient, old_session: dict[str, Any]
):
    assert any(r["RowKey"].startswith("t~") for r in await rows(raw, old_session["pk"]))
    response = await http.delete(f"/agents/{AGENT}/sessions/{old_session['session_id']}")
    assert response.status_code == 204, response.text
    assert await rows(raw, old_session["pk"]) == []
