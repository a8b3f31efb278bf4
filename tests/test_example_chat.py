"""The terminal chat example (`python -m examples.chat`) works end to end on the offline model."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_chat_example_remembers_and_calls_tools():
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AZURE_", "OPENAI_"))}
    proc = subprocess.run(
        [sys.executable, "-m", "examples.chat"],
        input="My name is Alice\nsearch_products(boots)\nWho am I?\nexit\n",
        capture_output=True,
        text=True,
        cwd=ROOT,
        env=env,
        timeout=60,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    lines = [line for line in proc.stdout.splitlines() if line.startswith("Agent: ")]
    assert len(lines) == 3
    assert "[offline model] Tool results: search_products -> Found 3 products matching 'boots'" in lines[1]
    assert 'I have seen 3 user message(s): "My name is Alice" | "search_products(boots)" | "Who am I?"' in lines[2]
    assert "history of 8 messages" in proc.stdout
