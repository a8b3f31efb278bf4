"""Structured output: a pydantic model or a JSON schema as a strict `json_schema` text format, and the reply
validated against it (`response.value`)."""

from __future__ import annotations

import copy
import json
from typing import Any, TypeAlias

from pydantic import BaseModel, ValidationError

from .exceptions import AgentInputError, StructuredOutputError

ResponseFormat: TypeAlias = type[BaseModel] | dict[str, Any]


def check_response_format(value: Any) -> ResponseFormat:
    if isinstance(value, type) and issubclass(value, BaseModel):
        return value
    if isinstance(value, dict) and (value.get("type") == "object" or "properties" in value):
        return value
    raise AgentInputError("options['response_format'] must be a pydantic model class or a JSON schema (an object)")


def text_format(response_format: ResponseFormat) -> dict[str, Any]:
    """The Responses API `text.format` for it: strict JSON schema (every object closed, every property required)."""
    if isinstance(response_format, dict):
        name = str(response_format.get("title") or "response")
        schema = copy.deepcopy(response_format)
    else:
        name = response_format.__name__
        schema = response_format.model_json_schema()
    return {"type": "json_schema", "name": _safe_name(name), "schema": _strict(schema), "strict": True}


def parse_value(response_format: ResponseFormat, text: str) -> Any:
    """The reply as the validated model (or JSON object for a schema dict); `StructuredOutputError` if it is not."""
    try:
        if isinstance(response_format, dict):
            value = json.loads(text)
            if not isinstance(value, dict):
                raise ValueError("the reply is not a JSON object")
            missing = [k for k in response_format.get("required", []) if k not in value]
            if missing:
                raise ValueError(f"the reply lacks required properties {missing}")
            return value
        return response_format.model_validate_json(text)
    except (ValueError, ValidationError) as exc:
        raise StructuredOutputError(f"the model's reply does not match the response format: {exc}", text=text) from exc


def _strict(schema: Any) -> Any:
    """Strict mode's rules: no defaults, objects closed, all properties required."""
    if isinstance(schema, list):
        return [_strict(v) for v in schema]
    if not isinstance(schema, dict):
        return schema
    out: dict[str, Any] = {}
    for key, value in schema.items():
        if key in ("properties", "$defs", "definitions") and isinstance(value, dict):
            out[key] = {name: _strict(sub) for name, sub in value.items()}
        elif key != "default":
            out[key] = _strict(value)
    if out.get("type") == "object" or "properties" in out:
        out["additionalProperties"] = False
        out["required"] = list(out.get("properties", {}))
    return out


def _safe_name(name: str) -> str:
    cleaned = "".join(c if c.isalnum() or c in "_-" else "_" for c in name)
    return cleaned[:64] or "response"
