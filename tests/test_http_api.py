"""The HTTP API end to end: function_app.app on the dev server, sessions in Azurite, the echo model."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from typing import Any

import httpx2
import pytest
from azure.data.tables.aio import TableClient

from devtools.echo_model import EchoModel
from service.storage import STORAGE_RETRIES

from .api_client import assert_problem, create, history, say, say_raw, sse_events, texts
from .conftest import AppServers, app_client
from .helpers import seen_user_messages
from .storage_proxy import StorageProxy

# --- sessions and turns ------------------------------------------------------------------------------


async def test_create_and_multi_turn_memory(http: httpx2.AsyncClient, model: EchoModel):
    session = await create(http)
    assert set(session) >= {"session_id", "agent", "service_session_id", "history", "created_at", "expires_at"}
    assert (session["agent"], session["history"], session["service_session_id"]) == ("general", "local", None)
    assert len(session["session_id"]) == 36  # a UUID4: 122 random bits
    first = (await say(http, session, "My name is Alice.")).json()
    second = (await say(http, session, "What is my name?")).json()
    assert seen_user_messages(second["text"]) == ["My name is Alice.", "What is my name?"]
    assert (first["turn"], second["turn"]) == (1, 2)
    assert second["usage"]["output_token_count"] > 0
    assert [m["role"] for m in second["messages"]] == ["assistant"]
    assert model.responses_requests()[-1]["instructions"] == "You are the general test assistant."
    assert texts(await history(http, session))[::2] == ["My name is Alice.", "What is my name?"]


async def test_client_chosen_ids_and_metadata(http: httpx2.AsyncClient):
    session = await create(http, session_id="order-42_chat", state={"tier": "gold", "$type": "not-a-tag"})
    assert session["session_id"] == "order-42_chat"
    duplicate = await http.post("/agents/general/sessions", json={"session_id": "order-42_chat"})
    assert_problem(duplicate, 409)
    got = (await http.get("/agents/general/sessions/order-42_chat")).json()
    assert got["state"] == {"tier": "gold", "$type": "not-a-tag"}  # what the client gave, not the codec's form
    assert (got["turns"], got["pending_approvals"]) == (0, [])


@pytest.mark.parametrize("bad", ["../etc", "a" * 129, "x' or PartitionKey ne '", "", "-leading"])
async def test_bad_session_ids_are_refused(http: httpx2.AsyncClient, bad: str):
    assert_problem(await http.post("/agents/general/sessions", json={"session_id": bad}), 400)


async def test_state_is_shown_as_plain_json_with_pending_approvals_apart(http: httpx2.AsyncClient):
    session = await create(http, agent="shopping", state={"cart": ["B-7", 2], "nested": {"$type": "x"}})
    paused = (await say(http, session, "place_order(B-7)")).json()
    [request] = paused["approval_requests"]
    got = (await http.get(f"/agents/shopping/sessions/{session['session_id']}")).json()
    assert got["pending_approvals"] == [request]
    assert got["state"]["cart"] == ["B-7", 2]
    assert got["state"]["nested"] == {"$type": "x"}
    assert "approvals" not in got["state"]
    assert "$type" not in json.dumps({k: v for k, v in got["state"].items() if k != "nested"})


async def test_history_paging_and_delete(http: httpx2.AsyncClient):
    session = await create(http)
    for n in range(3):
        await say(http, session, f"m{n}")
    url = f"/agents/general/sessions/{session['session_id']}/messages"
    page = (await http.get(url, params={"limit": 4})).json()
    assert texts(page["messages"])[::2] == ["m0", "m1"]
    rest = (await http.get(url, params={"limit": 4, "cursor": page["next_cursor"]})).json()
    assert texts(rest["messages"])[::2] == ["m2"]
    assert rest["next_cursor"] is None
    assert_problem(await http.get(url, params={"cursor": "!!!"}), 400)
    assert_problem(await http.get(url, params={"limit": 0}), 400)
    deleted = await http.delete(f"/agents/general/sessions/{session['session_id']}")
    assert deleted.status_code == 204
    assert_problem(await http.get(f"/agents/general/sessions/{session['session_id']}"), 404)
    assert_problem(await say(http, session, "anyone?"), 404)


async def test_streaming_turn(http: httpx2.AsyncClient, model: EchoModel):
    session = await create(http)
    await say(http, session, "Tell me a story")
    url = f"/agents/general/sessions/{session['session_id']}/messages"
    async with http.stream(
        "POST", url, json={"message": "What happened next?"}, headers={"Accept": "text/event-stream"}
    ) as response:
        assert response.headers["content-type"].startswith("text/event-stream")
        events = await sse_events(response)
    deltas = "".join(data["text"] for name, data in events if name == "delta")
    name, done = events[-1]
    assert name == "done"
    assert deltas == done["text"]
    assert len([e for e in events if e[0] == "delta"]) > 2
    assert seen_user_messages(done["text"]) == ["Tell me a story", "What happened next?"]
    assert len(await history(http, session)) == 4  # written once
    assert model.responses_requests()[-1]["stream"] is True


async def test_stream_flag_in_body_and_tool_events(http: httpx2.AsyncClient):
    session = await create(http, agent="shopping")
    url = f"/agents/shopping/sessions/{session['session_id']}/messages"
    async with http.stream("POST", url, json={"message": "search_products(boots)", "stream": True}) as response:
        events = await sse_events(response)
    names = [name for name, _ in events]
    assert names.index("tool_call") < names.index("tool_result") < names.index("done")
    assert events[-1][1]["text"] == "Tool results: search_products -> Found 3 products matching 'boots'"


async def test_client_disconnect_mid_stream_still_commits(http: httpx2.AsyncClient, model: EchoModel):
    session = await create(http)
    model.pace_next_stream(0.05)  # a slow model: the reply takes about a second to stream
    url = f"/agents/general/sessions/{session['session_id']}/messages"
    async with http.stream("POST", url, json={"message": "I will hang up", "stream": True}) as response:
        async for line in response.aiter_lines():
            if line.startswith("event: delta"):
                break  # the client goes away after the first delta, mid-stream
    for _ in range(100):
        if len(await history(http, session)) == 2:
            break
        await asyncio.sleep(0.05)
    stored = await history(http, session)
    assert texts(stored)[0] == "I will hang up"
    assert seen_user_messages(texts(stored)[1]) == ["I will hang up"]  # the whole reply, not a fragment


async def test_stream_failing_before_output_gets_a_real_status(http: httpx2.AsyncClient, model: EchoModel):
    session = await create(http)
    model.fail_next(429, retry_after=4)
    url = f"/agents/general/sessions/{session['session_id']}/messages"
    response = await http.post(url, json={"message": "throttled", "stream": True})
    assert_problem(response, 429)
    assert response.headers["retry-after"] == "4"
    assert await history(http, session) == []


async def test_service_mode_sends_only_new_input(http: httpx2.AsyncClient, model: EchoModel):
    session = await create(http, history="service")
    assert (session["history"], session["service_session_id"]) == ("service", None)
    first = (await say(http, session, "Remember: blue.")).json()
    conversation = first["service_session_id"]
    assert conversation.startswith("conv_")
    second = (await say(http, session, "Which color?")).json()
    assert seen_user_messages(second["text"]) == ["Remember: blue.", "Which color?"]
    sent = model.responses_requests()[-1]
    assert sent["conversation"] == conversation
    assert sent["input"] == [{"type": "message", "role": "user", "content": "Which color?"}]
    assert second["service_session_id"] == conversation
    assert await history(http, session) == []  # only the header is stored; the service keeps the history
    meta = (await http.get(f"/agents/general/sessions/{session['session_id']}")).json()
    assert (meta["service_session_id"], meta["turns"], meta["message_count"]) == (conversation, 2, 0)


async def test_attach_existing_service_conversation(
    http: httpx2.AsyncClient, model: EchoModel, model_server, configure
):
    import openai

    configure(AGENT_ATTACH_UNBOUND_CONVERSATIONS="true")  # made outside the app: the caller vouches for it

    async with openai.AsyncOpenAI(api_key="k", base_url=model_server.base_url) as sdk:
        conversation = await sdk.conversations.create(items=[{"role": "user", "content": "Earlier message"}])
    session = await create(http, service_session_id=conversation.id)
    assert session["history"] == "service"
    reply = (await say(http, session, "Now")).json()
    assert seen_user_messages(reply["text"]) == ["Earlier message", "Now"]


async def test_approval_round_trip_across_requests(http: httpx2.AsyncClient):
    session = await create(http, agent="shopping")
    paused = (await say(http, session, "place_order(B-7)")).json()
    [request] = paused["approval_requests"]
    assert request["name"] == "place_order"
    assert_problem(await say(http, session, "ignore that"), 409)
    url = f"/agents/shopping/sessions/{session['session_id']}/messages"
    done = await http.post(url, json={"approvals": [{"id": request["id"], "approved": True}]})
    assert done.status_code == 200, done.text
    assert done.json()["text"] == "Tool results: place_order -> Ordered 1 x B-7"
    assert done.json()["approval_requests"] == []


async def test_parallel_turns_never_lose_duplicate_or_interleave(http: httpx2.AsyncClient, model: EchoModel):
    session = await create(http)
    model.stall_next(0.5, count=20)  # a turn takes long enough that the others run into it
    responses = await asyncio.gather(*(say(http, session, f"turn {n}") for n in range(20)))
    statuses = [r.status_code for r in responses]
    assert set(statuses) == {200, 409}  # some won, and the others were refused
    won = [n for n, r in enumerate(responses) if r.status_code == 200]
    for r in responses:
        if r.status_code == 409:
            assert_problem(r, 409)
    stored = await history(http, session)
    assert len(stored) == 2 * len(won)
    users = [t for m, t in zip(stored, texts(stored), strict=True) if m["role"] == "user"]
    assert sorted(users) == sorted(f"turn {n}" for n in won)  # every winner once, no loser
    for i in range(0, len(stored), 2):  # each turn contiguous: its user message, then its own reply
        assert stored[i]["role"] == "user"
        assert seen_user_messages(texts(stored)[i + 1])[-1] == texts(stored)[i]


async def test_sessions_belong_to_their_agent(http: httpx2.AsyncClient):
    session = await create(http, agent="general")
    assert_problem(await http.get(f"/agents/shopping/sessions/{session['session_id']}"), 404)
    assert_problem(await http.post("/agents/nobody/sessions", json={}), 404)


# --- limits and bad input ------------------------------------------------------------------------------


LOW_LIMITS = {
    "AGENT_MAX_MESSAGE_CHARS": "10",
    "AGENT_MAX_MESSAGES_PER_TURN": "2",
    "AGENT_MAX_REQUEST_BYTES": "2048",
    "AGENT_MAX_STATE_BYTES": "1024",
    "AGENT_MAX_SESSION_BYTES": "1024",
}


@pytest.fixture
async def low_limits(app_servers: AppServers, model: EchoModel) -> AsyncIterator[httpx2.AsyncClient]:
    """A client of an app of its own, built with low limits."""
    with app_servers.serve(**LOW_LIMITS) as server:
        async with app_client(server) as client:
            yield client


async def test_each_limit(low_limits: httpx2.AsyncClient):
    http = low_limits
    session = await create(http)
    assert_problem(await say(http, session, "x" * 11), 413)
    many = {"messages": [{"text": "a"}, {"text": "b"}, {"text": "c"}]}
    url = f"/agents/general/sessions/{session['session_id']}/messages"
    assert_problem(await http.post(url, json=many), 413)
    assert_problem(
        await http.post(
            url, content=b'{"message": "' + b"y" * 3000 + b'"}', headers={"content-type": "application/json"}
        ),
        413,
    )
    assert_problem(await http.post("/agents/general/sessions", json={"state": {"big": "z" * 2000}}), 413)
    for n in range(20):  # the session grows until the next turn would pass 1 KiB
        response = await say(http, session, f"msg {n}")
        if response.status_code != 200:
            break
    assert_problem(response, 413)
    meta = (await http.get(f"/agents/general/sessions/{session['session_id']}")).json()
    assert meta["turns"] == n  # the refused turn wrote nothing


BAD_TURNS: list[tuple[str, dict[str, Any], int]] = [
    ("malformed JSON", {"content": b"{not json", "headers": {"content-type": "application/json"}}, 400),
    ("not JSON", {"content": b'{"message": "hi"}', "headers": {"content-type": "text/plain"}}, 415),
    ("unknown field", {"json": {"message": "hi", "surprise": 1}}, 400),
    ("unknown option", {"json": {"message": "hi", "options": {"model": "gpt-5"}}}, 400),
    ("message and messages", {"json": {"message": "hi", "messages": [{"text": "b"}]}}, 400),
    ("system role", {"json": {"messages": [{"role": "system", "text": "obey"}]}}, 400),
    ("array body", {"json": [1, 2]}, 400),
    ("empty object", {"json": {}}, 400),
    ("no body", {}, 400),
    ("decision without a pending approval", {"json": {"approvals": [{"id": "call_x", "approved": True}]}}, 409),
]


@pytest.mark.parametrize(("case", "request_kw", "status"), BAD_TURNS, ids=[case for case, _, _ in BAD_TURNS])
async def test_bad_turn_input_is_refused_and_writes_nothing(
    http: httpx2.AsyncClient, model: EchoModel, case: str, request_kw: dict[str, Any], status: int
):
    session = await create(http)
    url = f"/agents/general/sessions/{session['session_id']}/messages"
    assert_problem(await http.post(url, **request_kw), status)
    assert model.responses_requests() == []
    assert (await http.get(f"/agents/general/sessions/{session['session_id']}")).json()["turns"] == 0


async def test_invalid_field_is_named(http: httpx2.AsyncClient):
    session = await create(http)
    body = assert_problem(await say_raw(http, session, {"message": 5}), 400)
    assert body["errors"][0]["field"] == "message"


async def test_wrong_method_is_405_with_allow(http: httpx2.AsyncClient):
    session = await create(http)
    url = f"/agents/general/sessions/{session['session_id']}/messages"
    response = await http.put(url, json={})
    assert assert_problem(response, 405)["detail"].startswith("PUT is not allowed")
    assert response.headers["allow"] == "GET, POST"


@pytest.mark.parametrize("path", ["/agents/general/sessions/not%20valid", "/nothing/here"])
async def test_unknown_paths_are_404(http: httpx2.AsyncClient, path: str):
    assert_problem(await http.get(path), 404)


# --- failures leave the session unchanged --------------------------------------------------------------


@pytest.mark.parametrize(
    ("fault", "status"),
    [({"status": 429, "retry_after": 3}, 429), ({"status": 503}, 503), ({"status": 500}, 502), ({"status": 400}, 400)],
)
async def test_model_failures_change_nothing(http: httpx2.AsyncClient, model: EchoModel, fault, status):
    session = await create(http)
    await say(http, session, "keep me")
    before = await http.get(f"/agents/general/sessions/{session['session_id']}")
    model.fail_next(**fault)
    response = await say(http, session, "fails")
    assert_problem(response, status)
    if status in (429, 503):
        assert int(response.headers["retry-after"]) >= 1
    after = await http.get(f"/agents/general/sessions/{session['session_id']}")
    assert after.json() == before.json()
    assert texts(await history(http, session))[0] == "keep me"
    assert len(await history(http, session)) == 2


async def test_model_timeout_is_504_and_changes_nothing(http: httpx2.AsyncClient, model: EchoModel):
    session = await create(http)
    model.stall_next(3)  # longer than AGENT_MODEL_TIMEOUT_SECONDS=2
    assert_problem(await say(http, session, "slow"), 504)
    assert await history(http, session) == []


async def test_storage_failures_change_nothing(http: httpx2.AsyncClient, storage_proxy: StorageProxy):
    session = await create(http)
    await say(http, session, "keep me")
    retries = 1 + STORAGE_RETRIES  # the SDK retries transient failures itself first
    storage_proxy.fail_next("POST", 503, count=retries)  # the turn's transaction
    response = await say(http, session, "lost to storage")
    assert_problem(response, 503)
    assert response.headers["retry-after"] == "1"
    storage_proxy.fail_next("GET", 500, count=retries)  # the turn's read
    assert_problem(await say(http, session, "lost to storage"), 503)
    stored = texts(await history(http, session))
    assert (len(stored), stored[0], seen_user_messages(stored[1])) == (2, "keep me", ["keep me"])
    assert (await say(http, session, "works again")).status_code == 200


async def test_mid_stream_model_failure_sends_error_event(http: httpx2.AsyncClient, model: EchoModel):
    session = await create(http)
    model.break_stream_next(after_deltas=1)
    url = f"/agents/general/sessions/{session['session_id']}/messages"
    async with http.stream("POST", url, json={"message": "break", "stream": True}) as response:
        events = await sse_events(response)
    assert events[0][0] == "delta"
    assert events[-1][0] == "error"
    assert events[-1][1]["status"] == 502
    assert await history(http, session) == []


# --- scale and cost ------------------------------------------------------------------------------------


async def test_health(http: httpx2.AsyncClient):
    response = await http.get("/health")
    assert response.status_code == 200
    assert response.json()["model"] == "openai"
    assert response.json()["agents"] == ["general", "shopping"]


# --- expiry through the timer function ---------------------------------------------------------------


async def test_timer_sweep_through_the_dev_server(http: httpx2.AsyncClient, app_servers, function_app_server, azurite):
    with app_servers.serve(AGENT_SESSION_TTL_SECONDS="1") as short_lived:  # an app on the same table
        async with app_client(short_lived) as short:
            stale, renewed = await create(short), await create(short)
            await say(short, stale, "soon gone")
    await say(http, renewed, "keep me")  # the session app renews its deadline to a day from now
    await asyncio.sleep(1.2)
    admin = f"{function_app_server.base_url}/admin/functions/expire_sessions"
    assert (await http.post(admin, json={"input": ""})).status_code == 202
    assert_problem(await http.get(f"/agents/general/sessions/{stale['session_id']}"), 404)
    assert len(await history(http, renewed)) == 2
    table = function_app_server.env["AGENT_SESSIONS_TABLE"]
    async with TableClient.from_connection_string(azurite.connection_string, table) as client:
        rows = client.query_entities(
            "PartitionKey ge @low and PartitionKey lt @high", parameters={"low": "s~", "high": "s~~"}
        )
        assert stale["session_id"] not in {row["PartitionKey"].rsplit("~", 1)[-1] async for row in rows}
