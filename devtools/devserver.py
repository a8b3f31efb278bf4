"""A local stand-in for `func start`: serves the project's own `azure.functions.FunctionApp` under uvicorn.

Core Tools cannot be installed offline (its installer downloads the host), so tests, CI and laptops use this instead.
"""

from __future__ import annotations

import argparse
import asyncio
import bisect
import calendar
import importlib
import inspect
import json
import logging
import os
import re
import sys
from collections.abc import Awaitable, Callable, Mapping, MutableMapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .serving import ThreadedServer

if TYPE_CHECKING:  # imported lazily at run time: azure.functions, starlette and uvicorn take ~0.1-0.3 s each
    import azure.functions as func
    from starlette.responses import Response

__all__ = ["DevApp", "DevServer", "HttpRoute", "NCronTab", "TimerFunction", "create_asgi_app", "main"]

log = logging.getLogger(__name__)

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]

ALL_METHODS = ("GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS", "TRACE")

# --- NCRONTAB schedules -----------------------------------------------------------------------------

_MONTHS = ("JAN", "FEB", "MAR", "APR", "MAY", "JUN", "JUL", "AUG", "SEP", "OCT", "NOV", "DEC")
_DAYS = ("SUN", "MON", "TUE", "WED", "THU", "FRI", "SAT")
# name, lowest, highest, highest for "*", names (first name = lowest value)
_FIELDS: tuple[tuple[str, int, int, int, tuple[str, ...]], ...] = (
    ("second", 0, 59, 59, ()),
    ("minute", 0, 59, 59, ()),
    ("hour", 0, 23, 23, ()),
    ("day", 1, 31, 31, ()),
    ("month", 1, 12, 12, _MONTHS),
    ("day-of-week", 0, 7, 6, _DAYS),  # 7 is Sunday too
)
_LONGEST_MONTH = (31, 29, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31)


def _parse_field(text: str, low: int, high: int, star_high: int, names: tuple[str, ...]) -> tuple[int, ...]:
    def value(token: str) -> int:
        if token.isdigit():
            number = int(token)
        elif token.upper() in names:
            number = low + names.index(token.upper())
        else:
            raise ValueError(f"{token!r} is not a number{' or name' if names else ''}")
        if not low <= number <= high:
            raise ValueError(f"{number} is outside {low}-{high}")
        return number

    values: set[int] = set()
    for part in text.split(","):
        span, slash, step_text = part.partition("/")
        step = int(step_text) if step_text.isdigit() else 0 if slash else 1
        if step < 1:
            raise ValueError(f"bad step in {part!r}")
        if span == "*":
            start, end = low, star_high
        elif "-" in span:
            start, end = (value(token) for token in span.split("-", 1))
            if start > end:
                raise ValueError(f"range {span!r} runs backwards")
        else:
            start = value(span)
            end = star_high if slash else start  # "5/15" means from 5 to the end, every 15
        values.update(range(start, end + 1, step))
    return tuple(sorted(values))


