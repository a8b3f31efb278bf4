"""#3: one turn through HTTP (the dev server) at 1 / 100 / 1,000 turns of history, sent whole.

The histories have no compaction window yet (the bench app's budget, AGENT_COMPACTION_TOKEN_BUDGET, is set
above them), so each turn reads and sends every turn: the worst case before compaction. #3 times each turn,
subtracts the echo
model's own latency (the model request the turn made, replayed right after as a plain HTTP POST), and compares
that with the storage floor: the same turn's query and transaction issued directly with azure-data-tables on
a clone of the same session, in the same iteration. The app's own step timings (handler, store load, model call,
commit) say where the difference goes.
"""

from __future__ import annotations

import math
import re
from time import perf_counter
from typing import Any

import httpx2

from service.storage.layout import turn_rk

from ..context import Context
from ..history import AGENT, HistorySeeder
from ..result import Result
from ..services import diff
from ..stats import median, ms, percentile
from ..storage import raw_turn, row_properties

FLOOR_ALLOWANCE_S = 0.005
_SEEN = re.compile(r"I have seen (\d+) user message")


async def post_turn(http: httpx2.AsyncClient, session_id: str, text: str) -> dict[str, Any]:
    response = await http.post(f"/agents/{AGENT}/sessions/{session_id}/messages", json={"message": text})
    if response.status_code != 200:
        raise RuntimeError(f"turn failed: {response.status_code} {response.text[:300]}")
    payload: dict[str, Any] = response.json()
    return payload


def users_seen(payload: dict[str, Any]) -> int:
    match = _SEEN.search(payload["text"])
    return int(match.group(1)) if match else -1


async def replay(model_http: httpx2.AsyncClient, body: dict[str, Any]) -> float:
    """The model's own latency: the turn's model request sent again as a plain HTTP POST."""
    started = perf_counter()
    response = await model_http.post("/responses", json=body)
    response.raise_for_status()
    return perf_counter() - started


async def measure_length(
    ctx: Context, http: httpx2.AsyncClient, model_http: httpx2.AsyncClient, history: HistorySeeder, length: int
) -> dict[str, Any]:
    app, raw = ctx.app(), history.raw
    template = await history.grow_to(length)
    turn_row: dict[str, Any] | None = None
    turns, models, floors, overheads = [], [], [], []
    steps: dict[str, list[float]] = {}
    operations: list[dict[str, int]] = []
    requests: list[dict[str, int]] = []
    app.timings()  # forget the steps of earlier requests
    samples = ctx.sizes.turn_samples if length < 1000 else ctx.sizes.turn_samples_long
    for i in range(samples):
        session_id, pk = await history.clone("turn")
        _, floor_pk = await history.clone("floor")
        floor_first = turn_row is not None and i % 2 == 1  # alternate the order of the turn and its floor
        if floor_first and turn_row is not None:
            floors.append(await raw_turn(raw, floor_pk, turn_row))
        before = app.counters()
        started = perf_counter()
        payload = await post_turn(http, session_id, f"question after {length} turns")
        turn_s = perf_counter() - started
        after = app.counters()
        for step, seconds in app.timings().items():
            steps.setdefault(step, []).extend(seconds)
        if users_seen(payload) != length + 1:
            raise RuntimeError(f"the model saw {users_seen(payload)} user messages, not {length + 1}")
        operations.append(diff(after["operations"], before["operations"]))
        requests.append(diff(after["requests"], before["requests"]))
        model_s = await replay(model_http, ctx.model.last_request())
        if turn_row is None:
            turn_row = row_properties(dict(await raw.get_entity(pk, turn_rk(template.inc, length + 1))))
        if not floor_first:
            floors.append(await raw_turn(raw, floor_pk, turn_row))
        turns.append(turn_s)
        models.append(model_s)
        overheads.append(turn_s - model_s)
    floor_totals = [f.total_s for f in floors]
    return {
        "history_turns": length,
        "samples": len(turns),
        "operations": operations,
        "requests": requests,
        "expected_get_pages": math.ceil((1 + length) / 1000),
        "turn_ms": {"p50": ms(median(turns)), "p95": ms(percentile(turns, 95))},
        "model_ms": {"p50": ms(median(models)), "p95": ms(percentile(models, 95))},
        "turn_minus_model_ms": {"p50": ms(median(overheads)), "p95": ms(percentile(overheads, 95))},
        "floor_ms": {
            "p50": ms(median(floor_totals)),
            "p95": ms(percentile(floor_totals, 95)),
            "read_p50": ms(median([f.read_s for f in floors])),
            "write_p50": ms(median([f.write_s for f in floors])),
            "rows_read": floors[0].rows_read,
        },
        "turn_row_bytes": sum(len(str(v)) for v in (turn_row or {}).values()),
        "app_steps_ms": app_steps(steps, turns),
    }


