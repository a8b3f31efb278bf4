"""One turn at a time, through HTTP: the turn lease (reject / enqueue), Idempotency-Key, honest outcomes.

Counted from the outside: model calls as the echo model received them, tool executions as the model
calls carrying their results, commits as the session's turns and stored history.
"""

from __future__ import annotations

import asyncio
import secrets
from typing import Any

import httpx2
import pytest
from azure.data.tables.aio import TableClient

from agent_core.messages import Message
from devtools.echo_model import EchoModel
from service.agents import AGENTS
from service.http import HttpApi
from service.settings import AppSettings
from service.storage import STORAGE_RETRIES
from service.turns import TurnRequest, run_turn

from .api_client import assert_problem, clean_proxy, create, history, say, sse_events, texts
from .azurite import Azurite
from .conftest import FunctionAppServer
from .helpers import seen_user_messages
from .storage_proxy import StorageProxy

__all__ = ["clean_proxy"]  # a fixture
pytestmark = pytest.mark.usefixtures("clean_proxy")

PARALLEL = 20


def messages_url(session: dict[str, Any]) -> str:
    return f"/agents/{session['agent']}/sessions/{session['session_id']}/messages"


async def meta(http: httpx2.AsyncClient, session: dict[str, Any]) -> dict[str, Any]:
    data: dict[str, Any] = (await http.get(f"/agents/{session['agent']}/sessions/{session['session_id']}")).json()
    return data


async def post_turn(
    http: httpx2.AsyncClient, session: dict[str, Any], body: dict[str, Any], *, sse: bool = False, **kw: Any
) -> tuple[int, dict[str, Any], httpx2.Headers]:
    """A turn as JSON or SSE: (status, the reply or problem, headers); an SSE reply is its `done` event."""
    if not sse:
        response = await http.post(messages_url(session), json=body, **kw)
        return response.status_code, response.json(), response.headers
    headers = {"Accept": "text/event-stream", **kw.pop("headers", {})}
    async with http.stream("POST", messages_url(session), json=body, headers=headers, **kw) as response:
        if not response.headers["content-type"].startswith("text/event-stream"):
            await response.aread()
            return response.status_code, response.json(), response.headers
        events = await sse_events(response)
    name, data = events[-1]
    assert name == "done", events
    return response.status_code, data, response.headers


def model_calls(model: EchoModel) -> int:
    return len(model.responses_requests())


# --- reject ------------------------------------------------------------------------------------------


@pytest.mark.parametrize("mode", ["json", "sse", "mixed", "service"])
async def test_parallel_turns_under_reject_make_one_model_call_and_one_commit(
    http: httpx2.AsyncClient, model: EchoModel, mode: str
):
    session = await create(http, history="service" if mode == "service" else "local")
    model.stall_next(0.5, count=PARALLEL)  # the first turn holds its lease long enough for the others to meet it
    results = await asyncio.gather(
        *(
            post_turn(http, session, {"message": f"turn {n}"}, sse=mode == "sse" or (mode == "mixed" and n % 2 == 1))
            for n in range(PARALLEL)
        )
    )
    statuses = sorted(status for status, _, _ in results)
    assert statuses == [200] + [409] * (PARALLEL - 1)
    for status, body, headers in results:
        if status == 409:
            assert "in progress" in body["detail"]
            assert headers["retry-after"] == "1"
    assert model_calls(model) == 1
    assert (await meta(http, session))["turns"] == 1
    if mode == "service":  # only the lease holder created and advanced a conversation
        assert [r.method for r in model.requests if r.path.endswith("/conversations")] == ["POST"]
    else:
        assert len(await history(http, session)) == 2


async def test_parallel_approvals_run_the_tool_once(http: httpx2.AsyncClient, model: EchoModel):
    session = await create(http, agent="shopping")
    paused = (await say(http, session, "place_order(B-7)")).json()
    [request] = paused["approval_requests"]
    before = model_calls(model)
    model.stall_next(0.5, count=PARALLEL)
    decision = {"approvals": [{"id": request["id"], "approved": True}]}
    results = await asyncio.gather(*(post_turn(http, session, decision) for _ in range(PARALLEL)))
    assert sorted(status for status, _, _ in results) == [200] + [409] * (PARALLEL - 1)
    # the tool ran once: one model call carries its result, and the history holds it once
    assert model_calls(model) - before == 1
    outputs = [i for i in model.responses_requests()[-1]["input"] if i.get("type") == "function_call_output"]
    assert [o["output"] for o in outputs] == ["Ordered 1 x B-7"]
    stored = await history(http, session)
    results_stored = [c for m in stored for c in m["contents"] if c["type"] == "function_result"]
    assert len(results_stored) == 1


