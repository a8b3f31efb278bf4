"""The HTTP API: parses and validates requests, runs them against the runtime, answers JSON, SSE or problem+json.

Handlers take and return Starlette (FastAPI) objects, the types the Azure Functions HTTP streaming
extension passes in and expects back; `function_app.py` only routes to them.
"""

from __future__ import annotations

import asyncio
import json
import logging
import math
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import UTC, datetime
from typing import Any, Literal, TypeVar

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse

from agent_core.agents import AgentResponse, AgentResponseUpdate
from agent_core.exceptions import (
    AgentInputError,
    ApprovalError,
    ConfigurationError,
    ModelAuthenticationError,
    ModelBadRequestError,
    ModelError,
    ModelRateLimitError,
    ModelTimeoutError,
    SessionSerializationError,
)
from agent_core.messages import Content, Message
from agent_core.sessions import encode_value, new_session_id

from .expiry import SweepResult, sweep
from .runtime import AgentSpec, Runtime, RuntimeHolder
from .storage import (
    SESSION_ID_PATTERN,
    SessionConflictError,
    SessionExistsError,
    SessionNotFoundError,
    StorageUnavailableError,
    TurnTooLargeError,
    decode_cursor,
    encode_cursor,
)
from .turns import Turn, TurnResult

logger = logging.getLogger(__name__)

PRINCIPAL_HEADER = "x-ms-client-principal-id"
ANONYMOUS = "anonymous"
CLIENT_OPTIONS = frozenset(
    {"temperature", "top_p", "max_output_tokens", "parallel_tool_calls", "reasoning", "text", "truncation"}
)


# --- errors ------------------------------------------------------------------------------------------


class HttpError(Exception):
    """An error answered as application/problem+json."""

    def __init__(self, status: int, title: str, detail: str, *, retry_after: float | None = None, **extra: Any) -> None:
        super().__init__(detail)
        self.status, self.title, self.detail, self.retry_after, self.extra = status, title, detail, retry_after, extra

    def body(self) -> dict[str, Any]:
        return {"type": "about:blank", "title": self.title, "status": self.status, "detail": self.detail, **self.extra}

    def response(self, headers: dict[str, str] | None = None) -> Response:
        headers = dict(headers or {})
        if self.retry_after is not None:
            headers["Retry-After"] = str(max(1, math.ceil(self.retry_after)))
        return JSONResponse(
            self.body(), status_code=self.status, headers=headers, media_type="application/problem+json"
        )


def to_http_error(exc: Exception) -> HttpError:
    """The problem for an exception: client mistakes are 4xx, upstream trouble 5xx, never a stack trace."""
    match exc:
        case HttpError():
            return exc
        case SessionNotFoundError():
            return HttpError(404, "Not Found", "no such session")
        case SessionExistsError():
            return HttpError(409, "Conflict", str(exc))
        case SessionConflictError():
            return HttpError(409, "Conflict", f"{exc}; retry the turn")
        case ApprovalError():
            return HttpError(409, "Conflict", str(exc), pending_approvals=exc.pending_ids)
        case TurnTooLargeError():
            return HttpError(413, "Content Too Large", str(exc))
        case SessionSerializationError() | AgentInputError():
            return HttpError(400, "Bad Request", str(exc))
        case StorageUnavailableError():
            return HttpError(
                503, "Service Unavailable", "session storage is busy or unavailable", retry_after=exc.retry_after
            )
        case ModelRateLimitError():
            status = 429 if exc.status_code == 429 else 503
            title = "Too Many Requests" if status == 429 else "Service Unavailable"
            return HttpError(
                status, title, "the model service is throttling requests", retry_after=exc.retry_after or 1
            )
        case ModelTimeoutError():
            return HttpError(504, "Gateway Timeout", "the model did not answer in time")
        case ModelBadRequestError():
            return HttpError(400, "Bad Request", f"the model service rejected the request: {exc}")
        case ModelAuthenticationError():
            return HttpError(502, "Bad Gateway", "the app could not authenticate to the model service")
        case ModelError():
            return HttpError(502, "Bad Gateway", "the model service failed")
        case ConfigurationError():
            return HttpError(503, "Service Unavailable", f"the app is not configured: {exc}")
    logger.exception("unhandled error", exc_info=exc)
    return HttpError(500, "Internal Server Error", "unexpected error; see the app's logs")


