"""Every code example of the reference page runs with only `agent_framework` -> `agent_core` in its imports."""

from __future__ import annotations

import ast
import contextlib
import io
import json
import os
import sqlite3
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

import agent_core
from devtools.echo_model import EchoModel, EchoModelServer

from . import reference
from .helpers import seen_user_messages
from .reference import examples

PAGE = Path(reference.__file__).with_name("agent-sessions-reference.md").read_text()


def port(source: str) -> str:
    """The one change the examples get: the package name in their imports."""
    return source.replace("from agent_framework", "from agent_core")


async def run_example(source: str, namespace: dict[str, Any]) -> str:
    """Execute an example (top-level await allowed) in `namespace`; return what it printed."""
    code = compile(port(source), "<example>", "exec", flags=ast.PyCF_ALLOW_TOP_LEVEL_AWAIT)
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        result = eval(code, namespace)
        if result is not None:
            await result
    return out.getvalue()


class AsyncSqlite:
    """The `db` the page's DatabaseHistoryProvider expects: async query/execute over a real SQLite database."""

    def __init__(self) -> None:
        self.conn = sqlite3.connect(":memory:")
        self.conn.row_factory = sqlite3.Row
        self.conn.execute("CREATE TABLE messages (session_id TEXT, role TEXT, content TEXT)")

    async def query(self, sql: str, *params: Any) -> list[sqlite3.Row]:
        return self.conn.execute(sql, params).fetchall()

    async def execute(self, sql: str, *params: Any) -> None:
        self.conn.execute(sql, params)


class UserService:
    async def get_user(self, user_id: str) -> SimpleNamespace:
        return SimpleNamespace(name="Alice", preferences="sci-fi films")


@pytest.fixture
def azure_env(monkeypatch: pytest.MonkeyPatch, model_server: EchoModelServer) -> dict[str, str]:
    """Settings the examples read, pointing at the echo model as a Foundry project (key auth)."""
    env = {
        "AZURE_AI_PROJECT_ENDPOINT": model_server.base_url.removesuffix("/v1") + "/api/projects/demo",
        "AZURE_OPENAI_RESPONSES_DEPLOYMENT_NAME": "gpt-test",
        "AZURE_OPENAI_API_KEY": "test-key",
    }
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    return env


@pytest.fixture
def ns(azure_env: dict[str, str]) -> dict[str, Any]:
    """A fresh namespace with what the page's examples take from their surroundings."""
    return {
        "__name__": "example",
        "json": json,
        "Sequence": Sequence,
        "Agent": agent_core.Agent,
        "AgentSession": agent_core.AgentSession,
        "BaseContextProvider": agent_core.BaseContextProvider,
        "db": AsyncSqlite(),
        "user_service": UserService(),
    }


def test_examples_are_verbatim_copies_of_the_page():
    page_lines = [line.strip() for line in PAGE.splitlines()]
    for name in dir(examples):
        if name.isupper():
            for line in getattr(examples, name).strip().splitlines():
                assert line.strip() in page_lines, f"{name}: {line!r} is not on the page"


async def test_basic_session(ns: dict[str, Any], model: EchoModel):
    printed = await run_example(examples.BASIC_SESSION, ns)
    first, second = printed.strip().splitlines()
    assert seen_user_messages(first) == ["My name is Alice and I love hiking."]
    assert seen_user_messages(second) == ["My name is Alice and I love hiking.", "What do you remember about me?"]
    assert model.requests[-1].path.endswith("/api/projects/demo/openai/v1/responses")


async def test_custom_id_and_automatic_history(ns: dict[str, Any], model: EchoModel):
    await run_example(examples.BASIC_SESSION, ns)
    await run_example(examples.CUSTOM_ID, ns)
    assert (ns["session"].session_id, ns["session"].service_session_id) == ("local-session-789", "azure-thread-abc123")
    await run_example(examples.AUTOMATIC_HISTORY, ns)
    messages = ns["session"].state["in_memory"]["messages"]
    assert [m.text for m in messages if m.role == "user"] == [
        "Hello, I'm learning Python",
        "Can you recommend some resources?",
    ]
    assert seen_user_messages(messages[-1].text) == ["Hello, I'm learning Python", "Can you recommend some resources?"]