def app_steps(steps: dict[str, list[float]], turns: list[float]) -> dict[str, float]:
    """p50 of the app's own steps, and what is left: our code in the handler, and outside it (HTTP, routing)."""
    found = {step: ms(median(values)) for step, values in steps.items()}
    parts = ("handler", "store_load", "store_claim", "model_call", "store_commit")
    if set(parts) <= set(steps):
        own = [h - lo - cl - m - c for h, lo, cl, m, c in zip(*(steps[k] for k in parts), strict=True)]
        found["handler_own_code"] = ms(median(own))
        found["outside_handler"] = ms(median([t - h for t, h in zip(turns, steps["handler"], strict=True)]))
    return found


def latency_result(local: list[dict[str, Any]]) -> Result:
    checks = [e["turn_minus_model_ms"]["p50"] <= e["floor_ms"]["p50"] + FLOOR_ALLOWANCE_S * 1000 for e in local]
    measured = "; ".join(
        f"{e['history_turns']}: turn−model p50 {e['turn_minus_model_ms']['p50']:.1f} ms "
        f"(p95 {e['turn_minus_model_ms']['p95']:.1f}) vs floor {e['floor_ms']['p50']:.1f} + 5 "
        f"[model client side {e['app_steps_ms'].get('model_call', 0) - e['model_ms']['p50']:.1f}, history parse "
        f"{e['app_steps_ms'].get('store_load', 0) - e['floor_ms']['read_p50']:.1f}, HTTP layer "
        f"{e['app_steps_ms'].get('outside_handler', 0):.1f} ms]"
        for e in local
    )
    return Result(
        id=3,
        title="Turn latency through HTTP minus the model",
        target="p50 ≤ raw storage ops (same run) + 5 ms",
        measured=measured,
        met=all(checks),
        figures={
            "by_history": local,
            "met_by_history": dict(zip([e["history_turns"] for e in local], checks, strict=True)),
        },
        notes=[
            "model = the turn's own model request replayed as a plain HTTP POST. In brackets, from the app's own "
            "step timings (p50): its model call minus that (openai SDK, input items, response parsing), its store "
            "load minus the raw query (parsing the history), and the time outside the handler (uvicorn, dev server "
            "routing, Starlette, the HTTP client)."
        ],
    )


async def run(ctx: Context) -> list[Result]:
    history = await ctx.history()
    async with (
        httpx2.AsyncClient(base_url=ctx.app().base_url, timeout=120) as http,
        httpx2.AsyncClient(base_url=ctx.model.base_url, timeout=120) as model_http,
    ):
        await history.grow_to(1)
        warm_id, _ = await history.clone("warm")
        for n in range(3):  # the first request builds the runtime; the first turns warm caches
            await post_turn(http, warm_id, f"warm-up {n}")
            await replay(model_http, ctx.model.last_request())  # and the replaying client
        local = [await measure_length(ctx, http, model_http, history, n) for n in ctx.sizes.history_lengths]
    return [latency_result(local)]
