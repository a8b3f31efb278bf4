"""The local run path: `python -m devtools.devserver` (what scripts/run starts) with the sample settings,
Azurite and the echo model it starts when no model endpoint is set, driven like the README's curl session."""

from __future__ import annotations

import json
import os
import secrets
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx2
import pytest

from .azurite import Azurite

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture
def devserver(azurite: Azurite, tmp_path: Path) -> Iterator[str]:
    sample = json.loads((ROOT / "local.settings.sample.json").read_text())
    values = {**sample["Values"], "SessionStorage": azurite.connection_string}
    values["AGENT_SESSIONS_TABLE"] = f"local{secrets.token_hex(4)}"
    settings = tmp_path / "local.settings.json"
    settings.write_text(json.dumps({"IsEncrypted": False, "Values": values}))
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AZURE_", "OPENAI_", "AGENT_", "SessionStorage"))}
    proc = subprocess.Popen(
        [sys.executable, "-m", "devtools.devserver", "--port", str(port), "--settings", str(settings)],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                if httpx2.get(f"{base}/api/health").status_code == 200:
                    break
            except httpx2.TransportError:
                time.sleep(0.1)
        else:
            raise AssertionError("the dev server did not come up")
        yield base
    finally:
        proc.terminate()
        output, _ = proc.communicate(timeout=10)
        assert "sessions: [GET,POST,PUT,PATCH,DELETE,HEAD,OPTIONS]" in output  # the routes it derived from function_app
        assert "expire_sessions: timerTrigger '0 */5 * * * *'" in output
        assert "No model endpoint set: serving the echo model at http://127.0.0.1:" in output


def test_readme_session_on_the_echo_model(devserver: str):
    with httpx2.Client(base_url=f"{devserver}/api", timeout=30) as http:
        assert http.get("/health").json()["model"] == "openai"  # the echo model, as an OpenAI-compatible server
        session = http.post("/agents/shopping/sessions", json={}).json()
        url = f"/agents/shopping/sessions/{session['session_id']}/messages"
        first = http.post(url, json={"message": "My name is Alice."}).json()
        assert first["text"].startswith("[echo model] ")
        second = http.post(url, json={"message": "What is my name?"}).json()
        assert '"My name is Alice." | "What is my name?"' in second["text"]
        with http.stream(
            "POST", url, json={"message": "search_products(boots)"}, headers={"Accept": "text/event-stream"}
        ) as stream:
            body = "".join(stream.iter_text())
        assert "event: tool_call" in body
        assert "event: done" in body
        history = http.get(url).json()["messages"]
        assert len(history) == 8  # 2 + 2 + (user, tool call, tool result, reply)
        assert http.delete(f"/agents/shopping/sessions/{session['session_id']}").status_code == 204
        assert http.get(url).status_code == 404


def test_importing_the_function_app_is_cheap():
    """Nothing slow at import time: no clients, no connections, no settings read until the first request."""
    code = (
        "import function_app\n"
        "assert function_app.app.api.runtime.built is None\n"
        "print(len(function_app.app.get_functions()))\n"
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AZURE_", "OPENAI_", "AGENT_", "SessionStorage"))}
    proc = subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "10"  # nine routes and the timer, indexed without any settings
