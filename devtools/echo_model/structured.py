"""Structured output: a JSON value made deterministically from a `json_schema` text format.

Strings carry the echo text (what the reply would have said) unless an enum, const or format fixes them;
numbers are their minimum (else 0), booleans true, arrays hold `max(minItems, 1)` items, objects every
property; `$ref` into `$defs`/`definitions`, `anyOf`/`oneOf` (the first non-null branch) and `allOf` are
followed. `pattern` is not honoured. With `strict: true` the schema is first checked by the rules the real
service enforces (an object at the root; every object with `additionalProperties: false` and all of its
properties required) and refused with its 400 `invalid_json_schema` error otherwise.
"""

from __future__ import annotations

from typing import Any, NoReturn

from .errors import JSON, ApiError

_MAX_DEPTH = 12  # recursive schemas: beyond this, optional branches are null and arrays empty
_FORMATS = {
    "date-time": "2000-01-01T00:00:00Z",
    "date": "2000-01-01",
    "time": "00:00:00Z",
    "duration": "P1D",
    "email": "echo@example.com",
    "hostname": "example.com",
    "ipv4": "127.0.0.1",
    "ipv6": "::1",
    "uri": "https://example.com/echo",
    "uuid": "00000000-0000-4000-8000-000000000000",
}


def json_schema_format(body: JSON) -> JSON | None:
    """The request's `text.format` when it asks for a JSON schema (checked), else None."""
    text = body.get("text")
    text_format = text.get("format") if isinstance(text, dict) else None
    if not isinstance(text_format, dict) or text_format.get("type") != "json_schema":
        return None
    name = text_format.get("name")
    if not isinstance(name, str) or not name:
        message = "Missing required parameter: 'text.format.name'."
        raise ApiError(400, message, param="text.format.name", code="missing_required_parameter")
    schema = text_format.get("schema")
    if not isinstance(schema, dict):
        message = "Missing required parameter: 'text.format.schema'."
        raise ApiError(400, message, param="text.format.schema", code="missing_required_parameter")
    if text_format.get("strict") is True:
        _check_strict(schema, name)
    return text_format


def value_for(schema: JSON, text: str) -> Any:
    """A value valid under `schema`, with `text` in its free string fields."""
    return _Generator(schema, text).value(schema, 0)


class _Generator:
    def __init__(self, root: JSON, text: str) -> None:
        self.root = root
        self.text = text

    def value(self, schema: object, depth: int) -> Any:
        if not isinstance(schema, dict):
            return self.text  # `true` or a missing schema: anything goes
        if "$ref" in schema:
            return self.value(self._resolve(str(schema["$ref"])), depth + 1)
        if "const" in schema:
            return schema["const"]
        if isinstance(schema.get("enum"), list) and schema["enum"]:
            return schema["enum"][0]
        for key in ("anyOf", "oneOf"):
            if isinstance(branches := schema.get(key), list) and branches:
                return self.value(self._branch(branches, depth), depth + 1)
        if isinstance(parts := schema.get("allOf"), list):
            return self.value(_merge([schema, *parts]), depth + 1)
        kind = schema.get("type")
        if isinstance(kind, list):
            kind = next((k for k in kind if k != "null"), "null")
        if kind == "object" or (kind is None and "properties" in schema):
            properties = schema.get("properties") or {}
            return {name: self.value(sub, depth + 1) for name, sub in properties.items()}
        if kind == "array" or (kind is None and "items" in schema):
            return self._array(schema, depth)
        if kind in ("integer", "number"):
            return _number(schema, integer=kind == "integer")
        if kind == "boolean":
            return True
        if kind == "null":
            return None
        return self._string(schema)

    def _resolve(self, ref: str) -> JSON:
        node: Any = self.root
        if not ref.startswith("#"):
            raise ApiError(400, f"Only local $ref are supported, not {ref!r}.", param="text.format.schema")
        for step in filter(None, ref[1:].split("/")):
            key = step.replace("~1", "/").replace("~0", "~")
            if not isinstance(node, dict) or key not in node:
                raise ApiError(400, f"Unresolvable $ref {ref!r}.", param="text.format.schema")
            node = node[key]
        return node if isinstance(node, dict) else {}

    def _branch(self, branches: list[Any], depth: int) -> Any:
        def is_null(branch: Any) -> bool:
            return isinstance(branch, dict) and branch.get("type") == "null"

        if depth >= _MAX_DEPTH:
            return next((b for b in branches if is_null(b)), branches[0])
        return next((b for b in branches if not is_null(b)), branches[0])

    def _array(self, schema: JSON, depth: int) -> list[Any]:
        low = int(schema.get("minItems", 0))
        count = low if depth >= _MAX_DEPTH else max(low, 1)
        if isinstance(high := schema.get("maxItems"), int):
            count = min(count, high)
        return [self.value(schema.get("items"), depth + 1) for _ in range(count)]

    def _string(self, schema: JSON) -> str:
        if isinstance(schema.get("format"), str) and schema["format"] in _FORMATS:
            return _FORMATS[schema["format"]]
        text = self.text
        if isinstance(low := schema.get("minLength"), int) and len(text) < low:
            text += "." * (low - len(text))
        if isinstance(high := schema.get("maxLength"), int):
            text = text[:high]
        return text


