"""The local dev server: routes, errors, streaming, admin invocation and timers derived from a real FunctionApp."""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from typing import Any

import azure.functions as func
import httpx2
import pytest
from starlette.requests import Request
from starlette.responses import Response

from devtools.devserver import DevApp, DevServer, NCronTab, create_asgi_app
from tests import devserver_app

QUIET_SCHEDULE = "0 0 0 1 1 *"  # midnight on New Year's Day: never fires during the tests


@pytest.fixture(scope="module")
def server() -> Iterator[DevServer]:
    with DevServer(devserver_app.create_app(), env={"TEST_TIMER_SCHEDULE": QUIET_SCHEDULE}) as dev_server:
        yield dev_server


@pytest.fixture
async def http(server: DevServer) -> AsyncIterator[httpx2.AsyncClient]:
    async with httpx2.AsyncClient(base_url=server.base_url, timeout=5) as client:
        yield client


def asgi_client(app: DevApp) -> httpx2.AsyncClient:
    return httpx2.AsyncClient(transport=httpx2.ASGITransport(app=app), base_url="http://dev")


@asynccontextmanager
async def lifespan(app: DevApp) -> AsyncIterator[None]:
    """Run the app's ASGI lifespan (startup on enter, shutdown on exit) as uvicorn would."""
    inbox: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
    outbox: asyncio.Queue[dict[str, Any]] = asyncio.Queue()

    async def send(message: Any) -> None:
        await outbox.put(dict(message))

    task = asyncio.create_task(app({"type": "lifespan", "asgi": {"version": "3.0"}}, inbox.get, send))
    await inbox.put({"type": "lifespan.startup"})
    assert (await asyncio.wait_for(outbox.get(), 2))["type"] == "lifespan.startup.complete"
    try:
        yield
    finally:
        await inbox.put({"type": "lifespan.shutdown"})
        assert (await asyncio.wait_for(outbox.get(), 2))["type"] == "lifespan.shutdown.complete"
        await asyncio.wait_for(task, 2)


async def eventually(condition: Callable[[], bool], *, within: float) -> bool:
    """Poll `condition` (the server side runs on this loop or another thread) until true or `within` seconds pass."""
    deadline = time.monotonic() + within
    while not (met := condition()) and time.monotonic() < deadline:  # noqa: ASYNC110  # no event to wait on
        await asyncio.sleep(0.02)
    return met


def assert_problem(response: httpx2.Response, status: int) -> dict[str, Any]:
    assert response.status_code == status
    assert response.headers["content-type"] == "application/problem+json"
    body: dict[str, Any] = response.json()
    assert body["type"] == "about:blank"
    assert body["status"] == status
    assert body["title"]
    assert body["detail"]
    return body


# --- HTTP functions over real HTTP ------------------------------------------------------------------


async def test_path_params_query_and_platform_headers_reach_the_function(http: httpx2.AsyncClient) -> None:
    response = await http.get(
        "/api/agents/helper/sessions/s-42", params={"q": "1"}, headers={"X-MS-CLIENT-PRINCIPAL-ID": "user-7"}
    )

    assert response.status_code == 200
    assert response.json() == {
        "path_params": {"agent": "helper", "session_id": "s-42"},
        "query": {"q": "1"},
        "principal": "user-7",
    }


async def test_methods_are_restricted_as_registered(http: httpx2.AsyncClient) -> None:
    assert (await http.get("/api/things/7")).text == "GET 7"
    assert (await http.delete("/api/things/7")).text == "DELETE 7"

    response = await http.put("/api/things/7")

    assert_problem(response, 405)
    assert response.headers["allow"] == "DELETE, GET"


async def test_unknown_route_is_a_404_problem(http: httpx2.AsyncClient) -> None:
    body = assert_problem(await http.get("/api/nothing/here"), 404)
    assert "/api/nothing/here" in body["detail"]
    assert_problem(await http.get("/agents/helper/sessions/s-42"), 404)  # the route prefix is required


