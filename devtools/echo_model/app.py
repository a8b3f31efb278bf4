"""The echo model's ASGI app (Starlette): POST .../responses (JSON or SSE); POST, GET and DELETE .../conversations.

Routes match under any base path (`/v1`, Azure's `/openai/v1`, Foundry's `/api/projects/<p>/openai/v1`).
Every request is recorded before it is answered; faults queued by a test apply to the next responses calls.
"""

from __future__ import annotations

import asyncio
import json
import threading
import time
from collections import deque
from collections.abc import Awaitable, Callable, Mapping, MutableMapping
from dataclasses import dataclass, field
from typing import Any, TypeVar

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route

from .errors import JSON, ApiError
from .events import response_events, sse
from .items import estimate_tokens, item_text, new_id, normalise_input, normalise_item, words
from .reasoning import ReasoningSeal
from .replies import reply
from .window import fit_window

_T = TypeVar("_T")
Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
_BODY = "echo_model.body"  # scope key: the parsed JSON body (or the ApiError that parsing it raised)


@dataclass
class RecordedRequest:
    """One HTTP request as the echo model received it (`body` is None unless it was a JSON object)."""

    method: str
    path: str
    headers: dict[str, str]
    body: JSON | None


@dataclass
class _Failure:
    status: int
    headers: dict[str, str]
    body: JSON | str


@dataclass
class _StoredResponse:
    context: list[JSON]
    output: list[JSON]


@dataclass
class _Conversation:
    id: str
    created_at: int
    metadata: JSON
    items: list[JSON] = field(default_factory=list)

    def resource(self) -> JSON:
        return {"id": self.id, "object": "conversation", "created_at": self.created_at, "metadata": self.metadata}


