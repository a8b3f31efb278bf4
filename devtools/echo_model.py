"""A deterministic "echo" model speaking the OpenAI Responses + Conversations wire format as a plain ASGI app.

Tests point the real openai SDK at it over HTTP; the local dev server uses it as a labelled local model.
"""

from __future__ import annotations

import asyncio
import json
import re
import secrets
import threading
import time
from collections import deque
from collections.abc import Awaitable, Callable, MutableMapping
from dataclasses import dataclass, field
from typing import Any, TypeVar
from urllib.parse import parse_qs

from .serving import ThreadedServer

__all__ = ["EchoModel", "EchoModelServer", "RecordedRequest"]

_T = TypeVar("_T")
JSON = dict[str, Any]
Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]

_ROUTES: list[tuple[str, re.Pattern[str], frozenset[str]]] = [
    ("conversation_items", re.compile(r"/conversations/([^/]+)/items$"), frozenset({"GET", "POST"})),
    ("conversation", re.compile(r"/conversations/([^/]+)$"), frozenset({"GET", "DELETE"})),
    ("conversations", re.compile(r"/conversations$"), frozenset({"POST"})),
    ("response", re.compile(r"/responses/([^/]+)$"), frozenset({"GET", "DELETE"})),
    ("responses", re.compile(r"/responses$"), frozenset({"POST"})),
]
_ERROR_CODES = {401: "invalid_api_key", 404: "not_found", 429: "rate_limit_exceeded"}


@dataclass
class RecordedRequest:
    """One HTTP request as the echo model received it."""

    method: str
    path: str
    headers: dict[str, str]
    body: JSON | None


