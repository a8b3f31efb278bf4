"""Child process: the echo model on a free loopback port; commands on stdin: count, last, reset."""

from __future__ import annotations

import json
import sys
from typing import Any

from devtools.echo_model import EchoModel
from devtools.serving import ThreadedServer

_KEEP_REQUESTS = 50  # the model records every request; keep memory flat over long runs


class CountingModel(EchoModel):
    """The echo model, counting POST /responses and remembering only the last requests."""

    def __init__(self) -> None:
        super().__init__()
        self.responses = 0

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] == "http" and scope["method"] == "POST" and scope["path"].endswith("/responses"):
            self.responses += 1
        if len(self.requests) > 4 * _KEEP_REQUESTS:
            del self.requests[:-_KEEP_REQUESTS]
        await super().__call__(scope, receive, send)


def main() -> None:
    model = CountingModel()
    server = ThreadedServer(model, name="bench-model").start()
    try:
        print("ready " + json.dumps({"base_url": f"http://127.0.0.1:{server.port}/v1"}), flush=True)
        for line in sys.stdin:
            command = line.strip()
            if command == "count":
                answer: dict[str, Any] = {"responses": model.responses}
            elif command == "last":
                answer = {"body": model.responses_requests()[-1]}
            elif command == "reset":
                model.reset()
                answer = {}
            else:
                answer = {"error": f"unknown command {command!r}"}
            print(json.dumps(answer), flush=True)
    finally:
        server.stop()


if __name__ == "__main__":
    main()
