"""#11: CPU per turn with OpenTelemetry on ÷ off, for agent_core's run loop.

Each round is a fresh interpreter (probes/telemetry_pair.py) that runs the same 20-turn conversations as #4
against the echo model, alternating instrumentation off (the default) and on (SDK tracer and meter providers,
every span batched and encoded to OTLP protobuf, then dropped so no network time is counted; metrics aggregated
in memory). Ratio = on ÷ off within each round, so both sides share the machine's load at that moment; the
verdict is on the median of the rounds. Telemetry off against no telemetry code at all is #4's business.

Also measured, not judged: the function app's CPU per HTTP turn (its process's /proc time) with telemetry off
and on, two app processes on the same table, the on one exporting OTLP/HTTP to a sink in the bench process
(its request, store, run and model-call spans, batched every 100 ms, and its metrics every second), the same
conversations posted to each in turn.
"""

from __future__ import annotations

import json
import subprocess
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import httpx2

from ..context import Context
from ..history import AGENT
from ..result import Result
from ..services import ROOT, AppProcess, child_env, cpu_seconds
from ..stats import median, ms, ratio
from .turns import post_turn

TARGET = 1.10


def run_round(ctx: Context) -> dict[str, Any]:
    sizes = ctx.sizes
    before = ctx.model.responses()
    conversations = 2 * sizes.cpu_conversations  # per side: as many turns as one #4 process times
    command = [
        sys.executable, "-m", "bench.probes.telemetry_pair", ctx.model.base_url,
        str(sizes.cpu_turns), str(conversations),
    ]  # fmt: skip
    done = subprocess.run(command, cwd=ROOT, env=child_env(), capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise RuntimeError(f"telemetry probe failed:\n{done.stderr[-2000:]}")
    figures: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    calls = ctx.model.responses() - before
    figures["model_calls_per_turn"] = calls / (sizes.cpu_turns * (2 * conversations + 2))
    if figures["users_seen_at_last_turn"] != [sizes.cpu_turns]:
        raise RuntimeError(f"the model saw {figures['users_seen_at_last_turn']} user messages at the last turns")
    return figures


class _Sink(BaseHTTPRequestHandler):
    """An OTLP/HTTP endpoint that accepts every export (an empty 200 is a full success) and keeps nothing."""

    received = 0

    def do_POST(self) -> None:
        self.rfile.read(int(self.headers.get("Content-Length", 0)))
        _Sink.received += 1
        self.send_response(200)
        self.send_header("Content-Type", "application/x-protobuf")
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, format: str, *args: Any) -> None:
        return None


@contextmanager
def otlp_sink() -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Sink)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


async def service_side(ctx: Context, app: AppProcess, http: httpx2.AsyncClient) -> float:
    """App CPU seconds per turn over fresh conversations (#4's sizes), posted one turn at a time."""
    sizes = ctx.sizes
    created = [await http.post(f"/agents/{AGENT}/sessions", json={}) for _ in range(sizes.cpu_conversations)]
    sessions = [r.json()["session_id"] for r in created]
    before = cpu_seconds(app.pid)
    for session_id in sessions:
        for n in range(sizes.cpu_turns):
            await post_turn(http, session_id, f"question {n}")
    return (cpu_seconds(app.pid) - before) / (sizes.cpu_turns * len(sessions))


async def service_rounds(ctx: Context) -> dict[str, Any]:
    table = ctx.new_table("telemetry")
    with otlp_sink() as endpoint:
        on_settings = {
            **ctx.settings(table),
            "OTEL_EXPORTER_OTLP_ENDPOINT": endpoint,
            "OTEL_BSP_SCHEDULE_DELAY": "100",  # spans are exported (and their CPU counted) within the window
            "OTEL_METRIC_EXPORT_INTERVAL": "1000",
        }
        with AppProcess(ctx.settings(table)) as off, AppProcess(on_settings) as on:
            clients = {"off": httpx2.AsyncClient(base_url=off.base_url, timeout=120)}
            clients["on"] = httpx2.AsyncClient(base_url=on.base_url, timeout=120)
            apps = {"off": off, "on": on}
            try:
                for side in ("off", "on"):  # warm: the runtime is built (and telemetry configured) on first use
                    await post_turn(
                        clients[side],
                        (await clients[side].post(f"/agents/{AGENT}/sessions", json={})).json()["session_id"],
                        "warm",
                    )
                rounds: list[dict[str, float]] = []
                for n in range(ctx.sizes.cpu_runs):
                    order = ("off", "on") if n % 2 == 0 else ("on", "off")
                    rounds.append({side: await service_side(ctx, apps[side], clients[side]) for side in order})
            finally:
                for client in clients.values():
                    await client.aclose()
    ratios = [ratio(r["on"], r["off"]) for r in rounds]
    return {
        "cpu_per_turn_ms": {side: ms(median([r[side] for r in rounds])) for side in ("off", "on")},
        "ratio_per_round": ratios,
        "ratio": median(ratios),
        "otlp_exports_received": _Sink.received,
    }


async def run(ctx: Context) -> list[Result]:
    rounds = [run_round(ctx) for _ in range(ctx.sizes.cpu_runs)]
    service = await service_rounds(ctx)
    cpu = [r["cpu_per_turn_s"] for r in rounds]
    ratios = [ratio(c["on"], c["off"]) for c in cpu]
    per_turn = {side: ms(median([c[side] for c in cpu])) for side in ("off", "on")}
    added_us = median([(c["on"] - c["off"]) * 1e6 for c in cpu])
    figures: dict[str, Any] = {
        "cpu_per_turn_ms": per_turn,
        "added_cpu_per_turn_us": round(added_us),
        "spans_per_turn": rounds[0]["spans_per_turn"],
        "model_calls_per_turn": rounds[0]["model_calls_per_turn"],
        "ratio_per_round": ratios,
        "ratio": median(ratios),
        "rounds": rounds,
        "service": service,
    }
    notes = [
        "Library run loop only (per turn: one invoke_agent and one chat span, four metric records); the service's "
        "request and store spans are not in this measure. The spans' OTLP encoding is counted, the network is not.",
        "What 'on' costs is mostly OpenTelemetry's SDK (creating, ending and batching spans, aggregating metrics) "
        "and the exporter's encoding; agent_core's own hook code is a small part of it.",
        "Service: app CPU from /proc (10 ms ticks) over #4's conversation sizes, the two apps taking turns; the on "
        "app's OTLP export (encoding and HTTP posts to the sink) runs on its background threads and is counted.",
    ]
    measured = (
        f"CPU/turn: telemetry off {per_turn['off']:.2f} ms, on {per_turn['on']:.2f} ms "
        f"(+{added_us:.0f} µs) → {figures['ratio']:.3f}. Service, app CPU per HTTP turn: off "
        f"{service['cpu_per_turn_ms']['off']:.1f} ms, on {service['cpu_per_turn_ms']['on']:.1f} ms → "
        f"{service['ratio']:.3f} (not judged)"
    )
    return [
        Result(
            11, "Telemetry CPU overhead per turn", f"≤ {TARGET}", measured, figures["ratio"] <= TARGET, figures, notes
        )
    ]
