"""#7: turns per second on distinct sessions with 32 concurrent clients, against the storage floor.

Ours: 32 clients, each looping turns on its own session, through HTTP to the function app process (the
clients run in the bench process). Floor: 32 workers in one process, each looping the same read + write pair
(partition query, then header + turn row transaction) directly with azure-data-tables on its own partition.
Each window is timed for a fixed duration; floor and ours alternate, and the ratio is taken per round. Both run
on a fresh table, with their own function app process, and the CPU each process used is recorded.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from time import perf_counter
from typing import Any

import httpx2

from service.storage.layout import turn_rk

from ..context import Context
from ..history import AGENT, HistorySeeder
from ..result import Result
from ..services import AppProcess, cpu_seconds
from ..stats import median, ratio
from ..storage import raw_turn, row_properties
from .turns import post_turn

TARGET = 0.5


async def timed_window(
    workers: list[Callable[[], Awaitable[None]]], seconds: float, processes: dict[str, int]
) -> dict[str, Any]:
    """Run each worker in a loop until the deadline; the rate counts completed operations over the time taken.
    Also the CPU each process used per operation, and as a share of one core."""
    done = [0] * len(workers)
    cpu_before = {role: cpu_seconds(pid) for role, pid in processes.items()}
    deadline = perf_counter() + seconds

    async def loop(index: int) -> None:
        while perf_counter() < deadline:
            await workers[index]()
            done[index] += 1

    started = perf_counter()
    await asyncio.gather(*(loop(i) for i in range(len(workers))))
    elapsed = perf_counter() - started
    cpu = {role: cpu_seconds(pid) - cpu_before[role] for role, pid in processes.items()}
    count = sum(done)
    return {
        "turns": count,
        "seconds": elapsed,
        "per_second": count / elapsed,
        "cpu_ms_per_turn": {role: round(used * 1000 / max(count, 1), 2) for role, used in cpu.items()},
        "cpu_share_of_a_core": {role: round(used / elapsed, 2) for role, used in cpu.items()},
    }


async def ours(ctx: Context, app: AppProcess, http: httpx2.AsyncClient, clients: int) -> dict[str, Any]:
    created = await asyncio.gather(*(http.post(f"/agents/{AGENT}/sessions", json={}) for _ in range(clients)))
    session_ids = [r.json()["session_id"] for r in created]

    def worker(session_id: str) -> Callable[[], Awaitable[None]]:
        async def one_turn() -> None:
            await post_turn(http, session_id, "a question")

        return one_turn

    workers = [worker(s) for s in session_ids]
    await asyncio.gather(*(w() for w in workers))  # warm: one turn each, untimed
    return await timed_window(workers, ctx.sizes.throughput_seconds, ctx.processes(app))


async def floor(ctx: Context, history: HistorySeeder, turn_row: dict[str, Any], clients: int) -> dict[str, Any]:
    sessions = await asyncio.gather(*(history.new_session("tput-floor", 1) for _ in range(clients)))

    def worker(pk: str) -> Callable[[], Awaitable[None]]:
        async def one_pair() -> None:
            await raw_turn(history.raw, pk, turn_row)

        return one_pair

    workers = [worker(s.pk) for s in sessions]
    await asyncio.gather(*(w() for w in workers))
    return await timed_window(workers, ctx.sizes.throughput_seconds, ctx.processes())


async def run(ctx: Context) -> list[Result]:
    clients = ctx.sizes.clients
    table = ctx.new_table("throughput")  # a fresh table: Azurite slows down as a table grows
    history = await ctx.open_history(table)
    limits = httpx2.Limits(max_connections=clients, max_keepalive_connections=clients)
    rounds: list[dict[str, Any]] = []
    try:
        sample = await history.new_session("tput-sample", 1)  # the floor's partitions start as a session with a turn
        turn_row = row_properties(dict(await history.raw.get_entity(sample.pk, turn_rk(sample.inc, 1))))
        with AppProcess(ctx.settings(table)) as app:
            async with httpx2.AsyncClient(base_url=app.base_url, timeout=120, limits=limits) as http:
                for _ in range(ctx.sizes.throughput_runs):
                    low = await floor(ctx, history, turn_row, clients)
                    high = await ours(ctx, app, http, clients)
                    rounds.append({"floor": low, "ours": high, "ratio": ratio(high["per_second"], low["per_second"])})
    finally:
        await history.close()
    share = median([r["ratio"] for r in rounds])
    rates = {side: median([r[side]["per_second"] for r in rounds]) for side in ("ours", "floor")}
    measured = (
        f"{clients} clients: {rates['ours']:.0f} turns/s vs floor {rates['floor']:.0f} read+write pairs/s → {share:.2f}"
    )
    app_share = median([r["ours"]["cpu_share_of_a_core"].get("app", 0.0) for r in rounds])
    app_cpu = median([r["ours"]["cpu_ms_per_turn"].get("app", 0.0) for r in rounds])
    measured += f"; the app process used {app_share:.0%} of a core ({app_cpu:.1f} ms CPU per turn)"
    figures = {"clients": clients, "turns_per_second": rates, "ratio": share, "rounds": rounds}
    notes = [
        "Both sides share this machine's 2 cores with Azurite; ours also with the echo model process and the HTTP "
        "clients (in the bench process)."
    ]
    return [
        Result(
            7,
            "Throughput, 32 concurrent clients",
            f"≥ {TARGET} of the floor",
            measured,
            share >= TARGET,
            figures,
            notes,
        )
    ]
