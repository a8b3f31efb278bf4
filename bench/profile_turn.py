"""`python -m bench.profile_turn --history 1000`: where a turn's CPU goes, by package and by function.

The function app runs in this process (the dev server's ASGI app called through httpx2's ASGI transport, so the
whole request path is on one thread under cProfile); storage is Azurite and the model the echo model, in their
own processes as in the bench. Each profiled turn starts from a session with exactly `--history` turns.
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import pstats
import sys
from collections import Counter
from collections.abc import Sequence
from time import process_time

import httpx2

from .history import AGENT, HistorySeeder
from .services import ROOT, ModelProcess, app_settings
from .storage import CountingStore, raw_table


def package_of(filename: str) -> str:
    if "site-packages/" in filename:
        return filename.split("site-packages/")[1].split("/")[0].removesuffix(".py")
    if filename.startswith(str(ROOT)):
        return filename[len(str(ROOT)) + 1 :].split("/")[0].removesuffix(".py")
    if filename.startswith(("~", "<")):
        return "(built-ins)"
    return "stdlib " + filename.rsplit("/", 1)[-1]


def report(profile: cProfile.Profile, turns: int, cpu_s: float, top: int) -> str:
    stats = pstats.Stats(profile)
    by_package: Counter[str] = Counter()
    for (filename, _, _), (_, _, own_s, _, _) in stats.stats.items():  # type: ignore[attr-defined]
        by_package[package_of(filename)] += own_s
    lines = [f"CPU per turn {cpu_s * 1000 / turns:.1f} ms (profiled); own time per turn by package:"]
    lines += [f"  {name:<44}{seconds * 1000 / turns:8.2f} ms" for name, seconds in by_package.most_common(top)]
    return "\n".join(lines)


async def profile_turns(
    connection_string: str, model_url: str, history: int, turns: int
) -> tuple[cProfile.Profile, float]:
    table = "profile"
    settings = app_settings(connection_string, table, model_url)
    sys.path.insert(0, str(ROOT))
    from devtools.devserver import create_asgi_app
    from service.app import create_app
    from service.settings import AppSettings

    function_app = create_app(AppSettings.from_env(settings))  # what function_app.py serves, explicitly configured
    app = create_asgi_app(function_app, env=settings, run_timers=False)
    seeder = CountingStore.open(connection_string, table)
    await seeder.store.ensure_table()
    seeded = HistorySeeder(seeder, raw_table(connection_string, table))
    profile = cProfile.Profile()
    cpu_s = 0.0
    try:
        await seeded.grow_to(history)
        sessions = [(await seeded.clone("profile"))[0] for _ in range(turns + 3)]
        transport = httpx2.ASGITransport(app=app)
        async with httpx2.AsyncClient(transport=transport, base_url="http://app/api", timeout=120) as http:
            for n, session_id in enumerate(sessions):
                if n == 3:  # three warm-up turns first
                    cpu_s = process_time()
                    profile.enable()
                response = await http.post(f"/agents/{AGENT}/sessions/{session_id}/messages", json={"message": "hi"})
                response.raise_for_status()
            profile.disable()
            cpu_s = process_time() - cpu_s
    finally:
        await seeded.close()
        await function_app.api.close()
    return profile, cpu_s


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.profile_turn", description=__doc__)
    parser.add_argument("--history", type=int, default=100, help="turns of history before each profiled turn")
    parser.add_argument("--turns", type=int, default=20, help="profiled turns")
    parser.add_argument("--top", type=int, default=20, help="rows of each table")
    args = parser.parse_args(argv)
    from tests.azurite import Azurite

    azurite = Azurite()
    try:
        with ModelProcess() as model:
            run = profile_turns(azurite.connection_string, model.base_url, args.history, args.turns)
            profile, cpu_s = asyncio.run(run)
    finally:
        azurite.stop()
    print(report(profile, args.turns, cpu_s, args.top))
    print(f"\nTop functions by own time ({args.turns} turns, {args.history} turns of history):")
    pstats.Stats(profile).sort_stats("tottime").print_stats(args.top)


if __name__ == "__main__":
    main()
