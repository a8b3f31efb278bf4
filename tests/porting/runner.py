"""Runs porting programs in this interpreter, each in a fresh namespace: JSON {name: source} on stdin, JSON
{name: {"stdout": ..., "error": ...}} on stdout. Standalone (imports nothing of the project), so the same file
runs under the project's Python (agent_core) and under bench/.venv's (Agent Framework)."""

from __future__ import annotations

import ast
import asyncio
import contextlib
import io
import json
import os
import sys
import traceback


async def run_one(source: str) -> dict[str, str | None]:
    code = compile(source, "<program>", "exec", flags=ast.PyCF_ALLOW_TOP_LEVEL_AWAIT)
    out = io.StringIO()
    error = None
    try:
        with contextlib.redirect_stdout(out):
            result = eval(code, {"__name__": "program"})
            if result is not None:
                await result
    except BaseException:
        error = traceback.format_exc(limit=8)
    return {"stdout": out.getvalue(), "error": error}


async def main() -> None:
    programs: dict[str, str] = json.loads(sys.stdin.read())
    base = os.environ["ECHO_ROOT_URL"]
    side = os.environ["PORTING_SIDE"]
    results = {}
    for name, source in programs.items():
        os.environ["ECHO_BASE_URL"] = f"{base}/{side}/{name}"  # the echo model routes by suffix; tests filter by path
        results[name] = await run_one(source)
    print(json.dumps(results))


asyncio.run(main())
