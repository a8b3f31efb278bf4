"""#11: CPU per turn with OpenTelemetry on ÷ off, for agent_core's run loop.

Each round is a fresh interpreter (probes/telemetry_pair.py) that runs the same 20-turn conversations as #4
against the echo model, alternating instrumentation off (the default) and on (SDK tracer and meter providers,
every span batched and encoded to OTLP protobuf, then dropped so no network time is counted; metrics aggregated
in memory). Ratio = on ÷ off within each round, so both sides share the machine's load at that moment; the
verdict is on the median of the rounds. Telemetry off against no telemetry code at all is #4's business.
"""

from __future__ import annotations

import json
import subprocess
import sys
from typing import Any

from ..context import Context
from ..result import Result
from ..services import ROOT, child_env
from ..stats import median, ms, ratio

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


async def run(ctx: Context) -> list[Result]:
    rounds = [run_round(ctx) for _ in range(ctx.sizes.cpu_runs)]
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
    }
    notes = [
        "Library run loop only (per turn: one invoke_agent and one chat span, four metric records); the service's "
        "request and store spans are not in this measure. The spans' OTLP encoding is counted, the network is not.",
        "What 'on' costs is mostly OpenTelemetry's SDK (creating, ending and batching spans, aggregating metrics) "
        "and the exporter's encoding; agent_core's own hook code is a small part of it.",
    ]
    measured = (
        f"CPU/turn: telemetry off {per_turn['off']:.2f} ms, on {per_turn['on']:.2f} ms "
        f"(+{added_us:.0f} µs) → {figures['ratio']:.3f}"
    )
    return [
        Result(
            11, "Telemetry CPU overhead per turn", f"≤ {TARGET}", measured, figures["ratio"] <= TARGET, figures, notes
        )
    ]
