"""An HTTP proxy in front of Azurite that can be told to fail requests: storage faults over real HTTP."""

from __future__ import annotations

import threading
from collections import deque
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

import httpx2

from devtools.serving import ThreadedServer

Scope = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[MutableMapping[str, Any]]]
Send = Callable[[MutableMapping[str, Any]], Awaitable[None]]


class StorageProxy:
    """Forwards every request to `upstream`; `fail_next(method, status)` answers the next such request itself."""

    def __init__(self, upstream: str) -> None:
        self.upstream = upstream.rstrip("/")
        self._faults: deque[tuple[str, int]] = deque()
        self._lock = threading.Lock()
        self._server = ThreadedServer(self, name="storage-proxy")
        self.port = self._server.port
        self._client: httpx2.AsyncClient | None = None

    def fail_next(self, method: str, status: int = 503, *, count: int = 1) -> None:
        """Answer the next `count` requests with this method with `status` (and Retry-After: 1)."""
        with self._lock:
            self._faults.extend((method.upper(), status) for _ in range(count))

    def clear(self) -> None:
        with self._lock:
            self._faults.clear()

    def _take_fault(self, method: str) -> int | None:
        with self._lock:
            for i, (m, status) in enumerate(self._faults):
                if m == method:
                    del self._faults[i]
                    return status
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
        status = self._take_fault(scope["method"])
        if status is not None:
            await send({"type": "http.response.start", "status": status, "headers": [(b"retry-after", b"1")]})
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
        out.append((b"content-length", str(len(response.content)).encode()))
        await send({"type": "http.response.start", "status": response.status_code, "headers": out})
        await send({"type": "http.response.body", "body": response.content})

    def start(self) -> StorageProxy:
        self._server.start()
        return self

    def stop(self) -> None:
        self._server.stop()
