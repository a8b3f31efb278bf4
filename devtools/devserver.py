"""A local stand-in for `func start`: serves the project's own `azure.functions.FunctionApp` under uvicorn.

Core Tools cannot be installed offline (its installer downloads the host), so tests, CI and laptops use this instead.
It does what function_app.py needs and no more: async HTTP functions with plain `{name}` route parameters, routed by
Starlette's router; timer functions on NCRONTAB schedules (croniter); `POST /admin/functions/{name}` to run a timer
on demand, as the host's admin API does.
"""

from __future__ import annotations

import argparse
import asyncio
import importlib
import inspect
import json
import logging
import os
import re
import sys
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping, MutableMapping, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .serving import ThreadedServer

if TYPE_CHECKING:  # imported lazily at run time: azure.functions, starlette and uvicorn take ~0.1-0.3 s each
    import azure.functions as func
    from starlette.requests import Request
    from starlette.responses import Response

__all__ = ["DevApp", "DevServer", "HttpFunction", "NCronTab", "TimerFunction", "create_asgi_app", "main"]

log = logging.getLogger(__name__)

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]

ALL_METHODS = ("GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS", "TRACE")

# --- NCRONTAB schedules -----------------------------------------------------------------------------


class NCronTab:
    """An Azure Functions timer schedule: `{second} {minute} {hour} {day} {month} {day-of-week}`, in UTC.

    Evaluated by croniter (seconds first). As in the NCrontab library the host uses, a time must match *both* the
    day and the day-of-week fields (classic Unix cron ORs them when both are restricted).
    """

    def __init__(self, expression: str) -> None:
        from croniter import CroniterError

        self.expression = expression
        fields = len(expression.split())
        if fields != 6:
            raise ValueError(f"invalid NCRONTAB expression {expression!r}: expected 6 fields, got {fields}")
        try:
            self.next_after(datetime(2000, 1, 1, tzinfo=UTC))  # also refuses schedules that never occur
        except CroniterError as error:
            raise ValueError(f"invalid NCRONTAB expression {expression!r}: {error}") from None

    def __repr__(self) -> str:
        return f"NCronTab({self.expression!r})"

    def next_after(self, moment: datetime) -> datetime:
        """The first matching time strictly after `moment` (timezone-aware), as an aware UTC datetime."""
        from croniter import croniter

        if moment.tzinfo is None:
            raise ValueError("next_after() needs a timezone-aware datetime")
        schedule = croniter(self.expression, moment.astimezone(UTC), second_at_beginning=True, day_or=False)
        found: datetime = schedule.get_next(datetime)
        return found.astimezone(UTC)


def _resolve_settings(text: str, env: Mapping[str, str], function_name: str) -> str:
    """Replace `%NAME%` placeholders with app settings, as the host does for binding properties."""

    def setting(match: re.Match[str]) -> str:
        name = match.group(1)
        if name not in env:
            raise ValueError(f"function {function_name!r}: app setting {name!r} (used as %{name}%) is not set")
        return env[name]

    return re.sub(r"%([^%\s]+)%", setting, text)


# --- Functions --------------------------------------------------------------------------------------


def _problem(status: int, title: str, detail: str, headers: Mapping[str, str] | None = None) -> Response:
    """An RFC 9457 problem+json answer (never a stack trace)."""
    from starlette.responses import JSONResponse

    body = {"type": "about:blank", "title": title, "status": status, "detail": detail}
    return JSONResponse(body, status_code=status, headers=headers, media_type="application/problem+json")


