"""Serve an ASGI app with uvicorn on a free loopback port in a background thread (test servers, dev server)."""

from __future__ import annotations

import socket
import threading
import time
from types import TracebackType
from typing import Any, Literal, Self


class ThreadedServer:
    """uvicorn on 127.0.0.1 in a daemon thread. The socket is bound at construction, so `port` is known early."""

    def __init__(self, app: Any, *, name: str, lifespan: Literal["on", "off"] = "off") -> None:
        self.app = app
        self.name = name
        self.lifespan = lifespan
        # IPPROTO_TCP explicitly: asyncio sets TCP_NODELAY only then; without it keep-alive requests stall ~40 ms.
        self._socket = socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)
        self._socket.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._socket.bind(("127.0.0.1", 0))
        self.port: int = self._socket.getsockname()[1]
        self._server: Any = None
        self._thread: threading.Thread | None = None

    def start(self) -> Self:
        """Start serving; returns once the server accepts connections."""
        import uvicorn

        if self._thread is not None:
            return self
        config = uvicorn.Config(self.app, lifespan=self.lifespan, log_level="warning", timeout_graceful_shutdown=2)
        self._server = server = uvicorn.Server(config)
        self._thread = threading.Thread(
            target=server.run, kwargs={"sockets": [self._socket]}, name=self.name, daemon=True
        )
        self._thread.start()
        deadline = time.monotonic() + 10
        while not server.started:
            if not self._thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError(f"{self.name} did not start")
            time.sleep(0.01)
        return self

    def stop(self) -> None:
        """Ask uvicorn to exit (running lifespan shutdown) and wait for its thread."""
        if self._thread is not None and self._server is not None:
            self._server.should_exit = True
            self._thread.join(timeout=5)
            self._thread = None
        self._socket.close()

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, traceback: TracebackType | None
    ) -> None:
        self.stop()
