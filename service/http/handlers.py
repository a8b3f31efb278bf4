"""The handlers behind function_app.py's routes: parse and validate, call the store or one turn, answer.

Handlers take and return Starlette (FastAPI) objects, the types the Azure Functions HTTP streaming
extension passes in and expects back. Each is a plain method under `@handler(...)`, which answers 405
for other methods, hands the handler the process's runtime and turns any exception into problem+json.
"""

from __future__ import annotations

import asyncio
import functools
import json
import logging
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from datetime import UTC, datetime

from starlette.requests import Request
from starlette.responses import Response

from agent_core.exceptions import ConfigurationError
from agent_core.sessions import new_session_id

from .. import telemetry
from ..expiry import SweepResult, sweep
from ..ownership import check_attachable
from ..playground import playground_response
from ..runtime import AgentSpec, Runtime, RuntimeHolder
from ..settings import AppSettings
from ..storage import SessionConflictError, StoredSession, StoreError, branching
from ..storage.catalog import Listed, SessionCatalog
from ..turns import TurnRequest, TurnResult, run_turn, turn
from .accept import wants_event_stream
from .bodies import (
    CreateSessionBody,
    ForkBody,
    HistoryQuery,
    RewindBody,
    SessionListQuery,
    TurnBody,
    UpdateSessionBody,
    fingerprint,
    idempotency_key,
    parse,
    parse_query,
    read_json,
)
from .openapi import openapi_document
from .problems import HttpError, bad_request, method_not_allowed, not_found, to_http_error
from .replies import ForkedFrom, ForkReply, Health, RewindReply
from .sse import stream_response
from .views import agent_list, decode_cursor, history_page, session_detail, session_page, session_reply, turn_reply

logger = logging.getLogger(__name__)

Handler = Callable[["HttpApi", Runtime, Request], Awaitable[Response]]
Route = Callable[["HttpApi", Request], Awaitable[Response]]
HANDLER_METHODS: dict[str, tuple[str, ...]] = {}
"""Each handler's methods, by its name: the OpenAPI document checks its operations against these."""


def handler(*methods: str, anonymous: bool = False) -> Callable[[Handler], Route]:
    """A route's handler: 405 for other methods, the runtime passed in, every exception as problem+json.

    An `anonymous` route (no function key) never says which setting is wrong: that is logged instead.
    """

    def decorate(fn: Handler) -> Route:
        HANDLER_METHODS[fn.__name__] = methods

        @functools.wraps(fn)
        async def route(api: HttpApi, request: Request) -> Response:
            if request.method not in methods:
                return method_not_allowed(request, methods)
            with telemetry.request_span(request.method, request.url.path, request.path_params, request.headers) as span:
                try:
                    response = await fn(api, await api.runtime.get(), request)
                except Exception as exc:
                    if isinstance(exc, ConfigurationError) and anonymous:
                        logger.error("the app is not configured: %s", exc)
                        error = HttpError(503, "Service Unavailable", "the app is not configured; see its logs")
                        response = error.response()
                    else:
                        response = to_http_error(exc).response()
                    telemetry.record_response(span, response.status_code, request.path_params.get("agent"), exc)
                    return response
                telemetry.record_response(span, response.status_code, request.path_params.get("agent"))
                return response

        return route

    return decorate


async def owner(runtime: Runtime, request: Request) -> str:
    """Who the caller is, by the app's auth mode (service/auth.py); 401 / 503 before anything else is done."""
    return (await runtime.auth.authenticate(request.headers)).owner


def agent_spec(runtime: Runtime, request: Request) -> AgentSpec:
    spec = runtime.agents.get(request.path_params.get("agent", ""))
    if spec is None:
        raise not_found("agent")
    return spec


def session_id(request: Request) -> str:
    return str(request.path_params.get("session_id", ""))


def replay_headers(result: TurnResult) -> dict[str, str]:
    """`Idempotent-Replayed: true` on the stored reply of a repeated Idempotency-Key (as Stripe's API says it)."""
    return {"Idempotent-Replayed": "true"} if result.replayed else {}


