"""The bench's outputs: the machine it ran on, the table of targets (MET / NOT MET) and results.json."""

from __future__ import annotations

import json
import os
import platform
import textwrap
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from .result import Result


def machine() -> dict[str, Any]:
    cpu = platform.processor() or platform.machine()
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.is_file():
        for line in cpuinfo.read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    memory_gb = None
    meminfo = Path("/proc/meminfo")
    if meminfo.is_file():
        total_kb = int(meminfo.read_text().split("MemTotal:")[1].split()[0])
        memory_gb = round(total_kb / 1024 / 1024, 1)
    return {
        "cpu": cpu,
        "cores": os.cpu_count(),
        "memory_gb": memory_gb,
        "python": platform.python_version(),
        "platform": platform.platform(),
    }


def table(results: list[Result], width: int = 118) -> str:
    """A plain-text table, one block per target: measured figures wrapped under the title."""
    lines = [f"{'#':<3}{'measure':<44}{'target':<42}result", "-" * width]
    for r in sorted(results, key=lambda r: r.id):
        lines.append(f"{r.id:<3}{r.title[:43]:<44}{r.target[:41]:<42}{r.verdict}")
        for chunk in textwrap.wrap(r.measured, width - 6):
            lines.append(f"     {chunk}")
        for note in r.notes:
            for n, chunk in enumerate(textwrap.wrap(note, width - 8)):
                lines.append(f"     {'* ' if n == 0 else '  '}{chunk}")
    return "\n".join(lines)


def header(info: dict[str, Any], mode: str) -> str:
    return (
        f"agent_core bench ({mode}) on {info['cpu']}, {info['cores']} cores, {info['memory_gb']} GB, "
        f"Python {info['python']}"
    )


def write_json(path: Path, results: list[Result], info: dict[str, Any], mode: str, extra: dict[str, Any]) -> None:
    document = {
        "generated_at": datetime.now(UTC).isoformat(),
        "mode": mode,
        "machine": info,
        "results": [r.to_json() for r in sorted(results, key=lambda r: r.id)],
        **extra,
    }
    path.write_text(json.dumps(document, indent=1, default=str) + "\n")