async def test_post_body_is_echoed(http: httpx2.AsyncClient) -> None:
    response = await http.post("/api/echo", json={"text": "héllo", "n": [1, 2]})

    assert response.status_code == 201
    assert response.json() == {"received": {"text": "héllo", "n": [1, 2]}}


async def test_streaming_response_streams_before_the_handler_finishes(http: httpx2.AsyncClient) -> None:
    # The handler holds its second chunk until the test has seen the first one. A buffering server would send
    # nothing until the gate gives up (10 s), so this read would time out (3 s) instead of passing.
    devserver_app.stream_release.clear()
    async with http.stream("GET", "/api/stream", timeout=3) as response:
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("text/event-stream")
        chunks = response.aiter_text()
        seen = ""
        while "\n\n" not in seen:
            seen += await anext(chunks)
        assert seen == "data: first\n\n"
        devserver_app.stream_release.set()
        rest = "".join([chunk async for chunk in chunks])

    assert rest == "data: second\n\ndata: [DONE]\n\n"


async def test_a_failing_function_is_a_500_problem_without_internals(
    http: httpx2.AsyncClient, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.ERROR, logger="devtools.devserver"):
        response = await http.get("/api/boom")

    body = assert_problem(response, 500)
    assert "boom" in body["detail"]
    assert "Traceback" not in response.text
    assert "secret internals" not in response.text
    assert any(record.exc_info and "secret internals" in str(record.exc_info[1]) for record in caplog.records)


async def test_auth_keys_are_not_enforced(http: httpx2.AsyncClient) -> None:
    # the app is AuthLevel.FUNCTION, but like Core Tools the dev server needs no ?code= or x-functions-key
    assert (await http.get("/api/things/1")).status_code == 200


# --- Admin invocation of non-HTTP functions ---------------------------------------------------------


async def test_admin_endpoint_runs_the_timer_and_answers_202_when_done(http: httpx2.AsyncClient) -> None:
    before = len(devserver_app.timer_runs)

    response = await http.post("/admin/functions/tick", json={"input": ""})

    assert response.status_code == 202
    assert response.content == b""
    assert len(devserver_app.timer_runs) == before + 1
    timer = devserver_app.timer_runs[-1]
    assert isinstance(timer, func.TimerRequest)
    assert timer.past_due is False


async def test_admin_endpoint_rejects_unknown_http_and_non_post(http: httpx2.AsyncClient) -> None:
    assert "NoPe" in assert_problem(await http.post("/admin/functions/NoPe"), 404)["detail"]
    assert "use its route" in assert_problem(await http.post("/admin/functions/echo"), 400)["detail"]
    assert_problem(await http.get("/admin/functions/tick"), 405)


async def test_admin_endpoint_reports_a_failing_timer_as_500() -> None:
    app = func.FunctionApp()

    @app.timer_trigger(schedule="0 0 0 1 1 *", arg_name="timer")
    async def broken(timer: func.TimerRequest) -> None:
        raise RuntimeError("timer exploded")

    async with asgi_client(create_asgi_app(app)) as client:
        body = assert_problem(await client.post("/admin/functions/broken"), 500)
    assert "exploded" not in json.dumps(body)


# --- What the dev server refuses (in-process ASGI) ---------------------------------------------------


def one_route_app(route: str) -> func.FunctionApp:
    app = func.FunctionApp(http_auth_level=func.AuthLevel.ANONYMOUS)

    @app.route(route=route)
    async def only(req: Request) -> Response:
        return Response(f"only {dict(req.path_params)}")

    return app


@pytest.mark.parametrize("route", ["numbers/{n:int}", "pages/{page?}", "files/{*rest}"])
def test_route_templates_beyond_plain_parameters_are_refused(route: str) -> None:
    """function_app.py uses plain {name} parameters only; anything else is refused, never served differently."""
    with pytest.raises(ValueError, match=r"'only'.*not a plain \{name\}"):
        create_asgi_app(one_route_app(route))


def test_sync_functions_are_refused() -> None:
    app = func.FunctionApp()

    @app.route(route="plain")
    def plain(req: Request) -> Response:
        return Response("sync")

    with pytest.raises(ValueError, match="'plain' is not async"):
        create_asgi_app(app)


