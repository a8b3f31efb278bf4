"""The PNG: turn latency and bytes written per turn against history length (needs matplotlib)."""

from __future__ import annotations

import importlib
import importlib.util
from pathlib import Path
from typing import Any


def available() -> bool:
    """matplotlib is in the bench environment (bench/.venv), not in the project's test environment."""
    return importlib.util.find_spec("matplotlib") is not None


def turn_cost(path: Path, latency: list[dict[str, Any]], bytes_per_turn: list[int], title: str) -> None:
    matplotlib: Any = importlib.import_module("matplotlib")
    matplotlib.use("Agg")
    plt: Any = importlib.import_module("matplotlib.pyplot")

    figure, (left, right) = plt.subplots(1, 2, figsize=(12, 4.8))
    lengths = [e["history_turns"] for e in latency]
    for key, label, style in (
        ("turn_ms", "turn through HTTP", "o-"),
        ("turn_minus_model_ms", "turn − model", "s-"),
        ("floor_ms", "storage floor (raw query + transaction)", "^--"),
        ("model_ms", "echo model alone (plain HTTP)", "x:"),
    ):
        left.plot(lengths, [e[key]["p50"] for e in latency], style, label=f"{label}, p50")
    for step, label, style in (
        ("store_load", "app: store load (query + parse)", "d-."),
        ("model_call", "app: model call", "+-."),
    ):
        left.plot(lengths, [e["app_steps_ms"].get(step) for e in latency], style, label=label)
    left.set_xscale("log")
    left.set_yscale("log")
    left.set_xlabel("turns of history before the turn")
    left.set_ylabel("milliseconds (log)")
    left.set_title("Turn latency (p50)")
    left.grid(True, which="both", alpha=0.3)
    left.legend(fontsize=8)

    turns = list(range(1, len(bytes_per_turn) + 1))
    right.plot(turns, bytes_per_turn, "-", label="request body bytes of the turn's write")
    right.set_xscale("log")
    right.set_ylim(0, max(bytes_per_turn) * 1.3 if bytes_per_turn else 1)
    right.set_xlabel("turn number (same message sizes every turn)")
    right.set_ylabel("bytes")
    right.set_title("Bytes written per turn")
    right.grid(True, which="both", alpha=0.3)
    right.legend(fontsize=8)

    figure.suptitle(title, fontsize=10)
    figure.tight_layout()
    figure.savefig(path, dpi=110)
    plt.close(figure)