async def test_custom_history_provider_and_storage_options(ns: dict[str, Any]):
    await run_example(examples.BASIC_SESSION, ns)  # defines `client`, as the page does before this example
    await run_example(examples.CUSTOM_HISTORY_PROVIDER, ns)
    agent, db = ns["agent"], ns["db"]
    session = agent.create_session()
    await agent.run("I like tea", session=session)
    reply = await agent.run("What do I like?", session=session)
    assert seen_user_messages(reply.text) == ["I like tea", "What do I like?"]
    rows = db.conn.execute("SELECT role FROM messages WHERE session_id = ?", (session.session_id,)).fetchall()
    assert [r["role"] for r in rows] == ["user", "assistant", "user", "assistant"]
    assert "in_memory" not in session.state  # the database provider replaced the automatic one

    await run_example(examples.CONFIGURE_STORAGE, ns)
    provider = ns["history_provider"]
    assert (provider.source_id, provider.load_messages, provider.store_context_messages) == ("database", True, False)
    await run_example("history_provider.store_inputs = False", ns)
    agent = ns["Agent"](client=ns["client"], context_providers=[provider])
    other = agent.create_session()
    await agent.run("not stored", session=other)
    rows = db.conn.execute("SELECT role FROM messages WHERE session_id = ?", (other.session_id,)).fetchall()
    assert [r["role"] for r in rows] == ["assistant"]


async def test_session_state_and_serialization(ns: dict[str, Any], tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    monkeypatch.chdir(tmp_path)
    await run_example(examples.BASIC_SESSION, ns)
    await run_example(examples.SESSION_STATE, ns)
    await ns["agent"].run("We discussed trail maps", session=ns["session"])
    await run_example(examples.SERIALIZATION, ns)
    restored = ns["restored_session"]
    assert restored.state["user_preferences"] == {"theme": "dark", "language": "en"}
    assert restored.state["conversation_count"] == 0
    last = restored.state["in_memory"]["messages"][-1]
    assert seen_user_messages(last.text) == ["We discussed trail maps", "What were we discussing?"]
    assert (tmp_path / "session.json").exists()


async def test_context_provider(ns: dict[str, Any], model: EchoModel):
    await run_example(examples.BASIC_SESSION, ns)
    await run_example(examples.CONTEXT_PROVIDER, ns)
    sent = model.responses_requests()[-1]
    assert sent["instructions"] == "User profile: Alice, preferences: sci-fi films"
    assert seen_user_messages(ns["result"].text)[-1] == "What should I watch tonight?"


async def test_provider_lifecycle(ns: dict[str, Any]):
    await run_example(examples.BASIC_SESSION, ns)
    await run_example(examples.PROVIDER_LIFECYCLE, ns)
    agent = ns["Agent"](client=ns["client"], context_providers=[ns["MyProvider"]("mine")])
    session = agent.create_session()
    await agent.run("hi", session=session)
    assert session.state["mine"] == {}  # its state namespace was created on first use
    assert "in_memory" in session.state


async def test_service_managed(ns: dict[str, Any], model: EchoModel):
    model.seed_response("azure-thread-abc123", ["Earlier on the service"])
    await run_example(examples.BASIC_SESSION, ns)
    await run_example(examples.SERVICE_MANAGED, ns)
    assert ns["session"].service_session_id == "azure-thread-abc123"
    assert seen_user_messages(ns["result"].text) == ["Earlier on the service", "Hello"]
    sent = model.responses_requests()[-1]
    assert sent["previous_response_id"] == "azure-thread-abc123"
    assert len(sent["input"]) == 1


async def test_streaming(ns: dict[str, Any]):
    await run_example(examples.BASIC_SESSION, ns)
    printed = await run_example(examples.STREAMING, ns)
    assert seen_user_messages(printed) == ["Tell me a story"]
    assert seen_user_messages(ns["result"].text) == ["Tell me a story", "What happened next?"]


def test_complete_example_as_a_script(azure_env: dict[str, str], tmp_path: Path, model: EchoModel):
    script = tmp_path / "shopping.py"
    script.write_text(port(examples.COMPLETE_EXAMPLE))
    proc = subprocess.run(
        [sys.executable, str(script)],
        input="search_products(hiking boots)\ncheck_inventory(B-42)\nexit\n",
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, **azure_env, "PYTHONPATH": str(Path(agent_core.__file__).parents[1])},
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    assert "Shopping Assistant (type 'exit' to quit)" in proc.stdout
    assert "Tool results: search_products -> Found 3 products matching 'hiking boots'" in proc.stdout
    assert "Tool results: check_inventory -> Product B-42 has 42 units in stock" in proc.stdout