@dataclass(frozen=True)
class HttpFunction:
    """One httpTrigger function, served at `path` (route prefix included) as an ASGI endpoint of Starlette's router.

    An ASGI endpoint rather than a Starlette request handler: a function's failure becomes a problem+json 500 (or,
    once the response has started, a closed connection), and a wrong method a problem+json 405.
    """

    name: str
    path: str
    methods: tuple[str, ...] | None  # None: any method
    parameter: str
    function: Callable[..., Awaitable[Any]]

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        from starlette.requests import ClientDisconnect, Request
        from starlette.responses import Response

        started = False

        async def tracking_send(message: Message) -> None:
            nonlocal started
            started = started or message["type"] == "http.response.start"
            await send(message)

        if self.methods is not None and scope["method"] not in self.methods:
            allow = ", ".join(sorted(self.methods))
            detail = f"{scope['method']} is not allowed on {scope['path']}; use {allow}."
            await _problem(405, "Method Not Allowed", detail, {"allow": allow})(scope, receive, send)
            return
        try:
            response = await self.function(**{self.parameter: Request(scope, receive)})
            if not isinstance(response, Response):
                raise TypeError(f"function {self.name!r} returned {type(response).__name__}, not a Response")
            await response(scope, receive, tracking_send)
        except ClientDisconnect:
            log.info("The client of %r went away before the response was complete", self.name)
        except Exception:
            log.exception("Function %r failed", self.name)
            if not started:  # once headers are out, uvicorn closes the connection to signal the broken response
                await _problem(500, "Internal Server Error", f"Function {self.name!r} failed.")(scope, receive, send)


@dataclass(frozen=True)
class TimerFunction:
    """One timerTrigger function with its schedule (placeholders resolved)."""

    name: str
    schedule: NCronTab
    run_on_startup: bool
    parameter: str
    function: Callable[..., Awaitable[Any]]

    async def run(self, *, past_due: bool = False) -> bool:
        """Run once; a failure is logged (and answered as such by the admin endpoint), never raised."""
        from azure.functions.timer import TimerRequest

        try:
            await self.function(**{self.parameter: TimerRequest(past_due=past_due)})
        except Exception:
            log.exception("Timer function %r failed", self.name)
            return False
        return True

    async def keep_running(self) -> None:
        """Run at each occurrence of the schedule, never overlapping runs, until cancelled."""
        if self.run_on_startup:
            await self.run()
        due = datetime.now(UTC)
        while True:
            due = self.schedule.next_after(max(due, datetime.now(UTC)))  # `due` guards against waking early
            await asyncio.sleep(max(0.0, (due - datetime.now(UTC)).total_seconds()))
            await self.run(past_due=datetime.now(UTC) - due > timedelta(seconds=5))


# --- The ASGI application ---------------------------------------------------------------------------


