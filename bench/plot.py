"""The PNG: turn latency and bytes written per turn against history length (needs matplotlib)."""

from __future__ import annotations

import importlib
import importlib.util
from pathlib import Path
from typing import Any


def available() -> bool:
    """matplotlib is in the bench environment (bench/.venv), not in the project's test environment."""
    return importlib.util.find_spec("matplotlib") is not None


def turn_cost(
    path: Path,
    latency: list[dict[str, Any]],
    bytes_per_turn: list[int],
    title: str,
    reads: list[dict[str, Any]] | None = None,
) -> None:
    matplotlib: Any = importlib.import_module("matplotlib")
    matplotlib.use("Agg")
    plt: Any = importlib.import_module("matplotlib.pyplot")

    figure, axes = plt.subplots(1, 3 if reads else 2, figsize=(18 if reads else 12, 4.8))
    left, right = axes[0], axes[1]
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

    if reads:
        window_panel(axes[2], reads)
    figure.suptitle(title, fontsize=10)
    figure.tight_layout()
    figure.savefig(path, dpi=110)
    plt.close(figure)


def window_panel(axis: Any, reads: list[dict[str, Any]]) -> None:
    """#1: entities a turn reads, and the turn's and a history page's latency, against history length."""
    lengths = [e["history_turns"] for e in reads]
    axis.plot(lengths, [max(e["entities_per_turn"]) for e in reads], "o-", label="entities read per turn (max)")
    axis.plot(lengths, [max(e["page_entities"]) for e in reads], "s-", label="entities read per history page (50)")
    axis.plot(lengths, [e["turn_ms_p50"] for e in reads], "^--", label="turn through HTTP, ms p50")
    axis.plot(lengths, [e["page_desc_ms_p50"] for e in reads], "x:", label="history page (desc), ms p50")
    axis.set_xscale("log")
    axis.set_ylim(0, None)
    axis.set_xlabel("turns of history (compaction window: the last turns)")
    axis.set_title("A turn reads its window")
    axis.grid(True, which="both", alpha=0.3)
    axis.legend(fontsize=8)
