"""AgentSession: a conversation's ids and mutable state, serializable to JSON with typed values intact.

How typed state values are stored and found again (the one rule, used by `to_dict` and `from_dict`):

- JSON data (str, int, float, bool, None, lists, dicts with str keys) is stored as is. A tuple is stored
  as `{"$type": "tuple", "value": [...]}`; a plain dict that has a `"$type"` key of its own as
  `{"$type": "dict", "value": {...}}`.
- A pydantic model, or an object with `to_dict()` and a classmethod `from_dict()`, is stored as
  `{"$type": TAG, "value": ...}`. TAG is the one given to `register_state_type(cls, tag)`, else
  `module.qualname` of its class (then registered under that tag on first use).
- Decoding a TAG finds the class in the registry first. Otherwise the tag is read as `module.qualname`
  and looked up in a module that is **already imported** (`sys.modules`); decoding never imports
  anything, so stored data cannot make the process load code. A class found that way is registered.
- So, in a fresh process, a session holding a type of yours decodes only after your module is imported
  or the class registered; until then `from_dict` raises `SessionSerializationError` naming the tag.
  `agent_core.Message` and `agent_core.Content` are registered by agent_core itself.
- Anything else fails loudly at `to_dict()`, naming the path of the value in the state.
"""

from __future__ import annotations

import sys
import uuid
from collections.abc import Mapping
from typing import Any, TypeGuard

from pydantic import BaseModel

from .exceptions import AgentInputError, SessionSerializationError
from .messages import Content, Message

JSONValue = Any  # what json.dumps accepts: dict[str, ...] | list[...] | str | int | float | bool | None

TYPE_KEY = "$type"
_SESSION_TYPE = "session"
SESSION_FORMAT = "agent_core/1"
"""Marks `to_dict()` output; a dict without it is read as Agent Framework 1.x's format (or an older one of ours)."""


ServiceSessionId = str | Mapping[str, Any]
"""A service-managed id: a `conv_…` / `resp_…` string, or a mapping (kept as given; see `service_id_text`)."""


def service_id_text(value: ServiceSessionId | None) -> str | None:
    """The conversation or response id a run continues: the string itself, or a mapping's
    `conversation_id` / `response_id` / `id`. Any other mapping raises `AgentInputError` naming its keys."""
    if value is None or isinstance(value, str):
        return value
    for key in ("conversation_id", "response_id", "id"):
        if isinstance(value.get(key), str):
            text: str = value[key]
            return text
    raise AgentInputError(f"service_session_id {dict(value)!r} names no conversation_id, response_id or id to continue")


_registry: dict[str, type[Any]] = {}
_tags: dict[type[Any], str] = {}


def register_state_type(cls: type[Any], tag: str | None = None, *, type_id: str | None = None) -> type[Any]:
    """Register a type that may live in `session.state` under a stable tag (default: module.qualname).

    Registering is optional for classes importable from an already-loaded module; a fixed tag keeps
    stored sessions readable after the class moves. `type_id=` is Agent Framework 1.x's name for the tag
    (and how its sessions name the type). Usable as a decorator.
    """
    tag = tag or type_id
    if not (_is_model_type(cls) or _has_dict_protocol(cls)):
        raise TypeError(f"{cls.__name__} is neither a pydantic model nor has to_dict()/from_dict()")
    tag = tag or f"{cls.__module__}.{cls.__qualname__}"
    if _registry.get(tag, cls) is not cls:
        raise ValueError(f"state type tag {tag!r} is already registered for {_registry[tag].__qualname__}")
    _registry[tag] = cls
    _tags[cls] = tag
    return cls


def _is_model_type(cls: type[Any]) -> TypeGuard[type[BaseModel]]:
    return isinstance(cls, type) and issubclass(cls, BaseModel)


def _has_dict_protocol(cls: type[Any]) -> bool:
    return callable(getattr(cls, "to_dict", None)) and callable(getattr(cls, "from_dict", None))


def _tag_of(cls: type[Any]) -> str:
    tag = _tags.get(cls)
    if tag is None:
        register_state_type(cls)
        tag = _tags[cls]
    return tag


def _resolve(tag: str) -> type[Any]:
    """Find the class for a tag by the rule in this module's docstring."""
    cls = _registry.get(tag)
    if cls is not None:
        return cls
    module_name, _, qualname = tag.rpartition(".")
    while module_name:
        module = sys.modules.get(module_name)
        if module is not None:
            obj: Any = module
            for part in qualname.split("."):
                obj = getattr(obj, part, None)
            if isinstance(obj, type) and (_is_model_type(obj) or _has_dict_protocol(obj)):
                return register_state_type(obj, tag)
            break
        module_name, _, head = module_name.rpartition(".")
        qualname = f"{head}.{qualname}"
    raise SessionSerializationError(
        f"unknown state type {tag!r}: import its module or call register_state_type() before from_dict()"
    )