async def test_a_function_returning_no_response_is_a_500_problem() -> None:
    app = func.FunctionApp()

    @app.route(route="data")
    async def data(req: Request) -> dict[str, str]:
        return {"not": "a Response"}

    async with asgi_client(create_asgi_app(app)) as client:
        assert "'data' failed" in assert_problem(await client.get("/api/data"), 500)["detail"]


async def test_empty_route_prefix_serves_routes_at_the_root() -> None:
    app = create_asgi_app(one_route_app("items/{item}"), route_prefix="")
    async with asgi_client(app) as client:
        assert (await client.get("/items/7")).text == "only {'item': '7'}"
        assert_problem(await client.get("/api/items/7"), 404)
    assert "only: [GET,POST,PUT,PATCH,DELETE,HEAD,OPTIONS,TRACE] http://x/items/{item}" in app.describe("http://x")


def test_describe_lists_routes_and_timers(server: DevServer) -> None:
    lines = server.app.describe(server.base_url)

    assert f"thing: [GET,DELETE] {server.base_url}/api/things/{{thing_id}}" in lines
    assert f"tick: timerTrigger '{QUIET_SCHEDULE}'" in lines


# --- Timers -----------------------------------------------------------------------------------------


async def test_timer_fires_on_its_schedule_and_stops_on_shutdown() -> None:
    app = create_asgi_app(devserver_app.create_app(), env={"TEST_TIMER_SCHEDULE": "*/1 * * * * *"})
    before = len(devserver_app.timer_runs)

    async with lifespan(app):
        assert await eventually(lambda: len(devserver_app.timer_runs) > before, within=2.5)
    stopped_at = len(devserver_app.timer_runs)
    await asyncio.sleep(1.2)
    assert len(devserver_app.timer_runs) == stopped_at


async def test_run_on_startup_runs_once_at_start_and_failures_do_not_stop_the_timer() -> None:
    runs: list[str] = []
    app = func.FunctionApp()

    @app.timer_trigger(schedule="*/1 * * * * *", arg_name="t", run_on_startup=True)
    async def flaky(t: func.TimerRequest) -> None:
        runs.append("run")
        raise RuntimeError("every run fails")

    async with lifespan(create_asgi_app(app)):
        await asyncio.sleep(0.05)
        assert runs == ["run"]  # the startup run, before the first scheduled second
        assert await eventually(lambda: len(runs) >= 2, within=2.5)


async def test_run_timers_false_leaves_timers_to_the_admin_endpoint() -> None:
    app = create_asgi_app(devserver_app.create_app(), env={"TEST_TIMER_SCHEDULE": "*/1 * * * * *"}, run_timers=False)
    before = len(devserver_app.timer_runs)
    async with lifespan(app):
        await asyncio.sleep(1.1)
    assert len(devserver_app.timer_runs) == before


def nightly_app() -> func.FunctionApp:
    app = func.FunctionApp()

    @app.timer_trigger(schedule="%MISSING%", arg_name="timer")
    async def nightly(timer: func.TimerRequest) -> None: ...

    return app


def test_unresolved_schedule_setting_is_a_clear_error() -> None:
    with pytest.raises(ValueError, match=r"'nightly'.*MISSING"):
        create_asgi_app(nightly_app(), env={})
    with pytest.raises(ValueError, match=r"'nightly'.*NCRONTAB"):
        create_asgi_app(nightly_app(), env={"MISSING": "every day"})
    app = create_asgi_app(nightly_app(), env={"MISSING": "0 0 3 * * *"})
    assert app.timers[0].schedule.expression == "0 0 3 * * *"


# --- NCRONTAB ---------------------------------------------------------------------------------------


def at(year: int, month: int, day: int, hour: int = 0, minute: int = 0, second: int = 0) -> datetime:
    return datetime(year, month, day, hour, minute, second, tzinfo=UTC)