def _merge(schemas: list[Any]) -> JSON:
    """allOf as one schema: properties and required joined, other keys from the last that sets them."""
    merged: JSON = {}
    properties: JSON = {}
    required: list[Any] = []
    for schema in schemas:
        if not isinstance(schema, dict):
            continue
        merged.update({k: v for k, v in schema.items() if k not in ("allOf", "properties", "required")})
        properties.update(schema.get("properties") or {})
        required += schema.get("required") or []
    if properties:
        merged["properties"] = properties
        merged["required"] = required
    return merged


def _number(schema: JSON, *, integer: bool) -> int | float:
    value: float = 0
    if isinstance(minimum := schema.get("minimum"), int | float):
        value = minimum
    elif isinstance(above := schema.get("exclusiveMinimum"), int | float):
        value = above + 1
    if isinstance(maximum := schema.get("maximum"), int | float) and value > maximum:
        value = maximum
    if isinstance(below := schema.get("exclusiveMaximum"), int | float) and value >= below:
        value = below - 1
    if isinstance(step := schema.get("multipleOf"), int | float) and step > 0 and value % step:
        value += step - value % step
    return int(value) if integer else float(value)


def _check_strict(schema: JSON, name: str) -> None:
    if schema.get("type") != "object" or "anyOf" in schema:
        _invalid(name, (), f"schema must be a JSON Schema of 'type: \"object\"', got 'type: \"{schema.get('type')}\"'.")
    _check_node(schema, name, ())


def _check_node(node: object, name: str, where: tuple[str, ...]) -> None:
    if isinstance(node, list):
        for index, child in enumerate(node):
            _check_node(child, name, (*where, str(index)))
        return
    if not isinstance(node, dict):
        return
    properties = node.get("properties")
    if node.get("type") == "object" or isinstance(properties, dict):
        if node.get("additionalProperties") is not False:
            _invalid(name, where, "'additionalProperties' is required to be supplied and to be false.")
        keys = list(properties or {})
        required = node.get("required")
        missing = [key for key in keys if not isinstance(required, list) or key not in required]
        if missing:
            _invalid(
                name,
                where,
                "'required' is required to be supplied and to be an array including every key in properties. "
                f"Missing '{missing[0]}'.",
            )
    for key in ("properties", "$defs", "definitions"):
        for child_name, child in (node.get(key) or {}).items():
            _check_node(child, name, (*where, key, child_name))
    for key in ("items", "anyOf", "allOf", "oneOf"):
        if key in node:
            _check_node(node[key], name, (*where, key))


def _invalid(name: str, where: tuple[str, ...], problem: str) -> NoReturn:
    message = f"Invalid schema for response_format '{name}': In context={where!r}, {problem}"
    raise ApiError(400, message, param="text.format.schema", code="invalid_json_schema")
