"""AgentSession: ids, JSON round trips, typed state values, loud failures."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from pydantic import BaseModel, ValidationError

from agent_core import AgentSession, Message, SessionSerializationError, register_state_type


class Preferences(BaseModel):
    theme: str
    languages: list[str]


class Counter:
    def __init__(self, value: int) -> None:
        self.value = value

    def to_dict(self) -> dict[str, Any]:
        return {"value": self.value}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Counter:
        return cls(data["value"])


@register_state_type
class Tagged(BaseModel):
    x: int


@dataclass
class NotSerializable:
    x: int


def roundtrip(session: AgentSession) -> AgentSession:
    return AgentSession.from_dict(json.loads(json.dumps(session.to_dict())))


def test_default_ids_are_random_uuids():
    a, b = AgentSession(), AgentSession()
    assert a.session_id != b.session_id
    assert len(a.session_id) == 36
    assert a.service_session_id is None
    assert a.state == {}


def test_roundtrip_keeps_ids_and_plain_state():
    session = AgentSession("s-1", "conv_abc", {"count": 3, "nested": {"a": [1, 2.5, None, True]}})
    restored = roundtrip(session)
    assert (restored.session_id, restored.service_session_id) == ("s-1", "conv_abc")
    assert restored.state == {"count": 3, "nested": {"a": [1, 2.5, None, True]}}


def test_typed_values_come_back_as_the_same_type():
    session = AgentSession(
        state={
            "prefs": Preferences(theme="dark", languages=["en", "fr"]),
            "counter": Counter(7),
            "history": {"messages": [Message(role="user", text="hi")]},
            "pair": (1, "two"),
            "tagged": Tagged(x=1),
        }
    )
    restored = roundtrip(session).state
    assert restored["prefs"] == Preferences(theme="dark", languages=["en", "fr"])
    assert isinstance(restored["counter"], Counter)
    assert restored["counter"].value == 7
    assert restored["history"]["messages"][0].text == "hi"
    assert restored["pair"] == (1, "two")
    assert restored["tagged"] == Tagged(x=1)


def test_tags_are_stable_and_compact():
    data = AgentSession(state={"m": Message(role="user", text="hi")}).to_dict()
    assert data["state"]["m"] == {
        "$type": "agent_core.Message",
        "value": {"role": "user", "contents": [{"type": "text", "text": "hi"}]},
    }


def test_plain_dict_using_the_tag_key_is_not_mistaken_for_a_typed_value():
    session = AgentSession(state={"user": {"$type": "os.system", "value": "rm -rf /"}})
    assert roundtrip(session).state == {"user": {"$type": "os.system", "value": "rm -rf /"}}


def test_unserializable_value_fails_loudly_at_to_dict():
    session = AgentSession(state={"bad": {"inner": NotSerializable(1)}})
    with pytest.raises(SessionSerializationError, match=r"state\.bad\.inner.*NotSerializable"):
        session.to_dict()
    with pytest.raises(SessionSerializationError, match="dict keys must be str"):
        AgentSession(state={"bad": {1: "x"}}).to_dict()


def test_unknown_type_tag_fails_loudly_at_from_dict():
    data = {"session_id": "s", "state": {"x": {"$type": "nowhere.Missing", "value": {}}}}
    with pytest.raises(SessionSerializationError, match=r"unknown state type 'nowhere\.Missing'"):
        AgentSession.from_dict(data)
    with pytest.raises(SessionSerializationError, match="session_id"):
        AgentSession.from_dict({"state": {}})


def test_validation_of_stored_messages_skips_message_init():
    """`Message.__init__` (which takes `text=`) is for Python callers only: pydantic's private
    `__pydantic_custom_init__ = False` flag keeps validation from running it. This fails if an upgrade changes that."""
    assert Message(role="user", text="hi").contents[0].text == "hi"  # the Python constructor takes text=
    with pytest.raises(ValidationError, match="text"):
        Message.model_validate({"role": "user", "text": "hi"})  # validation does not: plain fields only
    stored = {"role": "user", "contents": [{"type": "text", "text": "hi"}]}
    assert Message.model_validate(stored) == Message(role="user", text="hi")
    assert Message.model_validate_json(json.dumps(stored)) == Message(role="user", text="hi")


COLD_START = """
import json, sys
from agent_core import AgentSession, SessionSerializationError

data = json.loads(sys.stdin.read())
if sys.argv[1] == "import-first":
    import tests.test_sessions
try:
    state = AgentSession.from_dict(data).state
except SessionSerializationError as exc:
    print(json.dumps({"error": str(exc), "imported": "tests.test_sessions" in sys.modules}))
else:
    found = {k: [type(v).__module__ + "." + type(v).__qualname__, repr(v)] for k, v in state.items()}
    print(json.dumps({"state": found}))
"""


class Pinned(BaseModel):
    x: int


register_state_type(Pinned, "pinned.Tagged")


@pytest.mark.parametrize(
    ("value", "mode", "expected"),
    [
        (
            Message(role="user", text="hi"),
            "cold",
            {"state": {"v": ["agent_core.messages.Message", repr(Message(role="user", text="hi"))]}},
        ),
        (
            Preferences(theme="dark", languages=[]),
            "import-first",
            {"state": {"v": ["tests.test_sessions.Preferences", "Preferences(theme='dark', languages=[])"]}},
        ),
        (Pinned(x=1), "import-first", {"state": {"v": ["tests.test_sessions.Pinned", "Pinned(x=1)"]}}),
        (
            Preferences(theme="dark", languages=[]),
            "cold",
            {
                "error": "unknown state type 'tests.test_sessions.Preferences': import its module or call "
                "register_state_type() before from_dict()",
                "imported": False,
            },
        ),
        (
            Pinned(x=1),
            "cold",
            {
                "error": "unknown state type 'pinned.Tagged': import its module or call register_state_type() "
                "before from_dict()",
                "imported": False,
            },
        ),
    ],
    ids=["agent-core-types", "module-qualname", "pinned-tag", "module-not-imported", "pinned-not-registered"],
)
def test_cold_start_decoding_follows_the_resolution_rule(value: Any, mode: str, expected: dict[str, Any]):
    """A fresh process decodes a stored session: agent_core's own types always, yours once their module is imported
    (decoding itself never imports anything)."""
    stored = json.dumps(AgentSession("s", state={"v": value}).to_dict())
    root = Path(__file__).parents[1]
    done = subprocess.run(
        [sys.executable, "-c", COLD_START, mode],
        input=stored,
        capture_output=True,
        text=True,
        cwd=root,
        env={**os.environ, "PYTHONPATH": str(root)},
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout) == expected