@pytest.mark.parametrize(
    ("expression", "after", "expected"),
    [
        ("0 */5 * * * *", at(2024, 3, 5, 12, 3, 10), at(2024, 3, 5, 12, 5, 0)),
        ("0 */5 * * * *", at(2024, 3, 5, 12, 5, 0), at(2024, 3, 5, 12, 10, 0)),  # strictly after
        ("*/10 * * * * *", at(2024, 3, 5, 12, 3, 10), at(2024, 3, 5, 12, 3, 20)),
        ("*/10 * * * * *", at(2024, 3, 5, 23, 59, 55), at(2024, 3, 6, 0, 0, 0)),
        ("0 0 9 * * MON-FRI", at(2024, 3, 8, 10, 0, 0), at(2024, 3, 11, 9, 0, 0)),  # Friday -> Monday
        ("0 0 9 * * 1-5", at(2024, 3, 8, 8, 59, 59), at(2024, 3, 8, 9, 0, 0)),
        ("0 30 2 1 * *", at(2024, 3, 1, 2, 30, 0), at(2024, 4, 1, 2, 30, 0)),
        ("0 30 2 1 * *", at(2024, 12, 15, 0, 0, 0), at(2025, 1, 1, 2, 30, 0)),  # December -> January
        ("0 0 0 29 2 *", at(2024, 3, 1, 0, 0, 0), at(2028, 2, 29, 0, 0, 0)),  # next leap day
        ("0 0 0 29 FEB *", at(2096, 3, 1, 0, 0, 0), at(2104, 2, 29, 0, 0, 0)),  # 2100 is not a leap year
        ("0 0 0 31 * *", at(2024, 4, 1, 0, 0, 0), at(2024, 5, 31, 0, 0, 0)),  # skips 30-day months
        ("0 15 10 * JAN,jul sun", at(2024, 1, 8, 0, 0, 0), at(2024, 1, 14, 10, 15, 0)),
        ("0 0 12 * * 7", at(2024, 3, 5, 0, 0, 0), at(2024, 3, 10, 12, 0, 0)),  # 7 is Sunday too
        ("0 0-10/5 8 * * *", at(2024, 3, 5, 8, 5, 30), at(2024, 3, 5, 8, 10, 0)),
        ("30 1,2 * * * *", at(2024, 3, 5, 8, 2, 30), at(2024, 3, 5, 9, 1, 30)),
    ],
)
def test_ncrontab_next_occurrence(expression: str, after: datetime, expected: datetime) -> None:
    assert NCronTab(expression).next_after(after) == expected


def test_ncrontab_day_and_day_of_week_must_both_match_like_the_host() -> None:
    # The host's NCrontab ANDs a restricted day with a restricted day-of-week (Unix cron would OR them):
    # the 13th that is a Friday, i.e. 2024-09-13, not the next Friday (Jan 5) nor the next 13th (Jan 13).
    found = NCronTab("0 0 9 13 * FRI").next_after(at(2024, 1, 1, 0, 0, 0))

    assert found == at(2024, 9, 13, 9, 0, 0)
    assert found.weekday() == 4


def test_ncrontab_accepts_other_timezones_and_needs_an_aware_datetime() -> None:
    from zoneinfo import ZoneInfo

    local = datetime(2024, 3, 5, 12, 3, 10, tzinfo=ZoneInfo("Europe/Paris"))  # 11:03:10 UTC
    assert NCronTab("0 0 * * * *").next_after(local) == at(2024, 3, 5, 12, 0, 0)
    with pytest.raises(ValueError, match="timezone-aware"):
        NCronTab("0 0 * * * *").next_after(datetime(2024, 3, 5))


@pytest.mark.parametrize(
    "expression",
    [
        "",
        "* * * *",
        "5 4 * * *",  # classic 5-field cron: the host's timer schedules have seconds
        "* * * * * * *",
        "60 * * * * *",
        "* * 24 * * *",
        "* * * 0 * *",
        "* * * * 13 *",
        "* * * * * 8",
        "* * * * FOO *",
        "*/0 * * * * *",
        "a * * * * *",
        "* * * 31 2 *",
        "1,,2 * * * * *",
    ],
)
def test_ncrontab_rejects_invalid_expressions(expression: str) -> None:
    with pytest.raises(ValueError, match="NCRONTAB"):
        NCronTab(expression)
