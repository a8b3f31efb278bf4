"""An HTTP proxy in front of Azurite that can be told to fail requests: storage faults over real HTTP.

Two kinds of fault: `fail_next` answers a request itself (storage refused it: nothing was applied);
`lose_response_next` forwards it (storage applied it) and then cuts the answer short, as a connection
reset after the write does: the client cannot tell whether it was written.
"""

from __future__ import annotations

import json
import threading
from collections import deque
from collections.abc import Awaitable, Callable, MutableMapping
from dataclasses import dataclass
from typing import Any

import httpx2

from devtools.serving import ThreadedServer

Scope = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[MutableMapping[str, Any]]]
Send = Callable[[MutableMapping[str, Any]], Awaitable[None]]


@dataclass
class _Fault:
    method: str
    status: int  # 0: forward, then truncate the response
    match: str  # a substring of the decoded path and query, or "" for any
    body: bytes = b""  # a substring of the request body, or b"" for any


class StorageProxy:
    """Forwards every request to `upstream`, unless told to fail or lose the answer of the next ones."""

    def __init__(self, upstream: str) -> None:
        self.upstream = upstream.rstrip("/")
        self._faults: deque[_Fault] = deque()
        self.requests: list[tuple[str, str]] = []
        """(method, decoded path ? raw query) of every request seen."""
        self.entities: list[int] = []
        """Entities each answered GET returned (a query's `value`, or 1 for a point read), in order."""
        self._lock = threading.Lock()
        self._server = ThreadedServer(self, name="storage-proxy")
        self.port = self._server.port
        self._client: httpx2.AsyncClient | None = None

    def fail_next(self, method: str, status: int = 503, *, count: int = 1, match: str = "", body: bytes = b"") -> None:
        """Answer the next `count` requests with this method (and `match` in the path, `body` in the body) with
        `status` (and Retry-After: 1), without forwarding them."""
        with self._lock:
            self._faults.extend(_Fault(method.upper(), status, match, body) for _ in range(count))

    def lose_response_next(self, method: str, *, count: int = 1, match: str = "") -> None:
        """Forward the next `count` such requests, then send only half of each answer and reset."""
        with self._lock:
            self._faults.extend(_Fault(method.upper(), 0, match) for _ in range(count))

    def clear(self) -> None:
        with self._lock:
            self._faults.clear()
            self.requests.clear()
            self.entities.clear()

    def _take_fault(self, method: str, target: str, body: bytes) -> _Fault | None:
        with self._lock:
            for i, fault in enumerate(self._faults):
                if fault.method == method and fault.match in target and fault.body in body:
                    del self._faults[i]
                    return fault
        return None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return
        body = b""
        while True:
            message = await receive()
            body += message.get("body", b"")
            if not message.get("more_body"):
                break
        target = f"{scope['path']}?{scope.get('query_string', b'').decode()}"
        with self._lock:
            self.requests.append((scope["method"], target))
        fault = self._take_fault(scope["method"], target, body)
        if fault is not None and fault.status:
            await send({"type": "http.response.start", "status": fault.status, "headers": [(b"retry-after", b"1")]})
            await send({"type": "http.response.body", "body": b""})
            return
        if self._client is None:
            self._client = httpx2.AsyncClient(timeout=30)
        query = scope.get("query_string", b"").decode()
        url = f"{self.upstream}{scope['raw_path'].decode() if scope.get('raw_path') else scope['path']}"
        url = url if not query or "?" in url else f"{url}?{query}"
        headers = [
            (k.decode(), v.decode()) for k, v in scope["headers"] if k.lower() not in (b"host", b"content-length")
        ]
        response = await self._client.request(scope["method"], url, headers=headers, content=body)
        out = [(k.encode(), v.encode()) for k, v in response.headers.multi_items() if k.lower() != "content-length"]
        if fault is not None:
            # the write was applied; its answer is cut short and the connection dropped. An empty answer (a
            # 204) is announced with one byte that never comes, so the client cannot take it for complete.
            status = response.status_code if response.content else 200
            length = len(response.content) or 1
            out.append((b"content-length", str(length).encode()))
            await send({"type": "http.response.start", "status": status, "headers": out})
            await send({"type": "http.response.body", "body": response.content[: len(response.content) // 2]})
            raise ConnectionResetError("storage proxy: response lost on purpose")
        if scope["method"] == "GET" and response.status_code == 200:
            self.entities.append(_entity_count(response.content))
        out.append((b"content-length", str(len(response.content)).encode()))
        await send({"type": "http.response.start", "status": response.status_code, "headers": out})
        await send({"type": "http.response.body", "body": response.content})

    def entities_read(self) -> int:
        """Entities returned by every GET since the last `clear()`."""
        with self._lock:
            return sum(self.entities)

    def start(self) -> StorageProxy:
        self._server.start()
        return self

    def stop(self) -> None:
        self._server.stop()


def _entity_count(content: bytes) -> int:
    try:
        document = json.loads(content)
    except ValueError:
        return 0
    if isinstance(document, dict) and isinstance(document.get("value"), list):
        return len(document["value"])
    return 1 if isinstance(document, dict) and "PartitionKey" in document else 0
