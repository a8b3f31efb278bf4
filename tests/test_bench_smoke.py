"""A fast smoke run of the bench (`python -m bench --quick`): it runs end to end and reports every target.

No timing assertions (times are the bench's business, not the tests'): only counts and the report's shape.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from .azurite import Azurite

ROOT = Path(__file__).resolve().parents[1]


def test_quick_bench_reports_every_target(tmp_path: Path, azurite: Azurite):
    command = [sys.executable, "-m", "bench", "--quick", "--out", str(tmp_path), "--storage", azurite.connection_string]
    done = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=300, check=False)
    assert done.returncode == 0, done.stdout[-4000:] + done.stderr[-4000:]

    document = json.loads((tmp_path / "results.json").read_text())
    results = {r["id"]: r for r in document["results"]}
    assert sorted(results) == list(range(1, 12))
    for result in results.values():
        assert result["verdict"] in ("MET", "NOT MET", "NOT JUDGED")
        assert not result["measured"].startswith("measure failed"), result["measured"]
    assert document["machine"]["cores"] >= 1
    assert document["machine"]["python"]

    reads = results[1]["figures"]
    assert [e["history_turns"] for e in reads["by_history"]] == [1, 10, 40]
    for entry in reads["by_history"]:
        assert entry["operations"] == {"read": 1, "write": 2}
        assert entry["requests"] == {"GET": 1, "PATCH": 1, "POST": 1}
        # the header and the window: the seeded last 5 turns (all of a shorter session), the warm-up turn and
        # the samples before this one
        window = min(entry["history_turns"], reads["window_turns"])
        assert entry["entities_per_turn"] == [1 + window + 1, 1 + window + 2]

    bytes_per_turn = results[2]["figures"]["bytes_per_turn"]
    assert len(bytes_per_turn) >= 2
    assert all(b > 0 for b in bytes_per_turn)
    assert set(results[3]["figures"]["by_history"][0]) >= {"turn_ms", "model_ms", "floor_ms", "app_steps_ms"}
    assert all(calls == 1 for calls in results[4]["figures"]["model_calls_per_turn"].values())
    assert all(side["expired"] == 5 for r in results[5]["figures"]["rounds"] for side in r.values())
    assert results[6]["figures"]["imports"]["dependency_modules"] > 100
    assert results[7]["figures"]["rounds"][0]["ours"]["turns"] > 0
    assert results[8]["figures"]["turns"] == 24
    compaction = results[10]["figures"]
    assert compaction["turns"] == len(compaction["input_tokens_per_turn"]) == 12
    assert compaction["model_calls"] == 12 + compaction["summary_calls"]
    lease = results[9]["figures"]
    assert lease["cost"]["samples"] > 0
    for mode in ("enqueue", "reject"):
        assert lease[mode]["committed_turns"] > 0
        assert lease[mode]["model_calls_per_committed_turn"] == 1.0
    assert results[9]["met"] is True
    telemetry = results[11]["figures"]
    assert telemetry["model_calls_per_turn"] == 1
    assert telemetry["spans_per_turn"] == 2  # invoke_agent and chat, every one exported

    table = (tmp_path / "table.txt").read_text()
    for number in range(1, 12):
        assert f"\n{number} " in table
    assert "MET" in table
