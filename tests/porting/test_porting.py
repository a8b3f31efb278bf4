"""The porting suite: Agent Framework 1.x programs (tests/porting/programs.py) run on agent_core with only their
imports switched, and, where bench/.venv has Agent Framework installed, unchanged on Agent Framework too.

Both sides run in their own interpreter (tests/porting/runner.py, which imports nothing of the project) against
the same echo model; each program gets its own URL prefix, so what it sent is read from the model's side.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from devtools.echo_model import EchoModelServer

from .programs import PROGRAMS

ROOT = Path(__file__).resolve().parents[2]
RUNNER = Path(__file__).with_name("runner.py")
MAF_PYTHON = ROOT / "bench" / ".venv" / "bin" / "python"


def ported(source: str) -> str:
    """The one change a program gets for agent_core: the package name in its imports."""
    return source.replace("from agent_framework", "from agent_core")


@dataclass
class Outcome:
    """What a program printed (or raised), and the bodies of the Responses requests it made."""

    stdout: str
    error: str | None
    requests: list[dict[str, Any]] = field(default_factory=list)

    @property
    def lines(self) -> list[str]:
        return self.stdout.strip().splitlines()


def maf_available() -> bool:
    if not MAF_PYTHON.exists():
        return False
    probe = subprocess.run([str(MAF_PYTHON), "-c", "import agent_framework.openai"], capture_output=True, check=False)
    return probe.returncode == 0


def run_side(server: EchoModelServer, side: str) -> dict[str, Outcome]:
    python, programs = (
        (MAF_PYTHON, PROGRAMS) if side == "maf" else (Path(sys.executable), {k: ported(v) for k, v in PROGRAMS.items()})
    )
    env = {**os.environ, "ECHO_ROOT_URL": server.base_url, "PORTING_SIDE": side}
    env["PYTHONPATH"] = str(ROOT) if side == "agent_core" else ""  # Agent Framework's side sees none of ours
    done = subprocess.run(
        [str(python), str(RUNNER)],
        input=json.dumps(programs),
        capture_output=True,
        text=True,
        env=env,
        cwd=ROOT,
        timeout=300,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-4000:]
    results = json.loads(done.stdout.strip().splitlines()[-1])
    outcomes = {name: Outcome(r["stdout"], r["error"]) for name, r in results.items()}
    for request in server.model.requests:
        match = re.search(rf"/{side}/(\w+)/responses$", request.path)
        if match and request.method == "POST" and request.body is not None:
            outcomes[match.group(1)].requests.append(request.body)
    return outcomes


@pytest.fixture(scope="module")
def outcomes(model_server: EchoModelServer) -> dict[str, dict[str, Outcome]]:
    model_server.model.reset()
    sides = {"agent_core": run_side(model_server, "agent_core")}
    if maf_available():
        sides["maf"] = run_side(model_server, "maf")
    return sides


def recap(*said: str) -> str:
    """The echo model's reply to these user messages (without instructions)."""
    return f"I have seen {len(said)} user message(s): " + " | ".join(f'"{s}"' for s in said)


def check_multi_turn(o: Outcome) -> None:
    first, second = o.lines
    assert first == f"Agent: {recap('Tell me a joke about a pirate.')} [instructions: You are good at telling jokes.]"
    assert second.startswith(f"Agent: {recap('Tell me a joke about a pirate.', 'Now add some emojis to the joke.')}")


def check_streaming(o: Outcome) -> None:
    streamed, answered = o.lines
    assert streamed.startswith(f"Agent: {recap('Tell me a story')}")
    assert answered.startswith(f"Agent: {recap('Tell me a story', 'What happened next?')}")
    assert o.requests[0].get("stream") is True


def check_function_tool(o: Outcome) -> None:
    assert o.lines == ["Agent: Tool results: get_weather -> The weather in Amsterdam is cloudy with a high of 15C."]
    [tool] = o.requests[0]["tools"]
    assert tool["parameters"]["properties"]["location"]["description"] == "The location to get the weather for."


def check_approvals(o: Outcome) -> None:
    assert o.lines == [
        'Approval needed: delete_file({"path": "notes.txt"})',
        "Agent: Tool results: delete_file -> deleted notes.txt",
    ]


def check_context_provider(o: Outcome) -> None:
    assert o.stdout.startswith(f"Agent: {recap('What is my name?')} [instructions: Be brief.\nThe user's name is Ada.]")
    assert o.lines[-1] == "runs: 2"


