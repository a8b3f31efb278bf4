"""#9: the turn lease: what it costs a turn, and one session under 32 concurrent clients.

Cost: turns through HTTP on a short session, each timed from the client, with the app's own timing of its
lease write (`TableSessionStore.claim`) for the same turn; the ratio is the turn's latency with the lease
over the same latency without the lease write, per turn, in the same run. One session, 32 clients: each
client loops turns on the same session for a fixed window, under `enqueue` (every turn waits its
place, then runs on the updated history) and under `reject` (a turn meeting a running one gets 409).
Model calls are counted by the echo model, committed turns by the session's own counter: model calls per
committed turn must be exactly 1.0.
"""

from __future__ import annotations

import asyncio
from time import perf_counter
from typing import Any

import httpx2

from ..context import Context
from ..history import AGENT
from ..result import Result
from ..stats import median, ms
from .throughput import timed_window
from .turns import post_turn


async def lease_cost(ctx: Context, http: httpx2.AsyncClient) -> dict[str, Any]:
    app = ctx.app()
    session_id = (await http.post(f"/agents/{AGENT}/sessions", json={})).json()["session_id"]
    for n in range(3):
        await post_turn(http, session_id, f"warm-up {n}")
    app.timings()
    with_lease, without = [], []
    for n in range(ctx.sizes.turn_samples):
        started = perf_counter()
        await post_turn(http, session_id, f"q{n}")
        turn_s = perf_counter() - started
        claim = app.timings().get("store_claim", [])
        if len(claim) != 1:
            raise RuntimeError(f"expected one lease write per turn, saw {len(claim)}")
        with_lease.append(turn_s)
        without.append(turn_s - claim[0])
    return {
        "samples": len(with_lease),
        "turn_ms_p50": ms(median(with_lease)),
        "turn_without_lease_write_ms_p50": ms(median(without)),
        "lease_write_ms_p50": ms(median([a - b for a, b in zip(with_lease, without, strict=True)])),
        "ratio": median([a / b for a, b in zip(with_lease, without, strict=True)]),
    }


async def one_session(ctx: Context, http: httpx2.AsyncClient, if_busy: str) -> dict[str, Any]:
    """`clients` clients looping turns on one session for a window: committed turns/s and model calls per turn."""
    app = ctx.app()
    session = (await http.post(f"/agents/{AGENT}/sessions", json={})).json()
    url = f"/agents/{AGENT}/sessions/{session['session_id']}"
    statuses: dict[int, int] = {}

    async def one_turn() -> None:
        response = await http.post(f"{url}/messages", json={"message": "a question", "if_busy": if_busy})
        statuses[response.status_code] = statuses.get(response.status_code, 0) + 1
        if response.status_code not in (200, 409):
            raise RuntimeError(f"turn failed: {response.status_code} {response.text[:300]}")
        if response.status_code == 409:
            await asyncio.sleep(0.01)  # a rejected client retries at once, as an impatient client would

    calls_before = ctx.model.responses()
    window = await timed_window([one_turn] * ctx.sizes.clients, ctx.sizes.throughput_seconds, ctx.processes(app))
    calls = ctx.model.responses() - calls_before
    committed = int((await http.get(url)).json()["turns"])
    return {
        "if_busy": if_busy,
        "clients": ctx.sizes.clients,
        "requests": statuses,
        "committed_turns": committed,
        "model_calls": calls,
        "model_calls_per_committed_turn": calls / committed if committed else None,
        "committed_turns_per_second": committed / window["seconds"],
        "seconds": window["seconds"],
    }


async def run(ctx: Context) -> list[Result]:
    clients = ctx.sizes.clients
    limits = httpx2.Limits(max_connections=clients, max_keepalive_connections=clients)
    async with httpx2.AsyncClient(base_url=ctx.app().base_url, timeout=300, limits=limits) as http:
        cost = await lease_cost(ctx, http)
        enqueue = await one_session(ctx, http, "enqueue")
        reject = await one_session(ctx, http, "reject")
    exact = all(s["model_calls_per_committed_turn"] == 1.0 for s in (enqueue, reject))
    measured = (
        f"lease write p50 {cost['lease_write_ms_p50']:.1f} ms; turn with ÷ without it "
        f"{cost['turn_ms_p50']:.1f} ÷ {cost['turn_without_lease_write_ms_p50']:.1f} ms → ×{cost['ratio']:.2f}. "
        f"{clients} clients on one session: enqueue {enqueue['committed_turns_per_second']:.1f} turns/s, "
        f"{enqueue['model_calls_per_committed_turn']} model calls per committed turn; reject "
        f"{reject['committed_turns_per_second']:.1f} turns/s ({reject['requests'].get(409, 0)} × 409), "
        f"{reject['model_calls_per_committed_turn']} model calls per committed turn"
    )
    return [
        Result(
            9,
            "Turn lease: cost, and 32 clients on one session",
            "model calls per committed turn = 1.0",
            measured,
            exact,
            {"cost": cost, "enqueue": enqueue, "reject": reject},
            [
                "The lease's cost is its write, timed in the app for the same turn; 'without' is the turn's latency "
                "minus that write. Committed turns come from the session's counter, model calls from the echo model."
            ],
        )
    ]