class EchoModel:
    """Deterministic echo model speaking the OpenAI Responses + Conversations APIs as an ASGI app.

    `context_window`: the most estimated tokens (whitespace-separated words, see `items`) one request may
    send, or None for no limit; settable at any time, restored by `reset()`.
    """

    def __init__(self, *, label: str = "", context_window: int | None = None) -> None:
        self.label = label
        self.default_context_window = self.context_window = context_window
        self.requests: list[RecordedRequest] = []
        self._seal = ReasoningSeal()
        self._responses: dict[str, _StoredResponse] = {}
        self._conversations: dict[str, _Conversation] = {}
        # faults are queued from the test's thread and consumed on the server's event loop
        self._lock = threading.Lock()
        self._failures: deque[_Failure] = deque()
        self._stalls: deque[float] = deque()
        self._stream_breaks: deque[int] = deque()
        self._stream_paces: deque[float] = deque()
        self._app = Starlette(
            routes=[
                Route("/{base:path}/responses", self._create_response, methods=["POST"]),
                Route("/{base:path}/conversations", self._create_conversation, methods=["POST"]),
                Route("/{base:path}/conversations/{id}", self._conversation_route, methods=["GET", "DELETE"]),
            ],
            exception_handlers={ApiError: _api_error, HTTPException: _http_error},
        )

    # --- test controls ----------------------------------------------------------------------------

    @property
    def model_calls(self) -> int:
        """How many POST .../responses requests arrived (answered, failed, stalled or refused alike)."""
        return sum(1 for r in self.requests if _is_responses_call(r))

    def responses_requests(self) -> list[JSON]:
        """Bodies of the POST .../responses requests, in order (those with a JSON object body)."""
        return [r.body for r in self.requests if _is_responses_call(r) and r.body is not None]

    def fail_next(
        self,
        status: int,
        *,
        count: int = 1,
        retry_after: float | str | None = None,
        message: str = "injected failure",
        code: str | None = None,
        headers: Mapping[str, str] | None = None,
        body: JSON | str | None = None,
    ) -> None:
        """Answer the next `count` POST .../responses with this status instead of a reply.

        The body is the OpenAI error JSON for `message`/`code` unless `body` is given (a dict is sent as JSON,
        a string as text). `retry_after` is sent as the Retry-After header: seconds, or any string as is
        (an HTTP date, or junk such as "soon"); `headers` adds any others.
        """
        extra = dict(headers or {})
        if retry_after is not None:
            extra["retry-after"] = retry_after if isinstance(retry_after, str) else f"{retry_after:g}"
        payload = body if body is not None else ApiError(status, message, code=code).body()
        with self._lock:
            self._failures.extend(_Failure(status, extra, payload) for _ in range(count))

    def stall_next(self, seconds: float, *, count: int = 1) -> None:
        """Sleep `seconds` before answering each of the next `count` POST .../responses."""
        with self._lock:
            self._stalls.extend(seconds for _ in range(count))

    def break_stream_next(self, *, after_deltas: int = 1) -> None:
        """Make the next streamed response fail with `response.failed` after `after_deltas` delta events."""
        with self._lock:
            self._stream_breaks.append(after_deltas)

    def pace_next_stream(self, seconds_per_event: float) -> None:
        """Make the next streamed response wait this long between events (a slow model, for disconnect tests)."""
        with self._lock:
            self._stream_paces.append(seconds_per_event)

    def seed_response(self, response_id: str, user_messages: list[str] | None = None) -> None:
        """Store a response under a chosen id (with these earlier user messages) for `previous_response_id`."""
        context = [normalise_item({"role": "user", "content": text}) for text in user_messages or []]
        with self._lock:
            self._responses[response_id] = _StoredResponse(context, [])

    def reset(self) -> None:
        """Forget requests, stored responses, conversations and queued faults; restore the context window."""
        with self._lock:
            self.context_window = self.default_context_window
            self.requests.clear()
            self._responses.clear()
            self._conversations.clear()
            self._failures.clear()
            self._stalls.clear()
            self._stream_breaks.clear()
            self._stream_paces.clear()

    def _pop(self, queue: deque[_T]) -> _T | None:
        with self._lock:
            return queue.popleft() if queue else None

    # --- ASGI entry point: record, then route -----------------------------------------------------

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self._app(scope, receive, send)
            return
        raw = await _read_body(receive)
        if raw is None:
            return  # the client went away before sending the whole body
        headers: dict[str, str] = {}
        for raw_name, raw_value in scope.get("headers", []):
            name, value = raw_name.decode("latin-1").lower(), raw_value.decode("latin-1")
            headers[name] = f"{headers[name]}, {value}" if name in headers else value
        recorded = RecordedRequest(scope["method"], scope["path"], headers, None)
        self.requests.append(recorded)
        scope[_BODY] = _parse_body(raw)
        if raw and isinstance(scope[_BODY], dict):
            recorded.body = scope[_BODY]
        await self._app(scope, _replay(raw, receive), send)

    # --- POST .../conversations, GET and DELETE .../conversations/{id} ----------------------------

    async def _create_conversation(self, request: Request) -> Response:
        body = _body(request)
        conversation = _Conversation(new_id("conv"), int(time.time()), body.get("metadata") or {})
        conversation.items.extend(normalise_input(body.get("items") or [], "items"))
        self._conversations[conversation.id] = conversation
        return _json(200, conversation.resource())

    async def _conversation_route(self, request: Request) -> Response:
        conversation = self._conversation(request.path_params["id"])
        if request.method == "GET":
            return _json(200, conversation.resource())
        del self._conversations[conversation.id]
        return _json(200, {"id": conversation.id, "object": "conversation.deleted", "deleted": True})

    def _conversation(self, conversation_id: str) -> _Conversation:
        conversation = self._conversations.get(conversation_id)
        if conversation is None:
            raise ApiError(404, f"Conversation with id '{conversation_id}' not found.", param="conversation_id")
        return conversation

    # --- POST .../responses -----------------------------------------------------------------------

    async def _create_response(self, request: Request) -> Response:
        stall = self._pop(self._stalls)
        if stall is not None and not await _sleep_unless_disconnected(request.receive, stall):
            return Response(status_code=499)  # nobody is listening any more
        failure = self._pop(self._failures)
        if failure is not None:
            if isinstance(failure.body, str):
                headers = {"content-type": "text/plain; charset=utf-8", **failure.headers}
                return Response(failure.body, failure.status, headers={"x-request-id": new_id("req"), **headers})
            return _json(failure.status, failure.body, failure.headers)

        body = _body(request)
        for required in ("model", "input"):
            if required not in body:
                raise ApiError(400, f"Missing required parameter: '{required}'.", param=required)
        previous_id, conversation_ref = body.get("previous_response_id"), body.get("conversation")
        if previous_id and conversation_ref:
            raise ApiError(400, "Use either 'previous_response_id' or 'conversation', not both.", param="conversation")
        tools = body.get("tools") or []
        if not isinstance(tools, list) or not all(isinstance(tool, dict) for tool in tools):
            raise ApiError(400, "'tools' must be a list of tool objects.", param="tools")
        new_items = normalise_input(body["input"])

        conversation: _Conversation | None = None
        if previous_id:
            previous = self._responses.get(previous_id)
            if previous is None:
                message = f"Previous response with id '{previous_id}' not found."
                raise ApiError(400, message, param="previous_response_id", code="previous_response_not_found")
            context = previous.context + previous.output + new_items
        elif conversation_ref:
            conversation_id = conversation_ref.get("id") if isinstance(conversation_ref, dict) else conversation_ref
            conversation = self._conversation(str(conversation_id))
            context = conversation.items + new_items
        else:
            context = list(new_items)

        instructions = body.get("instructions") if isinstance(body.get("instructions"), str) else None
        seen = fit_window(context, instructions, self.context_window, body.get("truncation"))
        response_id = new_id("resp")
        output = reply(body, seen, label=self.label, seal=self._seal, response_id=response_id)
        response = _response_resource(response_id, body, output, estimate_tokens(seen, instructions))
        if conversation is not None:
            response["conversation"] = {"id": conversation.id}

        def commit() -> None:
            if response["store"]:
                self._responses[response_id] = _StoredResponse(context, output)
            if conversation is not None:
                conversation.items.extend(new_items + output)

        if not body.get("stream"):
            commit()
            return _json(200, response)
        break_after, pace = self._pop(self._stream_breaks), self._pop(self._stream_paces)
        events = response_events(response, break_after=break_after)
        if break_after is None:
            commit()
        return StreamingResponse(
            _paced(events, pace or 0),
            media_type="text/event-stream",
            headers={"cache-control": "no-cache", "x-request-id": new_id("req")},
        )


