"""#11: CPU per turn with OpenTelemetry on ÷ off, for agent_core's run loop.

Both sides are probes/cpu_turns.py in fresh interpreters over the same 20-turn conversations as #4: `agent_core`
(instrumentation off, the default) and `agent_core_otel` (instrumentation on: SDK tracer and meter providers,
every span batched and encoded to OTLP protobuf, then dropped so no network time is counted; metrics aggregated
in memory). Ratio = on ÷ off, paired per round of processes; the verdict is on the median.
"""

from __future__ import annotations

from typing import Any

from ..context import Context
from ..result import Result
from ..stats import median, ms, ratio
from .framework import run_side

TARGET = 1.10
SIDES = ("agent_core", "agent_core_otel")


async def run(ctx: Context) -> list[Result]:
    rounds: list[dict[str, dict[str, Any]]] = []
    for n in range(ctx.sizes.cpu_runs):
        order = SIDES if n % 2 == 0 else SIDES[::-1]  # alternate who goes first
        rounds.append({side: run_side(ctx, side) for side in order})
    ratios = [ratio(r["agent_core_otel"]["cpu_per_turn_s"], r["agent_core"]["cpu_per_turn_s"]) for r in rounds]
    per_turn = {side: ms(median([r[side]["cpu_per_turn_s"] for r in rounds])) for side in SIDES}
    figures: dict[str, Any] = {
        "cpu_per_turn_ms": per_turn,
        "model_calls_per_turn": {side: rounds[0][side]["model_calls_per_turn"] for side in SIDES},
        "ratio_per_round": ratios,
        "ratio": median(ratios),
        "rounds": rounds,
    }
    notes = [
        "Library run loop only (one invoke_agent and one chat span per turn, two metric records); the service's "
        "request and store spans are not in this measure. Span encoding is counted, export over the network is not."
    ]
    measured = (
        f"CPU/turn: telemetry off {per_turn['agent_core']:.2f} ms, on {per_turn['agent_core_otel']:.2f} ms "
        f"→ {figures['ratio']:.3f}"
    )
    return [
        Result(
            11, "Telemetry CPU overhead per turn", f"≤ {TARGET}", measured, figures["ratio"] <= TARGET, figures, notes
        )
    ]
