"""#8: resident memory of the app process after 10,000 turns over 1,000 sessions, against after warm-up.

A fresh function app process; 1,000 sessions created through HTTP, one warm-up turn on each, then RSS
(after a full garbage collection, read in the app process); then 10,000 turns (10 per session) from 32
concurrent clients, and RSS again. The series of RSS samples is in the figures.
"""

from __future__ import annotations

import asyncio

import httpx2

from ..context import Context
from ..history import AGENT
from ..result import Result
from ..services import AppProcess
from .turns import post_turn

TARGET_MB = 20.0
SAMPLES = 10


async def run_turns(http: httpx2.AsyncClient, session_ids: list[str], clients: int) -> None:
    """One turn on each session in order, `clients` at a time (a session never has two turns at once)."""
    queue: asyncio.Queue[str] = asyncio.Queue()
    for session_id in session_ids:
        queue.put_nowait(session_id)

    async def client() -> None:
        while not queue.empty():
            await post_turn(http, queue.get_nowait(), "a question")

    await asyncio.gather(*(client() for _ in range(clients)))


async def run(ctx: Context) -> list[Result]:
    sizes = ctx.sizes
    limits = httpx2.Limits(max_connections=sizes.clients, max_keepalive_connections=sizes.clients)
    per_session = max(1, sizes.memory_turns // sizes.memory_sessions)
    with AppProcess(ctx.settings(ctx.new_table("memory"))) as app:
        async with httpx2.AsyncClient(base_url=app.base_url, timeout=120, limits=limits) as http:
            session_ids: list[str] = []
            for start in range(0, sizes.memory_sessions, sizes.clients):
                count = min(sizes.clients, sizes.memory_sessions - start)
                created = await asyncio.gather(*(http.post(f"/agents/{AGENT}/sessions", json={}) for _ in range(count)))
                session_ids += [r.json()["session_id"] for r in created]
            await run_turns(http, session_ids, sizes.clients)  # warm-up: one turn each
            baseline = app.rss_bytes()
            series = [baseline]
            rounds = [session_ids] * per_session
            for n, chunk in enumerate(rounds):
                await run_turns(http, chunk, sizes.clients)
                if (n + 1) % max(1, per_session // SAMPLES) == 0:
                    series.append(app.rss_bytes())
            final = app.rss_bytes()
    growth_mb = (final - baseline) / 2**20
    turns = per_session * len(session_ids)
    measured = (
        f"RSS after warm-up {baseline / 2**20:.1f} MB, after {turns:,} turns over {len(session_ids):,} sessions "
        f"{final / 2**20:.1f} MB → +{growth_mb:.1f} MB"
    )
    figures = {
        "rss_after_warmup_mb": round(baseline / 2**20, 2),
        "rss_after_turns_mb": round(final / 2**20, 2),
        "growth_mb": round(growth_mb, 2),
        "turns": turns,
        "sessions": len(session_ids),
        "rss_series_mb": [round(v / 2**20, 2) for v in series],
    }
    return [
        Result(8, "Memory growth over 10,000 turns", f"≤ {TARGET_MB:.0f} MB", measured, growth_mb <= TARGET_MB, figures)
    ]
