"""The processes a bench run talks to: Azurite, the echo model and the function app, each in its own process.

The model and the app run in child processes so that the bench measures each one alone: CPU time and RSS are
per process, and the bench's own clients never share a GIL with the code they measure.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from types import TracebackType
from typing import Any, Self

ROOT = Path(__file__).resolve().parents[1]

MODEL_ID = "echo-1"
API_KEY = "bench-key"
# Settings that would point the app at a real model or change its behaviour; never inherited by the children.
_SCRUBBED = ("AZURE_AI_PROJECT_ENDPOINT", "AZURE_OPENAI_ENDPOINT", "WEBSITE_INSTANCE_ID")


def child_env(extra: dict[str, str] | None = None) -> dict[str, str]:
    """The children's environment: bytecode caching on (as deployed), no model or platform settings inherited."""
    env = {k: v for k, v in os.environ.items() if k not in _SCRUBBED and k != "PYTHONDONTWRITEBYTECODE"}
    env["PYTHONPATH"] = str(ROOT)
    return {**env, **(extra or {})}


class ChildProcess:
    """`python -m <module>` speaking a line protocol: it prints `ready <json>`, then answers one JSON line per
    command line it reads; closing its stdin stops it."""

    def __init__(self, module: str, *args: str, env: dict[str, str] | None = None) -> None:
        self.process = subprocess.Popen(
            [sys.executable, "-m", module, *args],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
            cwd=ROOT,
            env=env or child_env(),
        )
        self.ready = self._read_json("ready ")

    @property
    def pid(self) -> int:
        return self.process.pid

    def _read_json(self, prefix: str = "") -> dict[str, Any]:
        assert self.process.stdout is not None
        line = self.process.stdout.readline()
        if not line.startswith(prefix):
            self.stop()
            raise RuntimeError(f"child {self.process.args!r} said {line!r} (exit code {self.process.poll()})")
        answer: dict[str, Any] = json.loads(line[len(prefix) :])
        return answer

    def ask(self, command: str) -> dict[str, Any]:
        assert self.process.stdin is not None
        self.process.stdin.write(command + "\n")
        self.process.stdin.flush()
        return self._read_json()

    def stop(self) -> None:
        if self.process.poll() is None:
            if self.process.stdin is not None:
                self.process.stdin.close()
            try:
                self.process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        if self.process.stdout is not None:
            self.process.stdout.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, traceback: TracebackType | None
    ) -> None:
        self.stop()


class ModelProcess(ChildProcess):
    """The OpenAI-compatible echo model (devtools.echo_model) in its own process."""

    def __init__(self) -> None:
        super().__init__("bench.probes.model_server")
        self.base_url: str = self.ready["base_url"]

    def responses(self) -> int:
        """POST /responses calls served so far."""
        return int(self.ask("count")["responses"])

    def last_request(self) -> dict[str, Any]:
        """The body of the last POST /responses (to replay it with the bare SDK)."""
        body: dict[str, Any] = self.ask("last")["body"]
        return body

    def reset(self) -> None:
        self.ask("reset")


def app_settings(connection_string: str, table: str, model_url: str) -> dict[str, str]:
    """The function app's settings for a bench run: sessions in Azurite, the echo model, no retries."""
    return {
        "SessionStorage": connection_string,
        "AGENT_SESSIONS_TABLE": table,
        "OPENAI_API_KEY": API_KEY,
        "OPENAI_BASE_URL": model_url,
        "OPENAI_RESPONSES_MODEL_ID": MODEL_ID,
        "AGENT_MODEL_MAX_RETRIES": "0",
        "AGENT_SWEEP_SCHEDULE": "0 0 0 1 1 *",
        # #3 sends histories of up to 1,000 turns whole (~170k tokens); #1's sessions carry a compaction window
        "AGENT_COMPACTION_TOKEN_BUDGET": "1000000",
    }


class AppProcess(ChildProcess):
    """The real function_app.app served by the dev server's ASGI app under uvicorn, in its own process."""

    def __init__(self, settings: dict[str, str], *, timings: bool = False) -> None:
        super().__init__(
            "bench.probes.app_server", env=child_env({**settings, "BENCH_TIMINGS": "1" if timings else "0"})
        )
        self.base_url: str = f"http://127.0.0.1:{self.ready['port']}/api"

    def counters(self) -> dict[str, dict[str, int]]:
        """The app store's logical operations and HTTP requests (by method) so far."""
        return self.ask("stats")

    def timings(self) -> dict[str, list[float]]:
        """Wall seconds of the app's steps (handler, store load, model call, commit) since the last call."""
        return self.ask("timings")

    def rss_bytes(self) -> int:
        """Resident set size after a full garbage collection."""
        return int(self.ask("rss")["rss_bytes"])


def cpu_seconds(pid: int) -> float:
    """User + system CPU time a process has used so far (Linux /proc)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def diff(after: dict[str, int], before: dict[str, int]) -> dict[str, int]:
    return {k: v - before.get(k, 0) for k, v in after.items() if v - before.get(k, 0)}