def encode_value(value: Any, path: str = "state") -> JSONValue:
    """Turn a state value into JSON data; typed values get a `$type` tag. Fails loudly on anything else."""
    if value is None or isinstance(value, (str, bool, int, float)):
        return value
    if isinstance(value, list):
        return [encode_value(v, f"{path}[{i}]") for i, v in enumerate(value)]
    if isinstance(value, dict):
        out: dict[str, JSONValue] = {}
        for key, v in value.items():
            if not isinstance(key, str):
                raise SessionSerializationError(f"{path}: dict keys must be str, got {type(key).__name__}")
            out[key] = encode_value(v, f"{path}.{key}")
        # A plain dict that happens to use our tag key is wrapped so it cannot be mistaken for a typed value.
        return {TYPE_KEY: "dict", "value": out} if TYPE_KEY in out else out
    if isinstance(value, tuple):
        return {TYPE_KEY: "tuple", "value": [encode_value(v, f"{path}[{i}]") for i, v in enumerate(value)]}
    cls = type(value)
    if isinstance(value, BaseModel):
        return {TYPE_KEY: _tag_of(cls), "value": value.model_dump(mode="json", exclude_defaults=True)}
    if _has_dict_protocol(cls):
        return {TYPE_KEY: _tag_of(cls), "value": encode_value(value.to_dict(), f"{path}<{cls.__name__}>")}
    raise SessionSerializationError(
        f"{path}: cannot serialize {cls.__module__}.{cls.__qualname__}; store JSON data, a pydantic model, "
        "or an object with to_dict()/from_dict()"
    )


def decode_value(data: JSONValue) -> Any:
    """Inverse of `encode_value`."""
    if isinstance(data, list):
        return [decode_value(v) for v in data]
    if not isinstance(data, dict):
        return data
    tag = data.get(TYPE_KEY)
    if tag is None:
        return {k: decode_value(v) for k, v in data.items()}
    if tag == "dict":
        return {k: decode_value(v) for k, v in data["value"].items()}
    if tag == "tuple":
        return tuple(decode_value(v) for v in data["value"])
    cls = _resolve(tag)
    try:
        if _is_model_type(cls):
            return cls.model_validate(data["value"])
        return cls.from_dict(decode_value(data["value"]))
    except Exception as exc:
        raise SessionSerializationError(f"cannot restore {tag!r}: {exc}") from exc


def decode_foreign_value(data: JSONValue, path: str = "state") -> Any:
    """Decode state written by Agent Framework 1.x (inline `"type"` keys) or by an older agent_core (`$type`).

    `{"type": "message", ...}` becomes a `Message` (an unreadable one raises, naming its path); a `"type"`
    registered with `register_state_type(cls, type_id=...)` becomes that class; any other dict stays a plain
    dict, as Agent Framework itself reads it.
    """
    if isinstance(data, list):
        return [decode_foreign_value(v, f"{path}[{i}]") for i, v in enumerate(data)]
    if not isinstance(data, dict):
        return data
    if TYPE_KEY in data:
        return decode_value(data)
    kind = data.get("type")
    if kind == "message" and "contents" in data:
        try:
            return Message.from_dict(data)
        except AgentInputError as exc:
            raise SessionSerializationError(f"{path}: {exc}") from exc
    cls = _registry.get(kind) if isinstance(kind, str) else None
    if cls is not None:
        fields = {k: v for k, v in data.items() if k != "type"}
        try:
            return cls.model_validate(fields) if _is_model_type(cls) else cls.from_dict(fields)
        except Exception as exc:
            raise SessionSerializationError(f"{path}: cannot restore {kind!r}: {exc}") from exc
    return {k: decode_foreign_value(v, f"{path}.{k}") for k, v in data.items()}


def snapshot_state(value: Any) -> Any:
    """Copy the dicts and lists of a state tree (not the objects in them): cheap undo for a failed run."""
    if isinstance(value, dict):
        return {k: snapshot_state(v) for k, v in value.items()}
    if isinstance(value, list):
        return [snapshot_state(v) for v in value]
    return value


register_state_type(Message, "agent_core.Message")
register_state_type(Content, "agent_core.Content")


def new_session_id() -> str:
    """A random id with 122 random bits (UUID4), safe to use as a storage key."""
    return str(uuid.uuid4())


class AgentSession:
    """A conversation: its id, the service-managed id (if the service keeps history), and provider state."""

    def __init__(
        self,
        session_id: str | None = None,
        service_session_id: ServiceSessionId | None = None,
        state: dict[str, Any] | None = None,
    ) -> None:
        self.session_id: str = session_id or new_session_id()
        self.service_session_id: ServiceSessionId | None = service_session_id
        self.state: dict[str, Any] = state if state is not None else {}

    def __repr__(self) -> str:
        return f"AgentSession(session_id={self.session_id!r}, service_session_id={self.service_session_id!r})"

    def to_dict(self) -> dict[str, JSONValue]:
        """JSON-ready dict; raises SessionSerializationError if a state value cannot be serialized."""
        return {
            "type": _SESSION_TYPE,
            "format": SESSION_FORMAT,
            "session_id": self.session_id,
            "service_session_id": self.service_session_id,
            "state": encode_value(self.state),
        }

    @classmethod
    def from_dict(cls, data: dict[str, JSONValue]) -> AgentSession:
        """Read `to_dict()` output, or a session Agent Framework 1.x wrote (see `decode_foreign_value`).

        Raises `SessionSerializationError` naming what it could not read, so nothing breaks later in a run.
        """
        if not isinstance(data, dict) or not isinstance(data.get("session_id"), str):
            raise SessionSerializationError("not a serialized AgentSession: 'session_id' is missing")
        raw_state = data.get("state") or {}
        ours = data.get("format") == SESSION_FORMAT
        state = decode_value(raw_state) if ours else decode_foreign_value(raw_state)
        if not isinstance(state, dict):
            raise SessionSerializationError("a serialized AgentSession's 'state' must be an object")
        service_session_id = data.get("service_session_id")
        if service_session_id is not None and not isinstance(service_session_id, (str, dict)):
            raise SessionSerializationError(
                "a serialized AgentSession's 'service_session_id' must be a string or object"
            )
        return cls(data["session_id"], service_session_id, state)