def method_not_allowed(request: Request, allowed: list[str]) -> Response:
    detail = f"{request.method} is not allowed here; use {', '.join(allowed)}"
    return HttpError(405, "Method Not Allowed", detail).response({"Allow": ", ".join(allowed)})


# --- request bodies ----------------------------------------------------------------------------------


class _Body(BaseModel):
    model_config = ConfigDict(extra="forbid")


class CreateSessionBody(_Body):
    session_id: str | None = Field(default=None, pattern=SESSION_ID_PATTERN.pattern)
    history: Literal["local", "service"] = "local"
    service_session_id: str | None = Field(default=None, pattern=r"^[A-Za-z0-9_-]{1,256}$")
    state: dict[str, Any] = Field(default_factory=dict)


class InputMessage(_Body):
    role: Literal["user", "assistant"] = "user"
    text: str


class ApprovalDecision(_Body):
    id: str = Field(min_length=1, max_length=256)
    approved: bool


class TurnBody(_Body):
    message: str | None = None
    messages: list[InputMessage] | None = None
    approvals: list[ApprovalDecision] = Field(default_factory=list)
    options: dict[str, Any] = Field(default_factory=dict)
    stream: bool = False

    @field_validator("options")
    @classmethod
    def _known_options(cls, options: dict[str, Any]) -> dict[str, Any]:
        unknown = sorted(set(options) - CLIENT_OPTIONS)
        if unknown:
            raise ValueError(f"unsupported options {unknown}; allowed: {sorted(CLIENT_OPTIONS)}")
        return options


def _validation_error(exc: ValidationError) -> HttpError:
    errors = [
        {"field": ".".join(str(p) for p in e["loc"]) or "body", "message": e["msg"]}
        for e in exc.errors(include_url=False)
    ]
    return HttpError(400, "Bad Request", "the request body is not valid", errors=errors)


async def _json_body(request: Request, max_bytes: int, *, required: bool) -> dict[str, Any]:
    declared = request.headers.get("content-length")
    if declared and declared.isdigit() and int(declared) > max_bytes:
        raise HttpError(413, "Content Too Large", f"the request body is over {max_bytes} bytes")
    raw = b""
    async for chunk in request.stream():
        raw += chunk
        if len(raw) > max_bytes:
            raise HttpError(413, "Content Too Large", f"the request body is over {max_bytes} bytes")
    if not raw.strip():
        if required:
            raise HttpError(400, "Bad Request", "a JSON body is required")
        return {}
    content_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if content_type != "application/json" and not content_type.endswith("+json"):
        raise HttpError(415, "Unsupported Media Type", "send the body as application/json")
    try:
        data = json.loads(raw)
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise HttpError(400, "Bad Request", f"malformed JSON: {exc}") from None
    if not isinstance(data, dict):
        raise HttpError(400, "Bad Request", "the JSON body must be an object")
    return data


BodyT = TypeVar("BodyT", bound=BaseModel)


def _parse(model: type[BodyT], data: dict[str, Any]) -> BodyT:
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        raise _validation_error(exc) from None


# --- responses ---------------------------------------------------------------------------------------


def turn_payload(result: TurnResult) -> dict[str, Any]:
    """The JSON reply to a turn (also the `done` event of a streamed turn)."""
    response, stored = result.response, result.session
    return {
        "session_id": stored.session_id,
        "agent": stored.agent,
        "turn": stored.turns,
        "text": response.text,
        "messages": [m.model_dump(mode="json", exclude_defaults=True) for m in response.messages],
        "usage": response.usage.model_dump(),
        "response_id": response.response_id,
        "service_session_id": stored.service_session_id,
        "approval_requests": _approvals(response),
        "expires_at": stored.expires_at.isoformat(),
    }


def _approvals(response: AgentResponse) -> list[dict[str, Any]]:
    return [{"id": r.id, "name": r.name, "arguments": r.arguments} for r in response.approval_requests]


def _sse(event: str, data: dict[str, Any]) -> bytes:
    return f"event: {event}\ndata: {json.dumps(data, separators=(',', ':'))}\n\n".encode()


def _update_events(update: AgentResponseUpdate) -> list[bytes]:
    events: list[bytes] = []
    if update.text:
        events.append(_sse("delta", {"text": update.text}))
    for c in update.contents:
        if c.type == "function_call":
            events.append(_sse("tool_call", {"call_id": c.call_id, "name": c.name, "arguments": c.arguments}))
        elif c.type == "function_result":
            events.append(_sse("tool_result", {"call_id": c.call_id, "name": c.name, "result": c.result}))
        elif c.type == "function_approval_request":
            events.append(_sse("approval_request", {"id": c.id, "name": c.name, "arguments": c.arguments}))
    return events