class DevApp:
    """ASGI app: Starlette's router over a FunctionApp's HTTP functions and `POST /admin/functions/{name}`; its
    lifespan runs the timers (when `run_timers`) and, at shutdown, the `on_shutdown` coroutines.

    Like Core Tools, auth levels are not enforced (no function keys needed) and headers pass through unchanged, so
    callers set platform headers such as `X-MS-CLIENT-PRINCIPAL-ID` themselves.
    """

    def __init__(self, routes: list[HttpFunction], timers: list[TimerFunction], *, run_timers: bool) -> None:
        from starlette.routing import Route, Router

        self.routes = routes
        self.timers = timers
        self.run_timers = run_timers
        self.on_shutdown: list[Callable[[], Awaitable[None]]] = []
        admin = HttpFunction("admin", "/admin/functions/{name}", ("POST",), "request", self._admin)
        self._router = Router(
            [*(Route(r.path, r) for r in routes), Route(admin.path, admin)],
            default=self._not_found,
            lifespan=self._lifespan,
        )

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        await self._router(scope, receive, send)

    def describe(self, base_url: str) -> list[str]:
        """Human-readable lines: each route with its methods and URL, then each timer with its schedule."""
        lines = [f"{r.name}: [{','.join(r.methods or ALL_METHODS)}] {base_url}{r.path}" for r in self.routes]
        return lines + [f"{t.name}: timerTrigger '{t.schedule.expression}'" for t in self.timers]

    async def _not_found(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            await _problem(404, "Not Found", f"No function serves {scope['path']}.")(scope, receive, send)

    async def _admin(self, request: Request) -> Response:
        from starlette.responses import Response

        name = request.path_params["name"].lower()  # function names are case-insensitive in the host
        if timer := next((t for t in self.timers if t.name.lower() == name), None):
            if await timer.run():
                return Response(status_code=202)
            return _problem(500, "Internal Server Error", f"Function {timer.name!r} failed.")
        if route := next((r for r in self.routes if r.name.lower() == name), None):
            return _problem(400, "Bad Request", f"{route.name!r} is an HTTP function; use its route.")
        return _problem(404, "Not Found", f"No function named {request.path_params['name']!r}.")

    @asynccontextmanager
    async def _lifespan(self, _: object) -> AsyncIterator[None]:
        timers = self.timers if self.run_timers else []
        tasks = [asyncio.create_task(t.keep_running(), name=f"timer {t.name}") for t in timers]
        try:
            yield
        finally:
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            for hook in self.on_shutdown:
                try:
                    await hook()
                except Exception:
                    log.exception("shutdown hook failed")


_PARAMETER = re.compile(r"\{([^{}]*)\}")


def _route_path(route_prefix: str, template: str, name: str) -> str:
    """The served path; only plain `{name}` parameters, the only kind function_app.py uses."""
    for parameter in _PARAMETER.findall(template):
        if not parameter.isidentifier():
            raise ValueError(f"function {name!r}: route parameter {{{parameter}}} is not a plain {{name}}")
    return "/" + "/".join(s for s in (route_prefix.strip("/"), template.strip("/")) if s)


def create_asgi_app(
    function_app: func.FunctionApp,
    *,
    route_prefix: str = "api",
    env: Mapping[str, str] | None = None,
    run_timers: bool = True,
) -> DevApp:
    """Derive routes and timers from the functions registered on `function_app` (no second route table).

    `%NAME%` placeholders in timer schedules are resolved from `env` (default: `os.environ`); an unset setting, an
    invalid schedule, a sync function or another trigger type raises ValueError here. Timers run on ASGI lifespan
    startup when `run_timers` is true.
    """
    from azure.functions.decorators.http import HttpTrigger
    from azure.functions.decorators.timer import TimerTrigger

    settings = os.environ if env is None else env
    routes: list[HttpFunction] = []
    timers: list[TimerFunction] = []
    for function in function_app.get_functions():
        user_function = function.get_user_function()
        name = function.get_function_name() or user_function.__name__
        trigger = function.get_trigger()
        if not inspect.iscoroutinefunction(user_function):
            raise ValueError(f"function {name!r} is not async; the dev server runs coroutine functions only")
        if isinstance(trigger, HttpTrigger):
            path = _route_path(route_prefix, trigger.route if trigger.route is not None else name, name)
            methods = tuple(str(getattr(m, "value", m)).upper() for m in trigger.methods) if trigger.methods else None
            routes.append(HttpFunction(name, path, methods, trigger.name, user_function))
        elif isinstance(trigger, TimerTrigger):
            try:
                schedule = NCronTab(_resolve_settings(trigger.schedule, settings, name))
            except ValueError as error:
                raise ValueError(f"function {name!r}: {error}") from None
            timers.append(TimerFunction(name, schedule, bool(trigger.run_on_startup), trigger.name, user_function))
        else:
            kind = trigger.type if trigger is not None else "no"
            raise ValueError(f"function {name!r} has a {kind} trigger; the dev server runs HTTP and timer functions")
    return DevApp(routes, timers, run_timers=run_timers)


# --- Serving over real HTTP -------------------------------------------------------------------------


class DevServer(ThreadedServer):
    """Serves a FunctionApp under uvicorn on 127.0.0.1 (a free port) in a background daemon thread.

    `on_shutdown` coroutines run at lifespan shutdown (e.g. closing the app's clients).
    """

    def __init__(
        self,
        function_app: func.FunctionApp,
        *,
        route_prefix: str = "api",
        env: Mapping[str, str] | None = None,
        run_timers: bool = True,
        on_shutdown: Sequence[Callable[[], Awaitable[None]]] = (),
    ) -> None:
        app = create_asgi_app(function_app, route_prefix=route_prefix, env=env, run_timers=run_timers)
        app.on_shutdown.extend(on_shutdown)
        super().__init__(app, name="devserver", lifespan="on")
        self.base_url = f"http://127.0.0.1:{self.port}"


# --- Command line -----------------------------------------------------------------------------------


def _load_settings(path: Path) -> None:
    """Copy `Values` from local.settings.json into the environment, never overriding what is already set."""
    if path.is_file():
        values = json.loads(path.read_text(encoding="utf-8")).get("Values") or {}
        for name, value in values.items():
            os.environ.setdefault(name, str(value))


MODEL_ENDPOINT_SETTINGS = ("AZURE_AI_PROJECT_ENDPOINT", "AZURE_OPENAI_ENDPOINT", "OPENAI_API_KEY")
ECHO_MODEL_LABEL = "[echo model]"


def _start_echo_model_if_unconfigured() -> ThreadedServer | None:
    """With no model endpoint set, serve the echo model on loopback and point the OpenAI settings at it.

    The app then talks to it as to any OpenAI-compatible server: the echo model never enters the app's code path.
    """
    if any(os.environ.get(name) for name in MODEL_ENDPOINT_SETTINGS):
        return None
    from .echo_model import EchoModel, EchoModelServer

    server = EchoModelServer(EchoModel(label=ECHO_MODEL_LABEL)).start()
    os.environ.update(OPENAI_BASE_URL=server.base_url, OPENAI_API_KEY="echo", OPENAI_RESPONSES_MODEL_ID="echo-1")
    print(f"No model endpoint set: serving the echo model at {server.base_url} (OPENAI_BASE_URL)")
    return server


def _route_prefix(host_json: Path) -> str:
    if not host_json.is_file():
        return "api"
    prefix = json.loads(host_json.read_text(encoding="utf-8")).get("extensions", {}).get("http", {}).get("routePrefix")
    return "api" if prefix is None else str(prefix)


def main(argv: Sequence[str] | None = None) -> None:
    """`python -m devtools.devserver`: serve the app in the current directory like `func start`."""
    parser = argparse.ArgumentParser(prog="python -m devtools.devserver", description=__doc__)
    parser.add_argument("--app", default="function_app:app", help="module:attribute of the FunctionApp")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=7071)
    parser.add_argument("--settings", default="local.settings.json", help="Core Tools settings file (Values)")
    parser.add_argument("--no-timers", action="store_true", help="do not run timer functions on their schedules")
    parser.add_argument(
        "--telemetry-console", action="store_true", help="print the app's spans to stdout (AGENT_TELEMETRY_CONSOLE)"
    )
    args = parser.parse_args(argv)
    if args.telemetry_console:
        os.environ["AGENT_TELEMETRY_CONSOLE"] = "true"

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    logging.getLogger("azure").setLevel(logging.WARNING)  # the Azure SDKs log every request at INFO
    _load_settings(Path(args.settings))  # before the import: the app may read settings at import time
    echo_model = _start_echo_model_if_unconfigured()
    sys.path.insert(0, os.getcwd())
    module_name, _, attribute = args.app.partition(":")
    function_app = getattr(importlib.import_module(module_name), attribute or "app")
    app = create_asgi_app(function_app, route_prefix=_route_prefix(Path("host.json")), run_timers=not args.no_timers)

    print("Functions:")
    for line in app.describe(f"http://{args.host}:{args.port}"):
        print(f"  {line}")

    import uvicorn

    try:
        uvicorn.run(app, host=args.host, port=args.port, lifespan="on", log_level="info", timeout_graceful_shutdown=3)
    finally:
        if echo_model is not None:
            echo_model.stop()


if __name__ == "__main__":
    main()
