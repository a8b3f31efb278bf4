"""uvicorn on a free loopback port in a daemon thread, with TCP_NODELAY on every connection.

agent_core.serving.ThreadedServer binds `socket.socket(AF_INET, SOCK_STREAM)` (protocol 0), and asyncio sets
TCP_NODELAY only on sockets whose protocol is IPPROTO_TCP: its keep-alive connections then wait ~40 ms per
request (Nagle's algorithm against delayed ACKs). The bench serves like `python -m agent_core.devserver`
(uvicorn binding its own TCP socket) instead, so that stall is not counted as the app's or the model's cost.
"""

from __future__ import annotations

import socket
import threading
import time
from typing import Any, Literal


class LoopbackServer:
    def __init__(self, app: Any, *, lifespan: Literal["on", "off"] = "off") -> None:
        import uvicorn

        self._socket = socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)
        self._socket.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._socket.bind(("127.0.0.1", 0))
        self.port: int = self._socket.getsockname()[1]
        config = uvicorn.Config(app, lifespan=lifespan, log_level="warning", timeout_graceful_shutdown=2)
        self._server = uvicorn.Server(config)
        self._thread = threading.Thread(target=self._server.run, kwargs={"sockets": [self._socket]}, daemon=True)

    def start(self) -> LoopbackServer:
        self._thread.start()
        deadline = time.monotonic() + 10
        while not self._server.started:
            if not self._thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError("the server did not start")
            time.sleep(0.01)
        return self

    def stop(self) -> None:
        self._server.should_exit = True
        self._thread.join(timeout=5)
        self._socket.close()