def check_history_provider(o: Outcome) -> None:
    assert o.lines[0].startswith(f"Agent: {recap('I like green tea.', 'What do I like?')}")
    assert o.lines[1] == "stored: ['user', 'assistant', 'user', 'assistant']"
    assert [(r.get("store"), r.get("temperature")) for r in o.requests] == [(False, 0.2), (False, 0.2)]


def check_chat_options(o: Outcome) -> None:
    assert o.stdout.startswith(f"Agent: {recap('Say hello.')} [instructions: Be brief.\nAnswer in French.]")
    [body] = o.requests
    assert (body["max_output_tokens"], body["temperature"], body["top_p"]) == (64, 0.3, 0.9)


def check_max_invocations(o: Outcome) -> None:
    assert o.lines == ["executed: ['a']", "invocation_count: 1"]


def check_invocation_context(o: Outcome) -> None:
    assert o.lines == [
        "Agent: Tool results: add_to_cart -> added apples for u-42",
        "cart: ['apples']",
        "schema: ['item']",
    ]
    assert list(o.requests[0]["tools"][0]["parameters"]["properties"]) == ["item"]


def check_service_session(o: Outcome) -> None:
    assert o.lines[0] == "service id: resp_"
    assert o.lines[1].startswith(f"Agent: {recap('My name is Grace.', 'What is my name?')}")
    _, second = o.requests
    assert second["previous_response_id"].startswith("resp_")
    assert [i.get("role") for i in second["input"]] == ["user"]  # the service keeps the history


def check_resume_session(o: Outcome) -> None:
    assert o.lines == ["same id: True", f"Agent: {recap('Remember the number 7.', 'What number?')}"]


def check_image_input(o: Outcome) -> None:
    assert o.lines[0].startswith(f"Agent: {recap('What do you see? [image: https://example.com/cat.png]')}")
    parts = o.requests[0]["input"][0]["content"]
    assert [p["type"] for p in parts] == ["input_text", "input_image"]
    assert parts[1]["image_url"] == "https://example.com/cat.png"


def check_image_bytes(o: Outcome) -> None:
    assert o.lines[0].startswith(f"Agent: {recap('Describe this. [image: image/png, 33 bytes]')}")  # PNG's size
    image = o.requests[0]["input"][0]["content"][1]
    assert image["type"] == "input_image"
    assert image["image_url"].startswith("data:image/png;base64,iVBORw0KGgo")


def check_run_tools(o: Outcome) -> None:
    assert o.lines == ["Agent: Tool results: get_time -> 12:00 in Oslo"]


def check_usage_and_author(o: Outcome) -> None:
    assert o.lines == ["author: Counter", "role: assistant", "tokens: True", f"Agent: {recap('Count my words please')}"]


def check_messages_in(o: Outcome) -> None:
    assert o.lines == [f"Agent: {recap('First question.', 'Second question.')}"]
    assert [i.get("role") for i in o.requests[0]["input"]] == ["user", "assistant", "user"]


def check_async_with_defaults(o: Outcome) -> None:
    assert o.lines == [f"Agent: {recap('Hello there')} [instructions: You are terse.]"]
    assert o.requests[0]["max_output_tokens"] == 32


def check_structured_output(o: Outcome) -> None:
    assert o.lines[0] == "type: CityInfo"
    assert o.lines[1].startswith(f"city: {recap('Paris has 2 million people.')}")
    assert o.lines[2] == "population: 0"
    text_format = o.requests[0]["text"]["format"]
    assert (text_format["type"], text_format["name"], text_format["strict"]) == ("json_schema", "CityInfo", True)
    assert text_format["schema"]["required"] == ["city", "population"]


CHECKS: dict[str, Callable[[Outcome], None]] = {
    name.removeprefix("check_"): check for name, check in globals().items() if name.startswith("check_")
}


def test_every_program_has_a_check():
    assert sorted(CHECKS) == sorted(PROGRAMS)
    assert len(PROGRAMS) >= 16


@pytest.mark.parametrize("side", ["agent_core", "maf"])
@pytest.mark.parametrize("name", sorted(PROGRAMS))
def test_program(outcomes: dict[str, dict[str, Outcome]], side: str, name: str):
    if side not in outcomes:
        pytest.skip("Agent Framework is not installed here (bench/.venv); the agent_core side ran")
    outcome = outcomes[side][name]
    assert outcome.error is None, outcome.error
    CHECKS[name](outcome)