def _response_resource(response_id: str, body: JSON, output: list[JSON], input_tokens: int) -> JSON:
    output_tokens = sum(words(item_text(item)) for item in output)
    reasoning_tokens = sum(words(item_text(item)) for item in output if item["type"] == "reasoning")
    tool_choice = body.get("tool_choice", "auto")
    text: JSON = body["text"] if isinstance(body.get("text"), dict) else {}
    return {
        "id": response_id,
        "object": "response",
        "created_at": int(time.time()),
        "status": "completed",
        "model": body["model"],
        "output": output,
        "parallel_tool_calls": True,
        "tool_choice": tool_choice if isinstance(tool_choice, str) else "auto",
        "tools": body.get("tools") or [],
        "instructions": body.get("instructions") if isinstance(body.get("instructions"), str) else None,
        "usage": {
            "input_tokens": input_tokens,
            "input_tokens_details": {"cached_tokens": 0},
            "output_tokens": output_tokens,
            "output_tokens_details": {"reasoning_tokens": reasoning_tokens},
            "total_tokens": input_tokens + output_tokens,
        },
        "conversation": None,
        "previous_response_id": body.get("previous_response_id") or None,
        "error": None,
        "incomplete_details": None,
        "metadata": body.get("metadata") or {},
        "reasoning": body.get("reasoning") if isinstance(body.get("reasoning"), dict) else None,
        "text": {"format": text.get("format") or {"type": "text"}},
        "truncation": body.get("truncation") or "disabled",
        "store": body.get("store", True) is not False,
    }


async def _paced(events: list[JSON], pace: float) -> Any:
    for sequence, event in enumerate(events):
        yield sse(event, sequence)
        await asyncio.sleep(pace)


# --- HTTP plumbing --------------------------------------------------------------------------------


def _is_responses_call(request: RecordedRequest) -> bool:
    return request.method == "POST" and request.path.endswith("/responses")


def _json(status: int, payload: JSON, headers: Mapping[str, str] | None = None) -> Response:
    return JSONResponse(payload, status, headers={"x-request-id": new_id("req"), **(headers or {})})


async def _api_error(request: Request, error: Exception) -> Response:
    assert isinstance(error, ApiError)
    return _json(error.status, error.body())


async def _http_error(request: Request, error: Exception) -> Response:
    """Starlette's routing errors (unknown route 404, wrong method 405) with OpenAI-style bodies."""
    assert isinstance(error, HTTPException)
    problem = "Unknown route" if error.status_code == 404 else "Method not allowed"
    message = f"{problem}: {request.method} {request.url.path}"
    return _json(error.status_code, ApiError(error.status_code, message).body(), error.headers)


def _parse_body(raw: bytes) -> JSON | ApiError:
    if not raw:
        return {}
    try:
        body = json.loads(raw)
    except ValueError:
        return ApiError(400, "We could not parse the JSON body of your request.")
    return body if isinstance(body, dict) else ApiError(400, "The request body must be a JSON object.")


def _body(request: Request) -> JSON:
    body: JSON | ApiError = request.scope[_BODY]
    if isinstance(body, ApiError):
        raise body
    return body


async def _read_body(receive: Receive) -> bytes | None:
    chunks: list[bytes] = []
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            return None
        chunks.append(message.get("body", b""))
        if not message.get("more_body", False):
            return b"".join(chunks)


def _replay(raw: bytes, receive: Receive) -> Receive:
    """A `receive` that hands out the already-read body once, then waits on the client (for disconnects)."""
    pending = [{"type": "http.request", "body": raw, "more_body": False}]

    async def replayed() -> Message:
        return pending.pop() if pending else await receive()

    return replayed


async def _sleep_unless_disconnected(receive: Receive, seconds: float) -> bool:
    """Sleep, but stop early (returning False) when the client disconnects, e.g. after its own timeout."""
    deadline = asyncio.get_running_loop().time() + seconds
    while (left := deadline - asyncio.get_running_loop().time()) > 0:
        try:
            message = await asyncio.wait_for(receive(), left)
        except TimeoutError:
            return True
        if message["type"] == "http.disconnect":
            return False
    return True