# --- enqueue -----------------------------------------------------------------------------------------


@pytest.mark.parametrize("mode", ["json", "mixed"])
async def test_parallel_turns_under_enqueue_all_commit_in_order(
    http: httpx2.AsyncClient, model: EchoModel, configure, mode: str
):
    configure(AGENT_ENQUEUE_WAIT_SECONDS="120")
    session = await create(http)
    results = await asyncio.gather(
        *(
            post_turn(http, session, {"message": f"turn {n}", "if_busy": "enqueue"}, sse=mode == "mixed" and n % 2 == 1)
            for n in range(PARALLEL)
        )
    )
    assert [status for status, _, _ in results] == [200] * PARALLEL
    assert sorted(body["turn"] for _, body, _ in results) == list(range(1, PARALLEL + 1))
    assert model_calls(model) == PARALLEL
    # each turn ran on the history its predecessors committed: it saw every earlier user message
    for _, body, _ in results:
        assert len(seen_user_messages(body["text"])) == body["turn"]
    stored = texts(await history(http, session))
    users = stored[::2]
    assert sorted(users) == sorted(f"turn {n}" for n in range(PARALLEL))
    for i in range(0, len(stored), 2):
        assert seen_user_messages(stored[i + 1]) == users[: i // 2 + 1]


async def test_enqueue_wait_is_bounded(http: httpx2.AsyncClient, model: EchoModel, configure):
    configure(AGENT_ENQUEUE_WAIT_SECONDS="0.3")
    session = await create(http)
    model.stall_next(1.5)
    slow = asyncio.create_task(say(http, session, "slow"))
    await asyncio.sleep(0.3)
    status, _, headers = await post_turn(http, session, {"message": "waits", "if_busy": "enqueue"})
    assert (status, headers["retry-after"]) == (409, "1")
    assert (await slow).status_code == 200
    assert model_calls(model) == 1


# --- Idempotency-Key ---------------------------------------------------------------------------------


@pytest.mark.parametrize("sse_retry", [False, True])
async def test_a_retry_with_the_same_key_returns_the_committed_reply(
    http: httpx2.AsyncClient, model: EchoModel, sse_retry: bool
):
    session = await create(http, agent="shopping")
    body = {"message": "search_products(boots)"}
    key = {"Idempotency-Key": "order-1 retry:A"}
    first = await http.post(messages_url(session), json=body, headers=key)
    assert first.status_code == 200
    calls = model_calls(model)
    status, again, headers = await post_turn(http, session, body, sse=sse_retry, headers=key)
    assert status == 200
    assert headers.get("idempotent-replayed") == ("true" if not sse_retry else None)
    reply = first.json()
    for field in ("turn", "text", "messages", "session_id", "response_id", "usage"):
        assert again[field] == reply[field], field
    assert model_calls(model) == calls  # no model call for the retry
    assert (await meta(http, session))["turns"] == 1
    assert len(await history(http, session)) == len(reply["messages"]) + 1


async def test_sse_retry_replays_the_turns_events(http: httpx2.AsyncClient, model: EchoModel):
    session = await create(http, agent="shopping")
    key = {"Idempotency-Key": "k-sse"}
    body = {"message": "search_products(boots)", "stream": True}
    async with http.stream("POST", messages_url(session), json=body, headers=key) as response:
        original = await sse_events(response)
    async with http.stream("POST", messages_url(session), json=body, headers=key) as response:
        replayed = await sse_events(response)
    names = [name for name, _ in replayed]
    assert names.index("tool_call") < names.index("tool_result") < names.index("done")
    assert "".join(d["text"] for n, d in replayed if n == "delta") == replayed[-1][1]["text"]
    assert replayed[-1][1] == original[-1][1]
    assert model_calls(model) == 2  # the original's two (tool round), none for the replay


async def test_same_key_with_another_body_is_422(http: httpx2.AsyncClient, model: EchoModel):
    session = await create(http)
    key = {"Idempotency-Key": "k1"}
    assert (await http.post(messages_url(session), json={"message": "one"}, headers=key)).status_code == 200
    assert_problem(await http.post(messages_url(session), json={"message": "two"}, headers=key), 422)
    assert model_calls(model) == 1
    assert (await meta(http, session))["turns"] == 1


@pytest.mark.parametrize(("if_busy", "status"), [("reject", 409), ("enqueue", 200)])
async def test_same_key_while_its_turn_runs(
    http: httpx2.AsyncClient, model: EchoModel, configure, if_busy: str, status: int
):
    configure(AGENT_ENQUEUE_WAIT_SECONDS="30")
    session = await create(http)
    key = {"Idempotency-Key": "k-running"}
    model.stall_next(1.0)
    first = asyncio.create_task(http.post(messages_url(session), json={"message": "hi"}, headers=key))
    await asyncio.sleep(0.4)
    second = await http.post(messages_url(session), json={"message": "hi", "if_busy": if_busy}, headers=key)
    assert second.status_code == status, second.text
    assert (await first).status_code == 200
    if status == 200:  # it waited for the running turn, then got its reply
        assert second.json()["turn"] == (await first).json()["turn"] == 1
        assert second.headers["idempotent-replayed"] == "true"
    assert model_calls(model) == 1


@pytest.mark.parametrize("key", [b"", b"a" * 256, b"caf\xc3\xa9", b"tab\there"])
async def test_bad_idempotency_keys_are_400(http: httpx2.AsyncClient, model: EchoModel, key: bytes):
    session = await create(http)
    response = await http.post(messages_url(session), json={"message": "hi"}, headers=[(b"Idempotency-Key", key)])
    assert_problem(response, 400)
    assert model_calls(model) == 0


# --- honest outcomes ---------------------------------------------------------------------------------


async def test_lost_commit_answer_is_200_and_a_retry_does_not_duplicate(
    http: httpx2.AsyncClient, model: EchoModel, storage_proxy: StorageProxy
):
    session = await create(http)
    await say(http, session, "before")
    key = {"Idempotency-Key": "lost-answer"}
    storage_proxy.lose_response_next("POST", match="$batch")  # the commit reaches storage, its answer does not
    first = await http.post(messages_url(session), json={"message": "committed?"}, headers=key)
    assert first.status_code == 200, first.text
    assert first.json()["turn"] == 2
    retry = await http.post(messages_url(session), json={"message": "committed?"}, headers=key)
    assert retry.status_code == 200
    assert retry.json()["text"] == first.json()["text"]
    assert texts(await history(http, session))[::2] == ["before", "committed?"]
    assert model_calls(model) == 2
    assert (await say(http, session, "next")).json()["turn"] == 3  # the lease was released by the commit


async def test_failed_turn_releases_the_lease(http: httpx2.AsyncClient, model: EchoModel):
    session = await create(http)
    model.fail_next(500)
    assert_problem(await say(http, session, "fails"), 502)
    assert (await say(http, session, "works")).status_code == 200  # not 409: the failed turn let go


async def test_storage_failure_before_the_lease_calls_no_model(
    http: httpx2.AsyncClient, model: EchoModel, storage_proxy: StorageProxy
):
    session = await create(http)
    storage_proxy.fail_next("PATCH", 503, count=1 + STORAGE_RETRIES)  # the lease write
    response = await say(http, session, "no lease")
    assert_problem(response, 503)
    assert response.headers["retry-after"] == "1"
    assert model_calls(model) == 0
    assert (await say(http, session, "works")).status_code == 200


async def test_lost_lease_answer_is_decided_from_the_header(
    http: httpx2.AsyncClient, model: EchoModel, storage_proxy: StorageProxy
):
    session = await create(http)
    storage_proxy.lose_response_next("PATCH")  # the lease is written, its answer lost
    response = await say(http, session, "unsure")
    assert response.status_code == 200, response.text  # the re-read header showed the lease was ours
    assert model_calls(model) == 1
    assert (await say(http, session, "next")).json()["turn"] == 2  # and the commit released it


# --- refuse before working ---------------------------------------------------------------------------


async def test_session_at_its_size_limit_is_refused_before_the_model(
    http: httpx2.AsyncClient, model: EchoModel, configure
):
    configure(AGENT_MAX_SESSION_BYTES="1024")
    session = await create(http)
    for n in range(20):
        response = await say(http, session, f"message {n}")
        if response.status_code != 200:
            break
    assert_problem(response, 413)  # the first turn that does not fit is known only once its reply is
    calls, turns = model_calls(model), (await meta(http, session))["turns"]
    assert calls == turns + 1
    for text in ("again", "x"):  # from then on the session is full: refused before the model
        assert_problem(await say(http, session, text), 413)
    assert model_calls(model) == calls
    assert (await meta(http, session))["turns"] == turns


async def test_failed_first_service_turn_leaves_no_conversation(http: httpx2.AsyncClient, model: EchoModel):
    session = await create(http, history="service")
    model.fail_next(500)
    assert_problem(await say(http, session, "fails"), 502)
    created = [r for r in model.requests if r.method == "POST" and r.path.endswith("/conversations")]
    deleted = [r for r in model.requests if r.method == "DELETE" and "/conversations/" in r.path]
    assert (len(created), len(deleted)) == (1, 1)
    assert (await meta(http, session))["service_session_id"] is None
    reply = (await say(http, session, "works")).json()
    assert seen_user_messages(reply["text"]) == ["works"]


async def test_creating_an_existing_id_writes_nothing(
    http: httpx2.AsyncClient, function_app_server: FunctionAppServer, storage_proxy: StorageProxy
):
    await create(http, session_id="taken")
    storage_proxy.clear()
    assert_problem(await http.post("/agents/general/sessions", json={"session_id": "taken"}), 409)
    assert {method for method, _ in storage_proxy.requests} == {"GET"}


# --- statuses ----------------------------------------------------------------------------------------


async def partition_rows(azurite: Azurite, table: str, session_id: str) -> list[str]:
    async with TableClient.from_connection_string(azurite.connection_string, table) as client:
        rows = client.query_entities(
            "PartitionKey ge @low and PartitionKey lt @high", parameters={"low": "s~", "high": "s~~"}
        )
        return [row["RowKey"] async for row in rows if row["PartitionKey"].endswith(f"~{session_id}")]


async def test_delete_answers_204_once_the_header_is_gone(
    http: httpx2.AsyncClient, storage_proxy: StorageProxy, function_app_server: FunctionAppServer, azurite: Azurite
):
    session = await create(http)
    await say(http, session, "to be deleted")
    storage_proxy.fail_next("GET", 500, count=1 + STORAGE_RETRIES, match="()?")  # finding the rows to remove fails
    assert (await http.delete(f"/agents/general/sessions/{session['session_id']}")).status_code == 204
    assert_problem(await http.get(f"/agents/general/sessions/{session['session_id']}"), 404)
    table = function_app_server.env["AGENT_SESSIONS_TABLE"]
    assert len(await partition_rows(azurite, table, session["session_id"])) == 1  # the turn row is left
    admin = f"{function_app_server.base_url}/admin/functions/expire_sessions"
    assert (await http.post(admin, json={"input": ""})).status_code == 202  # the sweep finds the cleanup due now
    assert await partition_rows(azurite, table, session["session_id"]) == []


async def test_health_checks_storage(http: httpx2.AsyncClient, storage_proxy: StorageProxy):
    assert (await http.get("/health")).status_code == 200
    storage_proxy.fail_next("GET", 503, count=1 + STORAGE_RETRIES)
    response = await http.get("/health")
    assert_problem(response, 503)
    assert int(response.headers["retry-after"]) >= 1


async def test_missing_sessions_table_is_recreated(
    http: httpx2.AsyncClient, function_app_server: FunctionAppServer, azurite: Azurite
):
    table = function_app_server.env["AGENT_SESSIONS_TABLE"]
    async with TableClient.from_connection_string(azurite.connection_string, table) as client:
        await client.delete_table()
    session = await create(http)  # the create finds the table gone and makes it again
    assert (await say(http, session, "hello")).status_code == 200
    assert (await http.get("/health")).json()["status"] == "ok"


@pytest.mark.parametrize("stream", [False, True], ids=["json", "sse"])
async def test_a_turn_frees_its_session_before_it_returns(function_app_server: FunctionAppServer, stream: bool):
    """`run_turn` gives the session back (this process's turn lock and the lease) before it returns, not when
    the turn's generators are garbage collected: the next turn on the session, started at once, runs."""
    api = HttpApi(AGENTS, AppSettings.from_env(function_app_server.env))
    try:
        runtime = await api.runtime.get()
        spec = runtime.agents["general"]
        stored = await runtime.store.create(
            owner="tester",
            agent=spec.name,
            session_id=f"free-{secrets.token_hex(4)}",
            history="local",
            service_session_id=None,
            state={},
        )
        results = []
        for n in range(3):
            request = TurnRequest(
                owner="tester",
                session_id=stored.session_id,
                messages=[Message("user", [f"question {n}"])],
                options={},
                stream=stream,
            )
            results.append(await run_turn(runtime, spec, request))  # no await in between: nothing else runs
        assert [r.turn for r in results] == [1, 2, 3]
    finally:
        await api.close()
