"""`python -m bench`: run the measures, print the table, write results.json (and turn_cost.png)."""

from __future__ import annotations

import argparse
import asyncio
import sys
import time
import traceback
from collections.abc import Awaitable, Callable, Sequence
from pathlib import Path
from typing import Any

from . import plot, report
from .config import FULL, QUICK
from .context import Context
from .measures import (
    bytes_written,
    cold_start,
    compaction,
    expiry,
    framework,
    lease,
    memory,
    telemetry,
    throughput,
    turns,
    window,
)
from .result import Result
from .services import ROOT, ModelProcess

Measure = Callable[[Context], Awaitable[list[Result]]]
# (ids it reports, title, coroutine), in the order they run
MEASURES: list[tuple[tuple[int, ...], str, Measure]] = [
    ((1,), "entities read per turn, turn and page at 10,000 turns", window.run),
    ((3,), "latency per turn", turns.run),
    ((2,), "bytes written per turn", bytes_written.run),
    ((4,), "framework CPU overhead", framework.run),
    ((5,), "expiry sweep", expiry.run),
    ((6,), "cold start and import time", cold_start.run),
    ((7,), "throughput", throughput.run),
    ((8,), "memory", memory.run),
    ((9,), "turn lease", lease.run),
    ((10,), "long conversations with compaction", compaction.run),
    ((11,), "telemetry CPU overhead", telemetry.run),
]


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    parser.add_argument("--quick", action="store_true", help="tiny sizes: a smoke run of seconds, not figures")
    parser.add_argument("--only", default="", help="comma-separated target numbers to run (default: all)")
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "results", help="output directory")
    parser.add_argument("--storage", default="", help="connection string of a running Azurite (default: start one)")
    return parser.parse_args(argv)


def failed(ids: tuple[int, ...], title: str, error: BaseException) -> list[Result]:
    detail = "".join(traceback.format_exception_only(type(error), error)).strip()
    return [Result(i, title, "—", f"measure failed: {detail}", None) for i in ids]


async def run_measures(ctx: Context, selected: set[int]) -> tuple[list[Result], bool]:
    results: list[Result] = []
    ok = True
    for ids, title, measure in MEASURES:
        if selected and not selected.intersection(ids):
            continue
        print(f"[bench] {title} ({', '.join(f'#{i}' for i in ids)}) ...", flush=True)
        started = time.perf_counter()
        try:
            found = [r for r in await measure(ctx) if not selected or r.id in selected]
        except Exception as error:
            traceback.print_exc()
            found, ok = failed(ids, title, error), False
        print(f"[bench]   done in {time.perf_counter() - started:.1f} s", flush=True)
        results += found
    return results, ok


def outputs(ctx: Context, results: list[Result], mode: str, seconds: float) -> None:
    info = report.machine()
    title = report.header(info, mode)
    extra: dict[str, Any] = {"seconds": round(seconds, 1), "command": " ".join(["python -m bench", *sys.argv[1:]])}
    by_id = {r.id: r for r in results}
    png = ctx.out_dir / "turn_cost.png"
    latency = by_id[3].figures.get("by_history") if 3 in by_id else None
    bytes_series = by_id[2].figures.get("bytes_per_turn") if 2 in by_id else None
    reads = by_id[1].figures.get("by_history") if 1 in by_id else None
    if latency and bytes_series and plot.available():
        plot.turn_cost(png, latency, bytes_series, title, reads)
        extra["png"] = str(png)
    else:
        extra["png"] = None
    report.write_json(ctx.out_dir / "results.json", results, info, mode, extra)
    text = f"{title}\n\n{report.table(results)}\n"
    (ctx.out_dir / "table.txt").write_text(text)
    print("\n" + text)
    print(f"raw figures: {ctx.out_dir / 'results.json'}" + (f"; chart: {png}" if extra["png"] else " (no chart)"))


async def amain(args: argparse.Namespace) -> int:
    sizes = QUICK if args.quick else FULL
    mode = "quick" if args.quick else "full"
    selected = {int(x) for x in args.only.split(",") if x.strip()}
    args.out.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    azurite = None
    if args.storage:
        connection_string = args.storage
    else:
        sys.path.insert(0, str(ROOT))
        from tests.azurite import Azurite

        azurite = Azurite()
        connection_string = azurite.connection_string
    try:
        with ModelProcess() as model:
            ctx = Context(sizes, connection_string, model, args.out, azurite.process.pid if azurite else None)
            try:
                results, ok = await run_measures(ctx, selected)
            finally:
                await ctx.close()
            outputs(ctx, results, mode, time.perf_counter() - started)
    finally:
        if azurite is not None:
            azurite.stop()
    return 0 if ok else 1


def main(argv: Sequence[str] | None = None) -> int:
    return asyncio.run(amain(parse_args(argv)))


if __name__ == "__main__":
    sys.exit(main())
