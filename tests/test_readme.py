"""The README's runnable Sessions example runs as printed, against the echo model."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

from devtools.echo_model import EchoModelServer

from .helpers import seen_user_messages

ROOT = Path(__file__).resolve().parents[1]


def python_blocks() -> list[str]:
    return re.findall(r"```python\n(.*?)```", (ROOT / "README.md").read_text(), re.S)


def test_sessions_example_runs(model_server: EchoModelServer, tmp_path: Path):
    [example] = [b for b in python_blocks() if "asyncio.run(main())" in b]
    script = tmp_path / "sessions_example.py"
    script.write_text(example)
    env = {
        **os.environ,
        "PYTHONPATH": str(ROOT),
        "AZURE_AI_PROJECT_ENDPOINT": model_server.base_url.removesuffix("/v1") + "/api/projects/demo",
        "AZURE_OPENAI_RESPONSES_DEPLOYMENT_NAME": "gpt-test",
        "AZURE_OPENAI_API_KEY": "test-key",
    }
    proc = subprocess.run(
        [sys.executable, str(script)], capture_output=True, text=True, env=env, timeout=60, check=False
    )
    assert proc.returncode == 0, proc.stderr
    assert seen_user_messages(proc.stdout) == ["My name is Alice and I love hiking.", "What do you remember about me?"]