class ApiError(Exception):
    """An OpenAI-style error answer: HTTP status plus the `error` object."""

    def __init__(self, status: int, message: str, *, param: str | None = None, code: str | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.param = param
        self.code = code or _ERROR_CODES.get(status)

    def body(self) -> JSON:
        status = self.status
        kind = "requests" if status == 429 else "server_error" if status >= 500 else "invalid_request_error"
        return {"error": {"message": self.message, "type": kind, "param": self.param, "code": self.code}}


@dataclass
class _Failure:
    status: int
    retry_after: float | None
    message: str


@dataclass
class _StoredResponse:
    context: list[JSON]
    output: list[JSON]
    response: JSON


@dataclass
class _Conversation:
    id: str
    created_at: int
    metadata: JSON
    items: list[JSON] = field(default_factory=list)

    def resource(self) -> JSON:
        return {
            "id": self.id,
            "object": "conversation",
            "created_at": self.created_at,
            "metadata": self.metadata,
        }


def _new_id(prefix: str) -> str:
    return f"{prefix}_{secrets.token_hex(16)}"


def _words(text: str) -> int:
    return len(text.split())


# --- Input items: normalisation and text extraction -----------------------------------------------


def _normalise_item(item: object) -> JSON:
    """Bring one input item into the canonical stored form (typed, with an id, content as a list of parts)."""
    if not isinstance(item, dict):
        raise ApiError(400, "Each input item must be a JSON object.", param="input")
    item_type = item.get("type", "message" if "role" in item else None)
    if item_type == "message":
        role = item.get("role")
        if role not in ("user", "assistant", "system", "developer"):
            raise ApiError(400, f"Invalid message role: {role!r}.", param="input")
        content = item.get("content")
        if isinstance(content, str):
            part: JSON = {"type": "output_text" if role == "assistant" else "input_text", "text": content}
            if role == "assistant":
                part["annotations"] = []
            parts = [part]
        elif isinstance(content, list):
            parts = [dict(p) for p in content if isinstance(p, dict)]
        else:
            raise ApiError(400, "Message content must be a string or a list of content parts.", param="input")
        return {
            "type": "message",
            "id": item.get("id") or _new_id("msg"),
            "role": role,
            "status": item.get("status") or "completed",
            "content": parts,
        }
    if item_type == "function_call":
        for key in ("call_id", "name", "arguments"):
            if not isinstance(item.get(key), str):
                raise ApiError(400, f"function_call items need a string {key!r}.", param="input")
        return {"id": _new_id("fc"), "status": "completed", **item}
    if item_type == "function_call_output":
        if not isinstance(item.get("call_id"), str) or "output" not in item:
            raise ApiError(400, "function_call_output items need 'call_id' and 'output'.", param="input")
        return {"id": _new_id("fco"), "status": "completed", **item}
    if isinstance(item_type, str):
        return dict(item)  # other kinds (reasoning, item_reference, ...) are kept but mean nothing here
    raise ApiError(400, "Input items need a 'type' or a 'role'.", param="input")


def _normalise_input(value: object, param: str = "input") -> list[JSON]:
    if isinstance(value, str):
        return [_normalise_item({"role": "user", "content": value})]
    if isinstance(value, list):
        return [_normalise_item(item) for item in value]
    raise ApiError(400, f"'{param}' must be a string or a list of input items.", param=param)


def _message_text(item: JSON) -> str:
    parts = item.get("content", [])
    texts = [
        p["text"] for p in parts if p.get("type") in ("input_text", "output_text") and isinstance(p.get("text"), str)
    ]
    return " ".join(texts)


def _output_text(output: object) -> str:
    if isinstance(output, str):
        return output
    if isinstance(output, list):
        return " ".join(str(p.get("text", "")) for p in output if isinstance(p, dict))
    return json.dumps(output)


def _item_text(item: JSON) -> str:
    kind = item.get("type")
    if kind == "message":
        return _message_text(item)
    if kind == "function_call":
        return str(item.get("arguments", ""))
    if kind == "function_call_output":
        return _output_text(item.get("output"))
    return ""


def _is_user_message(item: JSON) -> bool:
    return item.get("type") == "message" and item.get("role") == "user"


# --- The echo model itself: context in, output items out ------------------------------------------


def _tool_results_text(context: list[JSON]) -> str:
    last_user = max((i for i, item in enumerate(context) if _is_user_message(item)), default=-1)
    names = {item["call_id"]: item["name"] for item in context if item.get("type") == "function_call"}
    results = [
        f"{names.get(item['call_id'], 'unknown_tool')} -> {_output_text(item.get('output'))}"
        for item in context[last_user + 1 :]
        if item.get("type") == "function_call_output"
    ]
    return "Tool results: " + "; ".join(results)


def _tool_arguments(raw: str, tool: JSON) -> JSON:
    try:
        parsed = json.loads(raw)
    except ValueError:
        parsed = None
    if isinstance(parsed, dict):
        return parsed
    schema: JSON = tool["parameters"] if isinstance(tool.get("parameters"), dict) else {}
    required = schema.get("required") or []
    properties = list((schema.get("properties") or {}).keys())
    target = required[0] if required else properties[0] if properties else None
    if target is None:
        return {"input": raw.strip()} if raw.strip() else {}
    return {str(target): raw.strip()}


def _function_calls(context: list[JSON], tools: list[JSON]) -> list[JSON]:
    by_name = {t["name"]: t for t in tools if t.get("type") == "function" and isinstance(t.get("name"), str)}
    user_messages = [item for item in context if _is_user_message(item)]
    if not by_name or not user_messages:
        return []
    alternatives = "|".join(re.escape(name) for name in sorted(by_name, key=len, reverse=True))
    pattern = re.compile(rf"(?<![\w.])({alternatives})\((.*?)\)", re.DOTALL)
    calls: list[JSON] = []
    for match in pattern.finditer(_message_text(user_messages[-1])):
        name, raw = match.group(1), match.group(2)
        arguments = json.dumps(_tool_arguments(raw, by_name[name]))
        calls.append(
            {
                "type": "function_call",
                "id": _new_id("fc"),
                "call_id": _new_id("call"),
                "name": name,
                "arguments": arguments,
                "status": "completed",
            }
        )
    return calls


def _message_item(text: str) -> JSON:
    return {
        "type": "message",
        "id": _new_id("msg"),
        "role": "assistant",
        "status": "completed",
        "content": [{"type": "output_text", "text": text, "annotations": []}],
    }


def _echo(context: list[JSON], tools: list[JSON], instructions: str | None, label: str) -> list[JSON]:
    """The deterministic model: tool results, else requested tool calls, else a recap of the user messages."""
    prefix = f"{label} " if label else ""
    if context and context[-1].get("type") == "function_call_output":
        return [_message_item(prefix + _tool_results_text(context))]
    calls = _function_calls(context, tools)
    if calls:
        return calls
    said = [_message_text(item) for item in context if _is_user_message(item)]
    text = f"I have seen {len(said)} user message(s): " + " | ".join(f'"{s}"' for s in said)
    if instructions:
        text += f" [instructions: {instructions[:60]}]"
    return [_message_item(prefix + text)]


def _usage(context: list[JSON], instructions: str | None, output: list[JSON]) -> JSON:
    input_tokens = sum(_words(_item_text(item)) for item in context) + _words(instructions or "")
    output_tokens = sum(_words(_item_text(item)) for item in output)
    return {
        "input_tokens": input_tokens,
        "input_tokens_details": {"cached_tokens": 0, "cache_write_tokens": 0},
        "output_tokens": output_tokens,
        "output_tokens_details": {"reasoning_tokens": 0},
        "total_tokens": input_tokens + output_tokens,
    }


def _chunks(text: str, words_per_chunk: int = 3) -> list[str]:
    """Split text into pieces of at most `words_per_chunk` words that join back to exactly `text`."""
    words = [w for w in re.split(r"(?<=\s)(?=\S)", text) if w]
    return ["".join(words[i : i + words_per_chunk]) for i in range(0, len(words), words_per_chunk)] or [""]


def _sse(event: JSON) -> bytes:
    return f"event: {event['type']}\ndata: {json.dumps(event)}\n\n".encode()


# --- The ASGI application -------------------------------------------------------------------------


class EchoModel:
    """Deterministic echo model speaking the OpenAI Responses + Conversations APIs as an ASGI app."""

    def __init__(self, *, label: str = "") -> None:
        self.label = label
        self.requests: list[RecordedRequest] = []
        self._responses: dict[str, _StoredResponse] = {}
        self._conversations: dict[str, _Conversation] = {}
        # faults are queued from the test's thread and consumed on the server's event loop
        self._lock = threading.Lock()
        self._failures: deque[_Failure] = deque()
        self._stalls: deque[float] = deque()
        self._stream_breaks: deque[int] = deque()
        self._stream_paces: deque[float] = deque()

    # --- test controls ----------------------------------------------------------------------------

    def responses_requests(self) -> list[JSON]:
        """Bodies of the POST .../responses requests, in order."""
        posts = [r for r in self.requests if r.method == "POST" and _match(r.path)[0] == "responses"]
        return [r.body for r in posts if r.body is not None]

    def fail_next(
        self,
        status: int,
        *,
        count: int = 1,
        retry_after: float | None = None,
        message: str = "injected failure",
    ) -> None:
        """Answer the next `count` POST /responses with this HTTP status (plus Retry-After when given)."""
        with self._lock:
            self._failures.extend(_Failure(status, retry_after, message) for _ in range(count))

    def stall_next(self, seconds: float, *, count: int = 1) -> None:
        """Sleep `seconds` before answering each of the next `count` POST /responses."""
        with self._lock:
            self._stalls.extend(seconds for _ in range(count))

    def break_stream_next(self, *, after_deltas: int = 1) -> None:
        """Make the next streamed response fail with `response.failed` after `after_deltas` delta events."""
        with self._lock:
            self._stream_breaks.append(after_deltas)

    def seed_response(self, response_id: str, user_messages: list[str] | None = None) -> None:
        """Store a response under a chosen id (with these earlier user messages) for `previous_response_id`."""
        context = [_normalise_item({"role": "user", "content": text}) for text in user_messages or []]
        with self._lock:
            self._responses[response_id] = _StoredResponse(context, [], {"id": response_id})

    def pace_next_stream(self, seconds_per_event: float) -> None:
        """Make the next streamed response wait this long between events (a slow model, for disconnect tests)."""
        with self._lock:
            self._stream_paces.append(seconds_per_event)

    def reset(self) -> None:
        """Forget requests, stored responses, conversations and queued faults."""
        with self._lock:
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

    # --- ASGI entry point -------------------------------------------------------------------------

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return  # no lifespan or websocket support; uvicorn runs with lifespan="off"
        method: str = scope["method"]
        path: str = scope["path"]
        headers: dict[str, str] = {}
        for raw_name, raw_value in scope.get("headers", []):
            name, value = raw_name.decode("latin-1").lower(), raw_value.decode("latin-1")
            headers[name] = f"{headers[name]}, {value}" if name in headers else value
        raw_body = await _read_body(receive)
        if raw_body is None:
            return  # client went away before sending the whole body
        recorded = RecordedRequest(method, path, headers, None)
        self.requests.append(recorded)
        try:
            if raw_body:
                try:
                    recorded.body = json.loads(raw_body)
                except ValueError:
                    raise ApiError(400, "We could not parse the JSON body of your request.") from None
                if not isinstance(recorded.body, dict):
                    raise ApiError(400, "The request body must be a JSON object.")
            query = parse_qs(scope.get("query_string", b"").decode("latin-1"))
            await self._dispatch(method, path, recorded.body or {}, query, receive, send)
        except ApiError as error:
            await _send_json(send, error.status, error.body())

    async def _dispatch(
        self, method: str, path: str, body: JSON, query: dict[str, list[str]], receive: Receive, send: Send
    ) -> None:
        route, ids, allowed = _match(path)
        if route is None:
            raise ApiError(404, f"Unknown route: {method} {path}")
        if method not in allowed:
            message = f"Method {method} not allowed on {path}"
            await _send_json(send, 405, ApiError(405, message).body(), [("allow", ", ".join(sorted(allowed)))])
            return
        if route == "responses":
            await self._create_response(body, receive, send)
            return
        if route == "response":
            stored = self._responses.get(ids[0])
            if stored is None:
                raise ApiError(404, f"Response with id '{ids[0]}' not found.", param="response_id")
            if method == "DELETE":
                del self._responses[ids[0]]
                await _send_json(send, 200, {"id": ids[0], "object": "response", "deleted": True})
            else:
                await _send_json(send, 200, stored.response)
            return
        if route == "conversations":
            metadata = body.get("metadata") or {}
            conversation = _Conversation(_new_id("conv"), int(time.time()), metadata)
            conversation.items.extend(_normalise_input(body.get("items") or [], "items"))
            self._conversations[conversation.id] = conversation
            await _send_json(send, 200, conversation.resource())
            return
        conversation = self._conversation(ids[0])
        if route == "conversation" and method == "DELETE":
            del self._conversations[conversation.id]
            deleted = {"id": conversation.id, "object": "conversation.deleted", "deleted": True}
            await _send_json(send, 200, deleted)
        elif route == "conversation":
            await _send_json(send, 200, conversation.resource())
        elif method == "POST":
            added = _normalise_input(body.get("items"), "items")
            conversation.items.extend(added)
            await _send_json(send, 200, _item_list(added, has_more=False))
        else:
            await _send_json(send, 200, _list_items(conversation.items, query))

    def _conversation(self, conversation_id: str) -> _Conversation:
        conversation = self._conversations.get(conversation_id)
        if conversation is None:
            raise ApiError(404, f"Conversation with id '{conversation_id}' not found.", param="conversation_id")
        return conversation

    # --- POST /responses --------------------------------------------------------------------------

    async def _create_response(self, body: JSON, receive: Receive, send: Send) -> None:
        stall = self._pop(self._stalls)
        if stall is not None and not await _sleep_unless_disconnected(receive, stall):
            return
        failure = self._pop(self._failures)
        if failure is not None:
            extra = [("retry-after", f"{failure.retry_after:g}")] if failure.retry_after is not None else []
            await _send_json(send, failure.status, ApiError(failure.status, failure.message).body(), extra)
            return

        for required in ("model", "input"):
            if required not in body:
                raise ApiError(400, f"Missing required parameter: '{required}'.", param=required)
        previous_id, conversation_ref = body.get("previous_response_id"), body.get("conversation")
        if previous_id and conversation_ref:
            raise ApiError(400, "Use either 'previous_response_id' or 'conversation', not both.", param="conversation")
        instructions = body.get("instructions") if isinstance(body.get("instructions"), str) else None
        tools: list[JSON] = body.get("tools") or []
        if not isinstance(tools, list) or not all(isinstance(tool, dict) for tool in tools):
            raise ApiError(400, "'tools' must be a list of tool objects.", param="tools")
        new_items = _normalise_input(body["input"])

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

        tool_choice = body.get("tool_choice", "auto")
        # tool_choice "none" forbids tool calls, as on the real service
        output = _echo(context, [] if tool_choice == "none" else tools, instructions, self.label)
        response: JSON = {
            "id": _new_id("resp"),
            "object": "response",
            "created_at": int(time.time()),
            "status": "completed",
            "model": body["model"],
            "output": output,
            "parallel_tool_calls": True,
            "tool_choice": tool_choice if isinstance(tool_choice, str) else "auto",
            "tools": tools,
            "instructions": instructions,
            "usage": _usage(context, instructions, output),
            "conversation": {"id": conversation.id} if conversation else None,
            "previous_response_id": previous_id or None,
            "error": None,
            "incomplete_details": None,
            "metadata": body.get("metadata") or {},
            "text": {"format": {"type": "text"}},
            "store": body.get("store", True) is not False,
        }

        def commit() -> None:
            if response["store"]:
                self._responses[response["id"]] = _StoredResponse(context, output, response)
            if conversation is not None:
                conversation.items.extend(new_items + output)

        if body.get("stream"):
            await self._stream(response, self._pop(self._stream_breaks), self._pop(self._stream_paces), commit, send)
        else:
            commit()
            await _send_json(send, 200, response)

    async def _stream(
        self, response: JSON, break_after: int | None, pace: float | None, commit: Callable[[], None], send: Send
    ) -> None:
        """Send `response` as Responses-API server-sent events; fail instead after `break_after` deltas."""
        pending = {**response, "status": "in_progress", "output": [], "usage": None}
        events: list[JSON] = [
            {"type": "response.created", "response": pending},
            {"type": "response.in_progress", "response": pending},
        ]
        for index, item in enumerate(response["output"]):
            events += _item_events(item, index)
        if break_after is None:
            commit()
            events.append({"type": "response.completed", "response": response})
        else:
            deltas = [i for i, event in enumerate(events) if event["type"].endswith(".delta")]
            cut = deltas[break_after] if break_after < len(deltas) else len(events)
            error = {"code": "server_error", "message": "injected stream failure"}
            failed = {**pending, "status": "failed", "error": error}
            events = [*events[:cut], {"type": "response.failed", "response": failed}]

        await send({"type": "http.response.start", "status": 200, "headers": _headers("text/event-stream")})
        for sequence, event in enumerate(events):
            await send(
                {
                    "type": "http.response.body",
                    "body": _sse({**event, "sequence_number": sequence}),
                    "more_body": True,
                }
            )
            await asyncio.sleep(pace or 0)
        await send({"type": "http.response.body", "body": b"", "more_body": False})


def _item_events(item: JSON, index: int) -> list[JSON]:
    """The stream events that announce, fill in and finish one output item (sequence numbers come later)."""
    at = {"item_id": item["id"], "output_index": index}
    added = {"type": "response.output_item.added", "output_index": index}
    done = {"type": "response.output_item.done", "output_index": index, "item": item}
    if item["type"] == "function_call":
        arguments = item["arguments"]
        return [
            {**added, "item": {**item, "status": "in_progress", "arguments": ""}},
            {"type": "response.function_call_arguments.delta", **at, "delta": arguments},
            {
                "type": "response.function_call_arguments.done",
                **at,
                "name": item["name"],
                "arguments": arguments,
            },
            done,
        ]
    part = item["content"][0]
    at_part = {**at, "content_index": 0}
    return [
        {**added, "item": {**item, "status": "in_progress", "content": []}},
        {"type": "response.content_part.added", **at_part, "part": {**part, "text": ""}},
        *(
            {"type": "response.output_text.delta", **at_part, "delta": chunk, "logprobs": []}
            for chunk in _chunks(part["text"])
        ),
        {"type": "response.output_text.done", **at_part, "text": part["text"], "logprobs": []},
        {"type": "response.content_part.done", **at_part, "part": part},
        done,
    ]


# --- HTTP plumbing --------------------------------------------------------------------------------


def _match(path: str) -> tuple[str | None, tuple[str, ...], frozenset[str]]:
    for name, pattern, methods in _ROUTES:
        if match := pattern.search(path):
            return name, match.groups(), methods
    return None, (), frozenset()


def _item_list(items: list[JSON], *, has_more: bool) -> JSON:
    first_id = items[0].get("id", "") if items else ""
    last_id = items[-1].get("id", "") if items else ""
    return {"object": "list", "data": items, "first_id": first_id, "last_id": last_id, "has_more": has_more}


def _list_items(items: list[JSON], query: dict[str, list[str]]) -> JSON:
    """GET .../items honours `order` (default "desc", as the real API), `after` and `limit` (default 20)."""
    ordered = list(reversed(items)) if query.get("order", ["desc"])[0] != "asc" else list(items)
    if after := query.get("after", [""])[0]:
        position = next((i for i, item in enumerate(ordered) if item.get("id") == after), None)
        ordered = ordered[position + 1 :] if position is not None else []
    limit_text = query.get("limit", ["20"])[0]
    if not limit_text.isdigit() or not 1 <= (limit := int(limit_text)) <= 100:
        raise ApiError(400, "'limit' must be an integer between 1 and 100.", param="limit")
    return _item_list(ordered[:limit], has_more=len(ordered) > limit)


def _headers(content_type: str, extra: list[tuple[str, str]] | None = None) -> list[tuple[bytes, bytes]]:
    pairs = [("content-type", content_type), ("x-request-id", _new_id("req")), *(extra or [])]
    if content_type == "text/event-stream":
        pairs.append(("cache-control", "no-cache"))
    return [(name.encode("latin-1"), value.encode("latin-1")) for name, value in pairs]


async def _send_json(send: Send, status: int, payload: JSON, extra: list[tuple[str, str]] | None = None) -> None:
    body = json.dumps(payload).encode()
    headers = _headers("application/json", [("content-length", str(len(body))), *(extra or [])])
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body, "more_body": False})


async def _read_body(receive: Receive) -> bytes | None:
    chunks: list[bytes] = []
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            return None
        chunks.append(message.get("body", b""))
        if not message.get("more_body", False):
            return b"".join(chunks)


async def _sleep_unless_disconnected(receive: Receive, seconds: float) -> bool:
    """Sleep, but stop early (returning False) when the client disconnects, e.g. after its own timeout."""
    disconnect = asyncio.ensure_future(receive())
    try:
        done, _ = await asyncio.wait({disconnect}, timeout=seconds)
    finally:
        disconnect.cancel()
    return not done


# --- Serving over real HTTP -----------------------------------------------------------------------


class EchoModelServer(ThreadedServer):
    """Runs an EchoModel under uvicorn on 127.0.0.1 in a background thread (free port)."""

    def __init__(self, model: EchoModel | None = None) -> None:
        self.model = model if model is not None else EchoModel()
        super().__init__(self.model, name="echo-model")
        self.base_url = f"http://127.0.0.1:{self.port}/v1"
