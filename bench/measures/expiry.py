"""#5: the expiry sweep of the same expired sessions among few or many live ones: time and storage requests.

Two tables, one with the small and one with the large number of live sessions (deadlines a day ahead, so
their index rows are not due). Each round adds the same number of expired sessions to both and sweeps each
(service.expiry.sweep, as the timer runs it); time and the store's HTTP requests are paired per round,
and so is the emulator's own cost of the sweep's kind of reads at each table size.
"""

from __future__ import annotations

import asyncio
import secrets
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from time import perf_counter
from typing import Any

from service.expiry import sweep
from service.storage import TableSessionStore, partition_key

from ..context import Context
from ..result import Result
from ..stats import median, ratio
from ..storage import CountingStore

TARGET = 1.3
CONCURRENCY = 64


async def create_sessions(store: TableSessionStore, count: int, prefix: str, *, now: datetime, ttl: int) -> None:
    with_ttl = store.with_limits(replace(store.limits, ttl_seconds=ttl))

    async def one(n: int) -> None:
        await with_ttl.create(
            owner="bench",
            agent="general",
            session_id=f"{prefix}-{n}",
            history="local",
            service_session_id=None,
            state={},
            now=now,
        )

    for start in range(0, count, CONCURRENCY):
        await asyncio.gather(*(one(n) for n in range(start, min(count, start + CONCURRENCY))))


async def azurite_floor(store: TableSessionStore, live: int, pairs: int = 200) -> float:
    """Seconds per read pair of the kind the sweep issues per session (a header point read, then a range query
    within the session's partition), on live sessions: what the emulator itself charges at this table size."""
    count = min(pairs, live)
    started = perf_counter()
    for n in range(count):
        pk = partition_key("bench", "general", f"live-{n}")
        await store.get_header(pk)
        await store.delete_rows(pk, "none")  # its query only: there are no rows to delete
    return (perf_counter() - started) / count


async def sweep_round(store: TableSessionStore, expired: int) -> dict[str, Any]:
    past = datetime.now(UTC) - timedelta(hours=2)
    await create_sessions(store, expired, f"old-{secrets.token_hex(3)}", now=past, ttl=60)
    started = perf_counter()
    result = await sweep(store)
    seconds = perf_counter() - started
    if result.expired != expired:
        raise RuntimeError(f"the sweep expired {result.expired} sessions, not {expired}")
    return {"seconds": seconds, "storage_requests": result.storage_requests, "expired": result.expired}


async def run(ctx: Context) -> list[Result]:
    sizes = ctx.sizes
    stores: dict[int, CountingStore] = {}
    creation: dict[int, float] = {}
    try:
        for live in sizes.expiry_live:
            stores[live] = counting = CountingStore.open(ctx.connection_string, ctx.new_table("expiry"))
            await counting.store.ensure_table()
            started = perf_counter()
            await create_sessions(counting.store, live, "live", now=datetime.now(UTC), ttl=86_400)
            creation[live] = perf_counter() - started
        small, large = sizes.expiry_live
        rounds = []
        for _ in range(sizes.expiry_runs):
            found: dict[int, dict[str, Any]] = {}
            for live in (small, large):
                found[live] = await sweep_round(stores[live].store, sizes.expiry_expired)
                found[live]["floor_pair_s"] = await azurite_floor(stores[live].store, live)
            rounds.append(found)
    finally:
        for counting in stores.values():
            await counting.close()
    time_ratio = median([ratio(r[large]["seconds"], r[small]["seconds"]) for r in rounds])
    ops_ratio = median([ratio(r[large]["storage_requests"], r[small]["storage_requests"]) for r in rounds])
    floor_ratio = median([ratio(r[large]["floor_pair_s"], r[small]["floor_pair_s"]) for r in rounds])
    seconds = {live: median([r[live]["seconds"] for r in rounds]) for live in (small, large)}
    requests = {live: median([r[live]["storage_requests"] for r in rounds]) for live in (small, large)}
    over = ratio(time_ratio, floor_ratio)
    measured = (
        f"{sizes.expiry_expired} expired among {small:,} live: {seconds[small]:.2f} s, {requests[small]:.0f} "
        f"requests; among {large:,}: {seconds[large]:.2f} s, {requests[large]:.0f} requests → time ×{time_ratio}, "
        f"requests ×{ops_ratio}; Azurite's own read pair ×{floor_ratio} → time ÷ emulator ×{over}"
    )
    figures = {
        "expired": sizes.expiry_expired,
        "live": list(sizes.expiry_live),
        "sweep_seconds": {str(k): round(v, 3) for k, v in seconds.items()},
        "sweep_requests": {str(k): v for k, v in requests.items()},
        "time_ratio": time_ratio,
        "requests_ratio": ops_ratio,
        "azurite_read_pair_ratio": floor_ratio,
        "time_ratio_over_azurite": over,
        "live_creation_seconds": {str(k): round(v, 2) for k, v in creation.items()},
        "live_creation_sessions_per_s": {str(k): round(k / v) for k, v in creation.items()},
        "rounds": [{str(k): v for k, v in r.items()} for r in rounds],
    }
    notes = [
        f"Creating the live sessions ({CONCURRENCY} concurrent creates, 2 requests each) took "
        + ", ".join(f"{v:.1f} s for {k:,}" for k, v in creation.items())
        + ".",
        "The sweep's requests do not grow with live sessions (it reads only due index rows); its time does "
        "because Azurite's point reads and queries slow down as the table grows (the emulator scans; Table "
        "Storage looks entities up by PartitionKey and RowKey): that read-pair ratio is measured on the same tables.",
    ]
    met = time_ratio <= TARGET and ops_ratio <= TARGET
    return [Result(5, "Expiry sweep, 1k vs 10k live sessions", f"≤ {TARGET}", measured, met, figures, notes)]
