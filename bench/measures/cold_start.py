"""#6: cold start, and the import time of function_app against importing its dependencies alone.

Cold start: from spawning a fresh app process (function_app on the dev server, as in measure #1) to the
answer of the first turn on an existing session (the first request also builds the runtime: settings, table
client, model client). Import overhead: fresh interpreters import exactly the third-party and standard-library
modules `import function_app` loads, then `import function_app` itself: the second over the first is our own
code's share. Cross-checks: `python -X importtime` (our modules' self time), and fresh interpreters alternately
running `import function_app` and importing the dependencies alone.
"""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
from pathlib import Path
from time import perf_counter
from typing import Any

import httpx2

from ..context import Context
from ..history import AGENT
from ..result import Result
from ..services import ROOT, AppProcess, child_env
from ..stats import median, ms, ratio
from .turns import post_turn

TARGET = 0.10


def probe(*args: str) -> dict[str, Any]:
    done = subprocess.run(
        [sys.executable, "-m", "bench.probes.imports", *args],
        cwd=ROOT,
        env=child_env(),
        capture_output=True,
        text=True,
        check=True,
    )
    result: dict[str, Any] = json.loads(done.stdout)
    return result


def import_times(runs: int) -> dict[str, Any]:
    """Pairs of fresh interpreters (which of the two goes first alternates); the first app probe lists the
    modules (and writes our bytecode cache, as any first start does) and only counts in a one-pair quick run."""
    first = probe("app")
    apps: list[dict[str, Any]] = [first] if runs == 1 else []
    deps: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory() as tmp:
        listing = Path(tmp) / "modules.txt"
        listing.write_text("\n".join(first["modules"]))
        for n in range(runs):
            if n % 2 and len(apps) < runs:
                apps.append(probe("app"))
            deps.append(probe("deps", str(listing)))
            if len(apps) < len(deps):
                apps.append(probe("app"))
    app_s, deps_s = [a["seconds"] for a in apps], [d["seconds"] for d in deps]
    app_ms, deps_ms = ms(median(app_s)), ms(median(deps_s))
    ours = [d["then_app_seconds"] / d["seconds"] for d in deps]
    return {
        "own_import_ms": ms(median([d["then_app_seconds"] for d in deps])),
        "own_overhead": round(median(ours), 4),
        "import_function_app_ms": app_ms,
        "import_dependencies_ms": deps_ms,
        "overhead_separate_interpreters": ratio(app_ms - deps_ms, deps_ms),
        "overhead_of_minimums": ratio(min(app_s) - min(deps_s), min(deps_s)),
        "overhead_per_run": [ratio(a - d, d) for a, d in zip(app_s, deps_s, strict=True)],
        "import_function_app_min_ms": ms(min(app_s)),
        "import_dependencies_min_ms": ms(min(deps_s)),
        "dependency_modules": len(first["modules"]),
        "dependency_modules_not_importable_by_name": deps[-1]["failed"],
        "own_modules": first["own_modules"],
    }


def own_self_time() -> dict[str, Any]:
    """`python -X importtime`: the self time of the project's modules (their own bodies, class definitions
    included) within one import of function_app, over the rest of it: what is ours, with machine noise cancelled."""
    done = subprocess.run(
        [sys.executable, "-X", "importtime", "-c", "import function_app"],
        cwd=ROOT,
        env=child_env(),
        capture_output=True,
        text=True,
        check=True,
    )
    own_us, total_us = 0, 0
    for line in done.stderr.splitlines():
        parts = [p.strip() for p in line.removeprefix("import time:").split("|")]
        if len(parts) != 3 or not parts[0].isdigit():
            continue
        name = parts[2]
        if name == "function_app":
            total_us = int(parts[1])
        if any(name == p or name.startswith(p + ".") for p in ("function_app", "service", "agent_core")):
            own_us += int(parts[0])
    return {
        "own_self_ms": round(own_us / 1000, 1),
        "import_total_ms": round(total_us / 1000, 1),
        "overhead": ratio(own_us, total_us - own_us),
    }


async def first_turn(ctx: Context, session_id: str) -> dict[str, float]:
    started = perf_counter()
    with AppProcess(ctx.settings()) as app:
        ready = perf_counter()
        async with httpx2.AsyncClient(base_url=app.base_url, timeout=60) as http:
            await post_turn(http, session_id, "first turn of a cold process")
            answered = perf_counter()
            await post_turn(http, session_id, "second turn")
            second = perf_counter() - answered
    return {
        "process_ready_s": ready - started,
        "import_s": app.ready["import_s"],
        "first_turn_answered_s": answered - started,
        "first_request_s": answered - ready,
        "second_turn_s": second,
    }


async def run(ctx: Context) -> list[Result]:
    history = await ctx.history()
    starts = []
    for _ in range(ctx.sizes.cold_runs):
        session = await history.new_session("cold", 1)
        starts.append(await first_turn(ctx, session.session_id))
    cold = {key: ms(median([s[key] for s in starts])) for key in starts[0]}
    imports = import_times(ctx.sizes.import_runs)
    imports["importtime"] = own_self_time()
    own = imports["importtime"]
    spread = imports["overhead_per_run"]
    measured = (
        f"process start → first turn answered {cold['first_turn_answered_s']:.0f} ms "
        f"(ready {cold['process_ready_s']:.0f}, first request {cold['first_request_s']:.0f}, "
        f"second turn {cold['second_turn_s']:.0f}); import overhead {imports['own_overhead'] * 100:+.1f} %: "
        f"`import function_app` once its {imports['dependency_modules']} dependency modules are loaded takes "
        f"{imports['own_import_ms']:.0f} ms vs {imports['import_dependencies_ms']:.0f} ms for them "
        f"(-X importtime: our modules' own time {own['own_self_ms']:.0f} ms, {own['overhead'] * 100:+.1f} %). "
        f"Separate fresh interpreters: function_app {imports['import_function_app_ms']:.0f} ms vs its dependencies "
        f"alone {imports['import_dependencies_ms']:.0f} ms → {imports['overhead_separate_interpreters'] * 100:+.1f} %"
    )
    figures = {"cold_start_ms": cold, "runs": starts, "imports": imports, "agent": AGENT}
    notes = [
        "Dependencies: the modules `import function_app` loads that are not the project's (azure-functions, "
        "starlette/fastapi, openai, pydantic, azure-data-tables, aiohttp, stdlib ...), imported by name in load order.",
        "Verdict on the same-process figure (dependencies imported, then `import function_app`): our code and all "
        "it triggers, with machine noise cancelled. Fresh interpreters importing function_app vs its dependencies "
        f"alone differ more (paired {min(spread):+.0%} to {max(spread):+.0%}): that gap is not our modules' code "
        "(see the same-process figure) but the same third-party modules importing slower in the nested order our "
        "imports drive than in a flat replay (e.g. aiohttp.connector, pydantic model building in openai/fastapi).",
    ]
    return [
        Result(
            6,
            "Cold start; import overhead over deps",
            f"import overhead ≤ {TARGET:.0%}",
            measured,
            imports["own_overhead"] <= TARGET,
            figures,
            notes,
        )
    ]