# --- the API -----------------------------------------------------------------------------------------


class HttpApi:
    """The handlers behind function_app.py's routes, sharing one lazily built runtime per process."""

    def __init__(self, agents: dict[str, AgentSpec]) -> None:
        self.runtime = RuntimeHolder(agents)
        self._background: set[asyncio.Task[None]] = set()

    async def _guard(self, handler: Callable[[Runtime], Awaitable[Response]]) -> Response:
        try:
            return await handler(await self.runtime.get())
        except Exception as exc:
            return to_http_error(exc).response()

    @staticmethod
    def _owner(request: Request) -> str:
        return request.headers.get(PRINCIPAL_HEADER) or ANONYMOUS

    @staticmethod
    def _spec(runtime: Runtime, request: Request) -> AgentSpec:
        spec = runtime.agents.get(request.path_params.get("agent", ""))
        if spec is None:
            raise HttpError(404, "Not Found", "no such agent")
        return spec

    @staticmethod
    def _session_id(request: Request) -> str:
        session_id = str(request.path_params.get("session_id", ""))
        if not SESSION_ID_PATTERN.fullmatch(session_id):
            raise HttpError(404, "Not Found", "no such session")
        return session_id

    # POST agents/{agent}/sessions
    async def sessions(self, request: Request) -> Response:
        if request.method != "POST":
            return method_not_allowed(request, ["POST"])

        async def create(runtime: Runtime) -> Response:
            spec = self._spec(runtime, request)
            body = _parse(
                CreateSessionBody, await _json_body(request, runtime.settings.limits.max_request_bytes, required=False)
            )
            history = "service" if body.service_session_id else body.history
            stored = await runtime.store.create(
                owner=self._owner(request),
                agent=spec.name,
                session_id=body.session_id or new_session_id(),
                history=history,
                service_session_id=body.service_session_id,
                state=body.state,
                ttl_seconds=runtime.settings.session_ttl_seconds,
                max_state_bytes=runtime.settings.limits.max_state_bytes,
            )
            location = f"{request.url.path.rstrip('/')}/{stored.session_id}"
            return JSONResponse(stored.metadata(), status_code=201, headers={"Location": location})

        return await self._guard(create)

    # GET / DELETE agents/{agent}/sessions/{session_id}
    async def session(self, request: Request) -> Response:
        if request.method not in ("GET", "DELETE"):
            return method_not_allowed(request, ["GET", "DELETE"])

        async def handle(runtime: Runtime) -> Response:
            spec = self._spec(runtime, request)
            session_id = self._session_id(request)
            if request.method == "GET":
                stored = await runtime.store.load(self._owner(request), spec.name, session_id, with_history=False)
                return JSONResponse({**stored.metadata(), "state": encode_value(stored.state)})
            stored = await runtime.store.load(self._owner(request), spec.name, session_id, with_history=False)
            if not await runtime.store.delete(stored):
                raise SessionConflictError("the session changed while being deleted")
            if runtime.settings.delete_service_conversations and stored.owns_conversation and stored.service_session_id:
                await runtime.client.delete_conversation(stored.service_session_id)
            return Response(status_code=204)

        return await self._guard(handle)

    # POST / GET agents/{agent}/sessions/{session_id}/messages
    async def messages(self, request: Request) -> Response:
        if request.method == "GET":
            return await self._guard(lambda runtime: self._history(runtime, request))
        if request.method == "POST":
            return await self._guard(lambda runtime: self._turn(runtime, request))
        return method_not_allowed(request, ["GET", "POST"])

    async def _history(self, runtime: Runtime, request: Request) -> Response:
        spec = self._spec(runtime, request)
        session_id = self._session_id(request)
        try:
            limit = int(request.query_params.get("limit", "50"))
            after = decode_cursor(request.query_params["cursor"]) if "cursor" in request.query_params else 0
        except ValueError:
            raise HttpError(400, "Bad Request", "limit must be a number and cursor one returned by this API") from None
        if not 1 <= limit <= 200:
            raise HttpError(400, "Bad Request", "limit must be between 1 and 200")
        _, page, next_after = await runtime.store.list_messages(
            self._owner(request), spec.name, session_id, after=after, limit=limit
        )
        return JSONResponse(
            {
                "messages": [m.model_dump(mode="json", exclude_defaults=True) for m in page],
                "next_cursor": encode_cursor(next_after) if next_after is not None else None,
            }
        )

    def _turn_input(self, runtime: Runtime, body: TurnBody) -> list[Message]:
        limits = runtime.settings.limits
        if body.message is not None and body.messages is not None:
            raise HttpError(400, "Bad Request", "send either 'message' or 'messages', not both")
        inputs = [InputMessage(text=body.message)] if body.message is not None else list(body.messages or [])
        if not inputs and not body.approvals:
            raise HttpError(400, "Bad Request", "send 'message', 'messages' or 'approvals'")
        if len(inputs) > limits.max_messages_per_turn:
            raise HttpError(413, "Content Too Large", f"at most {limits.max_messages_per_turn} messages per turn")
        for item in inputs:
            if len(item.text) > limits.max_message_chars:
                raise HttpError(413, "Content Too Large", f"a message is over {limits.max_message_chars} characters")
        messages = [Message(role=item.role, text=item.text) for item in inputs]
        if body.approvals:
            decisions = [Content.from_function_approval_response(d.id, d.approved) for d in body.approvals]
            messages.append(Message(role="user", contents=decisions))
        return messages

    async def _turn(self, runtime: Runtime, request: Request) -> Response:
        spec = self._spec(runtime, request)
        session_id = self._session_id(request)
        body = _parse(TurnBody, await _json_body(request, runtime.settings.limits.max_request_bytes, required=True))
        messages = self._turn_input(runtime, body)
        stored = await runtime.store.load(self._owner(request), spec.name, session_id)
        turn = Turn(runtime, spec, stored)
        if body.stream or "text/event-stream" in request.headers.get("accept", ""):
            return await self._stream(turn, messages, body.options)
        return JSONResponse(turn_payload(await turn.run(messages, body.options)))

    async def _stream(self, turn: Turn, messages: list[Message], options: dict[str, Any]) -> Response:
        """SSE. The turn runs in its own task, so a client that disconnects still gets its turn committed.

        The response starts with the turn's first event: a turn that fails before producing anything
        (throttled, bad request) gets its real status as problem+json instead of a 200 with an error event.
        """
        queue: asyncio.Queue[bytes | Exception | None] = asyncio.Queue()

        async def produce() -> None:
            try:
                async for event in turn.stream(messages, options):
                    if event.update is not None:
                        for chunk in _update_events(event.update):
                            queue.put_nowait(chunk)
                    elif event.result is not None:
                        queue.put_nowait(_sse("done", turn_payload(event.result)))
            except Exception as exc:
                queue.put_nowait(exc)
            finally:
                queue.put_nowait(None)

        task = asyncio.create_task(produce())
        self._background.add(task)
        task.add_done_callback(self._background.discard)
        first = await queue.get()
        if isinstance(first, Exception):
            return to_http_error(first).response()

        async def events() -> AsyncIterator[bytes]:
            item: bytes | Exception | None = first
            while item is not None:
                yield _sse("error", to_http_error(item).body()) if isinstance(item, Exception) else item
                item = await queue.get()

        headers = {"Cache-Control": "no-cache", "X-Accel-Buffering": "no"}
        return StreamingResponse(events(), media_type="text/event-stream", headers=headers)

    # GET health
    async def health(self, request: Request) -> Response:
        if request.method != "GET":
            return method_not_allowed(request, ["GET"])

        async def check(runtime: Runtime) -> Response:
            return JSONResponse(
                {
                    "status": "ok",
                    "model": runtime.model_kind,
                    "agents": sorted(runtime.agents),
                    "time": datetime.now(UTC).isoformat(),
                }
            )

        return await self._guard(check)

    # timer
    async def sweep(self) -> SweepResult:
        runtime = await self.runtime.get()
        return await sweep(
            runtime.store, client=runtime.client, delete_conversations=runtime.settings.delete_service_conversations
        )

    async def close(self) -> None:
        """Finish background turns, then close the runtime's clients (dev server shutdown, tests)."""
        await self.drain()
        await self.runtime.close()

    async def drain(self) -> None:
        """Wait for streamed turns still running in the background (shutdown, tests)."""
        if self._background:
            await asyncio.gather(*self._background, return_exceptions=True)