class NCronTab:
    """An Azure Functions timer schedule: `{second} {minute} {hour} {day} {month} {day-of-week}`, evaluated in UTC.

    A 5-field classic cron expression is accepted too (second 0). As in the NCrontab library the host uses, a time
    must match *both* the day and the day-of-week fields (classic Unix cron ORs them when both are restricted).
    """

    def __init__(self, expression: str) -> None:
        self.expression = expression
        texts = expression.split()
        if len(texts) == 5:
            texts.insert(0, "0")
        if len(texts) != 6:
            raise ValueError(f"invalid NCRONTAB expression {expression!r}: expected 6 fields (or 5), got {len(texts)}")
        parsed: list[tuple[int, ...]] = []
        for text, (name, low, high, star_high, names) in zip(texts, _FIELDS, strict=True):
            try:
                parsed.append(_parse_field(text, low, high, star_high, names))
            except ValueError as error:
                raise ValueError(
                    f"invalid NCRONTAB expression {expression!r}: {name} field {text!r}: {error}"
                ) from None
        self.seconds, self.minutes, self.hours, self.days, self.months = parsed[:5]
        self.weekdays = frozenset(day % 7 for day in parsed[5])
        if all(self.days[0] > _LONGEST_MONTH[month - 1] for month in self.months):
            raise ValueError(f"invalid NCRONTAB expression {expression!r}: the day never occurs in the month(s)")

    def __repr__(self) -> str:
        return f"NCronTab({self.expression!r})"

    def next_after(self, moment: datetime) -> datetime:
        """The first matching time strictly after `moment` (timezone-aware), as an aware UTC datetime."""
        if moment.tzinfo is None:
            raise ValueError("next_after() needs a timezone-aware datetime")
        t = moment.astimezone(UTC).replace(microsecond=0) + timedelta(seconds=1)
        horizon = t.year + 100  # every valid expression recurs within a 400-year calendar cycle; in practice < 30
        while t.year <= horizon:
            month = _next_value(self.months, t.month)
            if month is None:
                t = datetime(t.year + 1, self.months[0], 1, tzinfo=UTC)
                continue
            if month != t.month:
                t = datetime(t.year, month, 1, tzinfo=UTC)
            day = _next_value(self.days, t.day)
            if day is None or day > calendar.monthrange(t.year, t.month)[1]:
                t = datetime(t.year + t.month // 12, t.month % 12 + 1, 1, tzinfo=UTC)
                continue
            if day != t.day:
                t = datetime(t.year, t.month, day, tzinfo=UTC)
            if (t.weekday() + 1) % 7 not in self.weekdays:  # Python: Monday=0; cron: Sunday=0
                t = datetime(t.year, t.month, t.day, tzinfo=UTC) + timedelta(days=1)
                continue
            hour = _next_value(self.hours, t.hour)
            if hour is None:
                t = datetime(t.year, t.month, t.day, tzinfo=UTC) + timedelta(days=1)
                continue
            if hour != t.hour:
                t = t.replace(hour=hour, minute=0, second=0)
            minute = _next_value(self.minutes, t.minute)
            if minute is None:
                t = t.replace(minute=0, second=0) + timedelta(hours=1)
                continue
            if minute != t.minute:
                t = t.replace(minute=minute, second=0)
            second = _next_value(self.seconds, t.second)
            if second is None:
                t = t.replace(second=0) + timedelta(minutes=1)
                continue
            return t.replace(second=second)
        raise ValueError(f"NCRONTAB expression {self.expression!r} has no occurrence in the 100 years after {moment}")


def _next_value(values: tuple[int, ...], at_least: int) -> int | None:
    index = bisect.bisect_left(values, at_least)
    return values[index] if index < len(values) else None


def _resolve_settings(text: str, env: Mapping[str, str], function_name: str) -> str:
    """Replace `%NAME%` placeholders with app settings, as the host does for binding properties."""

    def setting(match: re.Match[str]) -> str:
        name = match.group(1)
        if name not in env:
            raise ValueError(f"function {function_name!r}: app setting {name!r} (used as %{name}%) is not set")
        return env[name]

    return re.sub(r"%([^%\s]+)%", setting, text)


# --- Route templates --------------------------------------------------------------------------------

_CONSTRAINTS = {
    "int": r"-?\d+",
    "long": r"-?\d+",
    "alpha": r"[A-Za-z]+",
    "bool": r"(?i:true|false)",
    "guid": r"\{?[0-9A-Fa-f]{8}-?[0-9A-Fa-f]{4}-?[0-9A-Fa-f]{4}-?[0-9A-Fa-f]{4}-?[0-9A-Fa-f]{12}\}?",
}
_PARAMETER = re.compile(r"\{([^{}]+)\}")


def _compile_route(path: str) -> tuple[re.Pattern[str], tuple[str, ...], int]:
    """A route template (prefix included) -> (regex over the whole path, parameter names, literal segment count)."""
    names: list[str] = []
    pattern = ""
    segments = [s for s in path.split("/") if s]
    for segment in segments:
        regex = ""
        position = 0
        optional_segment = False
        for match in _PARAMETER.finditer(segment):
            regex += re.escape(segment[position : match.start()])
            position = match.end()
            spec = match.group(1)
            optional = spec.endswith("?")
            name, *constraints = spec.rstrip("?").split(":")
            catch_all = name.startswith("*")  # {*rest} takes the rest of the path
            names.append(name.lstrip("*"))
            value = ".*" if catch_all else next((_CONSTRAINTS[c] for c in constraints if c in _CONSTRAINTS), "[^/]+")
            regex += f"(?P<p{len(names) - 1}>{value})"
            if match.group(0) == segment and (optional or catch_all):
                optional_segment = True  # the whole segment, slash included, may be absent
            elif optional:
                regex += "?"
        regex += re.escape(segment[position:])
        pattern += f"(?:/{regex})?" if optional_segment else f"/{regex}"
    literal_count = sum(1 for segment in segments if not _PARAMETER.search(segment))
    return re.compile(f"{pattern}/?", re.IGNORECASE), tuple(names), literal_count


@dataclass(frozen=True)
class HttpRoute:
    """One httpTrigger function, served at `path` (route prefix included)."""

    name: str
    path: str
    methods: tuple[str, ...] | None  # None: any method
    parameter: str
    function: Callable[..., Any]
    regex: re.Pattern[str] = field(repr=False)
    names: tuple[str, ...] = field(repr=False)
    literal_segments: int = field(repr=False)

    def match(self, path: str) -> dict[str, str] | None:
        """Path parameters (strings) when `path` fits the template, else None."""
        found = self.regex.fullmatch(path)
        if found is None:
            return None
        return {name: value for name, value in zip(self.names, found.groups(), strict=True) if value is not None}


@dataclass(frozen=True)
class TimerFunction:
    """One timerTrigger function with its schedule (placeholders resolved)."""

    name: str
    schedule: NCronTab
    run_on_startup: bool
    parameter: str
    function: Callable[..., Any]


# --- The ASGI application ---------------------------------------------------------------------------


class DevApp:
    """ASGI app serving a FunctionApp's HTTP routes, `POST /admin/functions/{name}` and (on lifespan) its timers.

    Like Core Tools, auth levels are not enforced (no function keys needed) and headers pass through unchanged, so
    callers set platform headers such as `X-MS-CLIENT-PRINCIPAL-ID` themselves.
    """

    def __init__(
        self, routes: list[HttpRoute], timers: list[TimerFunction], others: dict[str, str], *, run_timers: bool
    ) -> None:
        self.routes = routes  # in registration order
        # matching order: literal segments beat parameters, then registration order (sorted() is stable)
        self._matching = sorted(routes, key=lambda route: -route.literal_segments)
        self.timers = timers
        self.others = others  # name -> trigger type for functions that are neither HTTP nor timer
        self.run_timers = run_timers
        self.on_shutdown: list[Callable[[], Awaitable[None]]] = []  # run at lifespan shutdown
        self._tasks: list[asyncio.Task[None]] = []

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            await self._lifespan(receive, send)
        elif scope["type"] == "http":
            admin = re.fullmatch(r"/admin/functions/([^/]+)/?", scope["path"])
            if admin:
                await self._admin(admin.group(1), scope, receive, send)
            else:
                await self._http(scope, receive, send)

    def describe(self, base_url: str) -> list[str]:
        """Human-readable lines: each route with its methods and URL, then each timer with its schedule."""
        lines = [f"{r.name}: [{','.join(r.methods or ALL_METHODS)}] {base_url}{r.path}" for r in self.routes]
        lines += [f"{t.name}: timerTrigger '{t.schedule.expression}'" for t in self.timers]
        lines += [f"{name}: {kind} (not run by the dev server)" for name, kind in self.others.items()]
        return lines

    async def _http(self, scope: Scope, receive: Receive, send: Send) -> None:
        method, path = scope["method"], scope["path"]
        allowed: set[str] = set()
        for route in self._matching:
            params = route.match(path)
            if params is None:
                continue
            if route.methods is not None and method not in route.methods:
                allowed.update(route.methods)
                continue
            await self._serve(route, {**scope, "path_params": params}, receive, send)
            return
        if allowed:
            allow = ", ".join(sorted(allowed))
            detail = f"{method} is not allowed on {path}; use {allow}."
            await _send_problem(send, 405, "Method Not Allowed", detail, [("allow", allow)])
        else:
            await _send_problem(send, 404, "Not Found", f"No function serves {path}.")

    async def _serve(self, route: HttpRoute, scope: Scope, receive: Receive, send: Send) -> None:
        from starlette.requests import ClientDisconnect, Request  # the extension's Request is this one

        started = False

        async def tracking_send(message: Message) -> None:
            nonlocal started
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            result = await _invoke(route.function, {route.parameter: Request(scope, receive)})
            await _to_response(result)(scope, receive, tracking_send)
        except ClientDisconnect:
            log.info("The client of %r went away before the response was complete", route.name)
        except Exception:
            log.exception("Function %r failed", route.name)
            if not started:  # once headers are out, uvicorn closes the connection to signal the broken response
                await _send_problem(send, 500, "Internal Server Error", f"Function {route.name!r} failed.")

    async def _admin(self, name: str, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["method"] != "POST":
            await _send_problem(send, 405, "Method Not Allowed", "Use POST.", [("allow", "POST")])
            return
        wanted = name.lower()  # function names are case-insensitive in the host
        timer = next((t for t in self.timers if t.name.lower() == wanted), None)
        if timer is not None:
            ok = await self._run_timer_function(timer)
            if ok:
                await send({"type": "http.response.start", "status": 202, "headers": [(b"content-length", b"0")]})
                await send({"type": "http.response.body", "body": b""})
            else:
                await _send_problem(send, 500, "Internal Server Error", f"Function {timer.name!r} failed.")
        elif route := next((r for r in self.routes if r.name.lower() == wanted), None):
            await _send_problem(send, 400, "Bad Request", f"{route.name!r} is an HTTP function; use its route.")
        elif other := next((o for o in self.others if o.lower() == wanted), None):
            detail = f"{other!r} has a {self.others[other]} trigger, which the dev server cannot invoke."
            await _send_problem(send, 501, "Not Implemented", detail)
        else:
            await _send_problem(send, 404, "Not Found", f"No function named {name!r}.")

    async def _run_timer_function(self, timer: TimerFunction, *, past_due: bool = False) -> bool:
        from azure.functions.timer import TimerRequest

        try:
            await _invoke(timer.function, {timer.parameter: TimerRequest(past_due=past_due)})
        except Exception:
            log.exception("Timer function %r failed", timer.name)
            return False
        return True

    async def _schedule(self, timer: TimerFunction) -> None:
        """Run one timer function at each occurrence of its schedule, never overlapping runs, until cancelled."""
        if timer.run_on_startup:
            await self._run_timer_function(timer)
        due = datetime.now(UTC)
        while True:
            due = timer.schedule.next_after(max(due, datetime.now(UTC)))  # `due` guards against waking early
            await asyncio.sleep(max(0.0, (due - datetime.now(UTC)).total_seconds()))
            late = datetime.now(UTC) - due > timedelta(seconds=5)
            await self._run_timer_function(timer, past_due=late)

    async def _lifespan(self, receive: Receive, send: Send) -> None:
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                if self.run_timers:
                    self._tasks = [asyncio.create_task(self._schedule(t), name=f"timer {t.name}") for t in self.timers]
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                for task in self._tasks:
                    task.cancel()
                await asyncio.gather(*self._tasks, return_exceptions=True)
                self._tasks = []
                for hook in self.on_shutdown:
                    try:
                        await hook()
                    except Exception:
                        log.exception("shutdown hook failed")
                await send({"type": "lifespan.shutdown.complete"})
                return


async def _invoke(function: Callable[..., Any], kwargs: dict[str, Any]) -> Any:
    """Await a coroutine function; run a plain one in a worker thread (as the Python worker does)."""
    if inspect.iscoroutinefunction(function):
        return await function(**kwargs)
    result = await asyncio.to_thread(function, **kwargs)
    return await result if inspect.isawaitable(result) else result


def _to_response(result: object) -> Response:
    from starlette.responses import JSONResponse, PlainTextResponse, Response

    if isinstance(result, Response):
        return result
    if result is None:
        return Response(status_code=204)
    if isinstance(result, str):
        return PlainTextResponse(result)
    if isinstance(result, bytes):
        return Response(result, media_type="application/octet-stream")
    if isinstance(result, dict | list):
        return JSONResponse(result)
    raise TypeError(f"an HTTP function returned {type(result).__name__}, not a Response")


async def _send_problem(
    send: Send, status: int, title: str, detail: str, headers: Sequence[tuple[str, str]] = ()
) -> None:
    """An RFC 9457 problem+json answer (never a stack trace)."""
    body = json.dumps({"type": "about:blank", "title": title, "status": status, "detail": detail}).encode()
    pairs = [("content-type", "application/problem+json"), ("content-length", str(len(body))), *headers]
    raw = [(name.encode("latin-1"), value.encode("latin-1")) for name, value in pairs]
    await send({"type": "http.response.start", "status": status, "headers": raw})
    await send({"type": "http.response.body", "body": body})


def _indexed_functions(function_app: func.FunctionApp) -> list[func.Function]:
    """`function_app.get_functions()`, callable more than once (a second call normally fails as "not unique")."""
    seen = function_app.functions_bindings  # the duplicate-name check remembers names across calls
    function_app.functions_bindings = None
    try:
        return function_app.get_functions()
    finally:
        function_app.functions_bindings = seen


def create_asgi_app(
    function_app: func.FunctionApp,
    *,
    route_prefix: str = "api",
    env: Mapping[str, str] | None = None,
    run_timers: bool = True,
) -> DevApp:
    """Derive routes and timers from the functions registered on `function_app` (no second route table).

    `%NAME%` placeholders in timer schedules are resolved from `env` (default: `os.environ`); an unset setting or an
    invalid schedule raises ValueError here. Timers run on ASGI lifespan startup when `run_timers` is true.
    """
    from azure.functions.decorators.http import HttpTrigger
    from azure.functions.decorators.timer import TimerTrigger

    settings = os.environ if env is None else env
    routes: list[HttpRoute] = []
    timers: list[TimerFunction] = []
    others: dict[str, str] = {}
    for function in _indexed_functions(function_app):
        name = function.get_function_name() or function.get_user_function().__name__
        trigger = function.get_trigger()
        if isinstance(trigger, HttpTrigger):
            template = trigger.route if trigger.route is not None else name
            methods = tuple(str(getattr(m, "value", m)).upper() for m in trigger.methods) if trigger.methods else None
            path = "/" + "/".join(s for s in (route_prefix.strip("/"), template.strip("/")) if s)
            user_function = function.get_user_function()
            routes.append(HttpRoute(name, path, methods, trigger.name, user_function, *_compile_route(path)))
        elif isinstance(trigger, TimerTrigger):
            schedule = _resolve_settings(trigger.schedule, settings, name)
            try:
                crontab = NCronTab(schedule)
            except ValueError as error:
                raise ValueError(f"function {name!r}: {error}") from None
            timers.append(
                TimerFunction(name, crontab, bool(trigger.run_on_startup), trigger.name, function.get_user_function())
            )
        else:
            others[name] = str(trigger.type) if trigger is not None else "no trigger"
    return DevApp(routes, timers, others, run_timers=run_timers)


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
    args = parser.parse_args(argv)

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