class HttpApi:
    """The routes' handlers, sharing one lazily built runtime per process."""

    def __init__(self, agents: dict[str, AgentSpec], settings: AppSettings | None = None) -> None:
        self.runtime = RuntimeHolder(agents, settings)  # settings None: the process environment, on first use
        self._background: set[asyncio.Task[None]] = set()
        self.routes: Callable[[], Sequence[str]] = tuple
        """The app's HTTP route templates (set by the app, service/app.py): what the OpenAPI document describes."""
        self._openapi: bytes | None = None

    # agents/{agent}/sessions
    @handler("GET", "POST")
    async def sessions(self, runtime: Runtime, request: Request) -> Response:
        caller = await owner(runtime, request)
        spec = agent_spec(runtime, request)
        catalog = SessionCatalog(runtime.store.table)
        if request.method == "GET":
            query = parse_query(SessionListQuery, request)
            page, next_cursor = await catalog.page(caller, spec.name, limit=query.limit, after=query.cursor)
            return session_page(page, next_cursor).response()
        data = await read_json(request, runtime.settings.limits.max_request_bytes, required=False)
        body = parse(CreateSessionBody, data)
        if body.service_session_id:
            allow_unbound = runtime.settings.attach_unbound_conversations
            await check_attachable(runtime.client, body.service_session_id, caller, allow_unbound=allow_unbound)
        stored = await runtime.store.create(
            owner=caller,
            agent=spec.name,
            session_id=body.session_id or new_session_id(),
            history=body.history_mode,
            service_session_id=body.service_session_id,
            state=body.state,
        )
        listed = await self._list_new(runtime, catalog, stored, body.title, body.metadata)
        location = f"{request.url.path.rstrip('/')}/{stored.session_id}"
        return session_reply(listed).response(201, {"Location": location})

    async def _list_new(
        self,
        runtime: Runtime,
        catalog: SessionCatalog,
        stored: StoredSession,
        title: str | None,
        metadata: Mapping[str, str],
    ) -> Listed:
        """Put a new session (created or forked) in its owner's list; one that cannot be listed is deleted."""
        try:
            await catalog.add(stored, title, metadata)
        except Exception:
            if await runtime.store.delete_header(stored):
                await self._finish_delete(runtime, stored)
            raise
        if (metrics := telemetry.metrics()) is not None:
            metrics.session_created()
        return Listed(stored, title, dict(metadata))

    # agents/{agent}/sessions/{session_id}
    @handler("GET", "PATCH", "DELETE")
    async def session(self, runtime: Runtime, request: Request) -> Response:
        caller = await owner(runtime, request)
        spec = agent_spec(runtime, request)
        catalog = SessionCatalog(runtime.store.table)
        if request.method == "PATCH":
            data = await read_json(request, runtime.settings.limits.max_request_bytes, required=True)
            body = parse(UpdateSessionBody, data)
        stored = await runtime.store.load(
            caller, spec.name, session_id(request), with_history=False, any_layout=request.method == "DELETE"
        )
        if request.method == "GET":
            return session_detail(await catalog.details(stored)).response()
        if request.method == "PATCH":
            updated = await catalog.update(
                stored, title=body.title, metadata=body.new_metadata, set_title="title" in body.model_fields_set
            )
            return session_reply(updated).response()
        if not await runtime.store.delete_header(stored):
            raise SessionConflictError("the session changed while being deleted; nothing was deleted")
        try:
            await catalog.remove(stored)
        except StoreError as exc:  # the list drops rows whose session is gone, so this only costs a later read
            logger.warning("could not unlist deleted session %s: %s", stored.session_id, exc)
        if (metrics := telemetry.metrics()) is not None:
            metrics.session_deleted()
        await self._finish_delete(runtime, stored)
        return Response(status_code=204)

    @staticmethod
    async def _finish_delete(runtime: Runtime, stored: StoredSession) -> None:
        """After the header is gone the session is gone: its rows and service conversation go too, and what
        fails is recorded for the sweep (an index row due now) instead of failing the DELETE."""
        conversation = None
        if runtime.settings.delete_service_conversations and stored.owns_conversation and stored.service_session_id:
            conversation = stored.service_session_id
        try:
            await runtime.store.delete_rows(stored.pk, stored.inc)
            if conversation is not None:
                await runtime.client.delete_conversation(conversation)
            return
        except Exception as exc:
            logger.warning("delete of %s left work for the sweep: %s", stored.session_id, exc)
        try:
            await runtime.store.schedule_cleanup(stored, conversation=conversation, now=datetime.now(UTC))
        except StoreError as exc:  # the index row at the session's deadline still brings the sweep here
            logger.warning("could not schedule the cleanup of %s: %s", stored.session_id, exc)

    # agents/{agent}/sessions/{session_id}/messages
    @handler("GET", "POST")
    async def messages(self, runtime: Runtime, request: Request) -> Response:
        caller = await owner(runtime, request)
        spec = agent_spec(runtime, request)
        if request.method == "GET":
            query = parse_query(HistoryQuery, request)
            stored = await runtime.store.load(caller, spec.name, session_id(request), with_history=False)
            try:
                position = decode_cursor(stored, query.cursor, query.order) if query.cursor else None
            except ValueError as exc:
                raise bad_request(str(exc)) from None
            page = await runtime.store.read_page(stored, query.order, position, query.limit)
            return history_page(stored, page, query.order).response()
        limits = runtime.settings.limits
        data = await read_json(request, limits.max_request_bytes, required=True)
        body = parse(TurnBody, data)
        key = idempotency_key(request)
        stream = body.stream or wants_event_stream(request.headers.get("accept"))
        turn_request = TurnRequest(
            owner=caller,
            session_id=session_id(request),
            messages=body.to_messages(limits),
            options=body.options.to_options(),
            stream=stream,
            if_busy=body.if_busy or runtime.settings.if_busy,
            idempotency_key=key,
            fingerprint=fingerprint(data) if key is not None else "",
        )
        if stream:
            return await stream_response(turn(runtime, spec, turn_request), self._background)
        result = await run_turn(runtime, spec, turn_request)
        return turn_reply(result).response(headers=replay_headers(result))

    # agents/{agent}/sessions/{session_id}/fork
    @handler("POST")
    async def fork(self, runtime: Runtime, request: Request) -> Response:
        caller = await owner(runtime, request)
        spec = agent_spec(runtime, request)
        data = await read_json(request, runtime.settings.limits.max_request_bytes, required=False)
        body = parse(ForkBody, data)
        new_id = body.session_id or new_session_id()
        source_id = session_id(request)
        forked = await branching.fork(runtime.store, caller, spec.name, source_id, turn=body.turn, new_id=new_id)
        catalog = SessionCatalog(runtime.store.table)
        details = await catalog.details(forked.source)
        title = body.title if "title" in body.model_fields_set else details.title
        metadata = details.metadata if body.metadata is None else body.metadata
        listed = await self._list_new(runtime, catalog, forked.session, title, metadata)
        location = f"{request.url.path.rstrip('/').rsplit('/', 2)[0]}/{forked.session.session_id}"
        reply = ForkReply(**dict(session_reply(listed)), forked_from=ForkedFrom(session_id=source_id, turn=forked.turn))
        return reply.response(201, {"Location": location})

    # agents/{agent}/sessions/{session_id}/rewind
    @handler("POST")
    async def rewind(self, runtime: Runtime, request: Request) -> Response:
        caller = await owner(runtime, request)
        spec = agent_spec(runtime, request)
        data = await read_json(request, runtime.settings.limits.max_request_bytes, required=True)
        body = parse(RewindBody, data)
        rewound, dropped = await branching.rewind(runtime.store, caller, spec.name, session_id(request), body.turn)
        catalog = SessionCatalog(runtime.store.table)
        if dropped and body.turn == 0:
            await catalog.forget_first_message(rewound)
        detail = session_detail(await catalog.details(rewound))
        return RewindReply(**dict(detail), dropped_turns=dropped).response()

    # health
    @handler("GET", anonymous=True)
    async def health(self, runtime: Runtime, request: Request) -> Response:
        try:
            await runtime.store.ping()
        except StoreError as exc:
            logger.warning("health: storage unreachable: %s", exc)
            raise HttpError(503, "Service Unavailable", "session storage is unreachable", retry_after=5) from None
        return Health(
            status="ok", model=runtime.model_kind, agents=sorted(runtime.agents), time=datetime.now(UTC)
        ).response()

    # agents
    @handler("GET")
    async def agents(self, runtime: Runtime, request: Request) -> Response:
        await owner(runtime, request)  # a user route: the caller's credentials are checked like everywhere else
        return agent_list(runtime.agents).response()

    # openapi.json
    @handler("GET", anonymous=True)
    async def openapi(self, runtime: Runtime, request: Request) -> Response:
        """The OpenAPI document of this app, built once (it depends on the routes, agents and limits only)."""
        if self._openapi is None:
            routes, agents = self.routes(), sorted(self.runtime.agents)
            document = openapi_document(routes, HANDLER_METHODS, agents, runtime.settings.limits)
            self._openapi = json.dumps(document, separators=(",", ":")).encode()
        return Response(self._openapi, media_type="application/json")

    # playground
    @handler("GET")
    async def playground(self, runtime: Runtime, request: Request) -> Response:
        auth = runtime.auth.config
        if auth.in_azure:
            if not runtime.settings.playground_enabled:
                detail = "the playground is off in Azure; AGENT_PLAYGROUND_ENABLED turns it on"
                raise HttpError(404, "Not Found", detail)
            auth.effective_mode()  # never without a chosen auth mode: 503 naming AGENT_AUTH_MODE
        return playground_response()

    # timer
    async def sweep(self) -> SweepResult:
        runtime = await self.runtime.get()
        with telemetry.operation_span("expiry.sweep") as span:
            started = time.perf_counter()
            result = await sweep(
                runtime.store, client=runtime.client, delete_conversations=runtime.settings.delete_service_conversations
            )
            telemetry.record_sweep(span, result, time.perf_counter() - started)
        return result

    async def close(self) -> None:
        """Finish background turns, then close the runtime's clients (dev server shutdown, tests)."""
        await self.drain()
        await self.runtime.close()

    async def drain(self) -> None:
        """Wait for streamed turns still running in the background (shutdown, tests)."""
        if self._background:
            await asyncio.gather(*self._background, return_exceptions=True)
