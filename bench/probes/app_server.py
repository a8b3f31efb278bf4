"""Child process: function_app.app on the dev server's ASGI app (uvicorn, loopback), configured by the environment.

Commands on stdin: stats (the store's counters), rss (after a full collection), timings (BENCH_TIMINGS=1).
"""

from __future__ import annotations

import functools
import gc
import json
import os
import sys
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from devtools.serving import ThreadedServer


def rss_bytes() -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    raise RuntimeError("no VmRSS in /proc/self/status")


class Timings:
    """Wall time of the app's own steps of a turn (BENCH_TIMINGS=1): where the turn's time goes."""

    STEPS = (
        ("service.http", "HttpApi", "messages", "handler"),
        ("service.storage", "TableSessionStore", "load", "store_load"),
        ("service.storage", "TableSessionStore", "commit_turn", "store_commit"),
        ("service.storage", "TableSessionStore", "claim", "store_claim"),
        ("agent_core.model_client", "ResponsesClient", "get_response", "model_call"),
    )

    def __init__(self) -> None:
        self.samples: dict[str, list[float]] = {}

    def install(self) -> None:
        import importlib

        for module_name, class_name, method_name, label in self.STEPS:
            cls = getattr(importlib.import_module(module_name), class_name)
            setattr(cls, method_name, self._timed(getattr(cls, method_name), label))

    def _timed(self, method: Callable[..., Awaitable[Any]], label: str) -> Callable[..., Awaitable[Any]]:
        samples = self.samples.setdefault(label, [])

        @functools.wraps(method)
        async def timed(*args: Any, **kwargs: Any) -> Any:
            started = time.perf_counter()
            try:
                return await method(*args, **kwargs)
            finally:
                samples.append(time.perf_counter() - started)

        return timed

    def take(self) -> dict[str, list[float]]:
        taken = {k: list(v) for k, v in self.samples.items()}
        for values in self.samples.values():
            values.clear()
        return taken


def main() -> None:
    started = time.perf_counter()
    import function_app

    imported = time.perf_counter() - started
    timings = Timings()
    if os.environ.get("BENCH_TIMINGS") == "1":
        timings.install()
    from devtools.devserver import create_asgi_app

    app = create_asgi_app(function_app.app, run_timers=False)  # the dev server's app, as DevServer serves it
    app.on_shutdown.append(function_app.app.api.close)
    server = ThreadedServer(app, name="bench-app", lifespan="on").start()
    try:
        ready = {"port": server.port, "import_s": imported, "ready_s": time.perf_counter() - started}
        print("ready " + json.dumps(ready), flush=True)
        for line in sys.stdin:
            command = line.strip()
            answer: dict[str, Any]
            if command == "stats":
                runtime = function_app.app.api.runtime.built
                store = runtime.store if runtime is not None else None
                answer = {
                    "operations": dict(store.operations) if store else {},
                    "requests": store.counter.snapshot() if store else {},
                    "entities": store.rows_read if store else 0,
                }
            elif command == "timings":
                answer = timings.take()
            elif command == "rss":
                gc.collect()
                answer = {"rss_bytes": rss_bytes()}
            else:
                answer = {"error": f"unknown command {command!r}"}
            print(json.dumps(answer), flush=True)
    finally:
        server.stop()


if __name__ == "__main__":
    main()
