"""Input items: their canonical stored form, the text the echo model reads from them, and its token estimate.

Images and files are read as a short description (`[image: image/png, 68 bytes]`, `[file: a.pdf,
application/pdf, 1234 bytes]`, or their URL / file id), so replies show from the outside what was sent.
Tokens are estimated as whitespace-separated words of that text: the unit of `usage` and of the context window.
"""

from __future__ import annotations

import base64
import binascii
import json
import re
import secrets

from .errors import JSON, ApiError

_DATA_URI = re.compile(r"data:(?P<type>[\w.+-]+/[\w.+-]+)?(?P<params>(?:;[^;,]*)*?);base64,(?P<data>.*)", re.DOTALL)


def new_id(prefix: str) -> str:
    return f"{prefix}_{secrets.token_hex(16)}"


def words(text: str) -> int:
    return len(text.split())


def normalise_input(value: object, param: str = "input") -> list[JSON]:
    """A string or a list of items, as canonical items (typed, with ids, message content as a list of parts)."""
    if isinstance(value, str):
        return [normalise_item({"role": "user", "content": value}, param)]
    if isinstance(value, list):
        return [normalise_item(item, param) for item in value]
    raise ApiError(400, f"'{param}' must be a string or a list of input items.", param=param)


def normalise_item(item: object, param: str = "input") -> JSON:
    if not isinstance(item, dict):
        raise ApiError(400, "Each input item must be a JSON object.", param=param)
    item_type = item.get("type", "message" if "role" in item else None)
    if item_type == "message":
        return _normalise_message(item, param)
    if item_type == "function_call":
        for key in ("call_id", "name", "arguments"):
            if not isinstance(item.get(key), str):
                raise ApiError(400, f"function_call items need a string {key!r}.", param=param)
        return {"id": new_id("fc"), "status": "completed", **item}
    if item_type == "function_call_output":
        if not isinstance(item.get("call_id"), str) or "output" not in item:
            raise ApiError(400, "function_call_output items need 'call_id' and 'output'.", param=param)
        return {"id": new_id("fco"), "status": "completed", **item}
    if isinstance(item_type, str):
        return dict(item)  # other kinds (reasoning, item_reference, ...) are kept as sent
    raise ApiError(400, "Input items need a 'type' or a 'role'.", param=param)


def _normalise_message(item: JSON, param: str) -> JSON:
    role = item.get("role")
    if role not in ("user", "assistant", "system", "developer"):
        raise ApiError(400, f"Invalid message role: {role!r}.", param=param)
    content = item.get("content")
    if isinstance(content, str):
        part: JSON = {"type": "output_text" if role == "assistant" else "input_text", "text": content}
        if role == "assistant":
            part["annotations"] = []
        parts = [part]
    elif isinstance(content, list):
        parts = [dict(p) for p in content if isinstance(p, dict)]
        for p in parts:
            describe_part(p)  # refuse malformed images and files now, as the real API does
    else:
        raise ApiError(400, "Message content must be a string or a list of content parts.", param=param)
    return {
        "type": "message",
        "id": item.get("id") or new_id("msg"),
        "role": role,
        "status": item.get("status") or "completed",
        "content": parts,
    }


def describe_part(part: JSON) -> str:
    """The text the model reads from one content part: text as is, images and files as a description."""
    kind = part.get("type")
    if kind in ("input_text", "output_text") and isinstance(part.get("text"), str):
        return str(part["text"])
    if kind == "refusal" and isinstance(part.get("refusal"), str):
        return str(part["refusal"])
    if kind == "input_image":
        if isinstance(url := part.get("image_url"), str):
            return f"[image: {_describe_url(url, 'image_url')}]"
        if isinstance(file_id := part.get("file_id"), str):
            return f"[image: file {file_id}]"
        raise ApiError(400, "input_image parts need an 'image_url' or a 'file_id'.", param="input")
    if kind == "input_file":
        if isinstance(data := part.get("file_data"), str):
            filename = part.get("filename") or "unnamed"
            return f"[file: {filename}, {_describe_url(data, 'file_data')}]"
        if isinstance(url := part.get("file_url"), str):
            return f"[file: {url}]"
        if isinstance(file_id := part.get("file_id"), str):
            return f"[file: file {file_id}]"
        raise ApiError(400, "input_file parts need 'file_data', 'file_url' or a 'file_id'.", param="input")
    return ""


def _describe_url(url: str, field: str) -> str:
    """`media/type, N bytes` for a base64 data URI (refused when malformed), else the URL itself."""
    if not url.startswith("data:") and field != "file_data":
        return url
    match = _DATA_URI.fullmatch(url)
    if match is None or match.group("type") is None:
        raise ApiError(400, f"Invalid '{field}': expected a base64 data URI with a media type.", param="input")
    try:
        size = len(base64.b64decode(match.group("data"), validate=True))
    except (binascii.Error, ValueError):
        raise ApiError(400, f"Invalid '{field}': the data is not valid base64.", param="input") from None
    return f"{match.group('type')}, {size} bytes"


def message_text(item: JSON) -> str:
    return " ".join(text for part in item.get("content", []) if (text := describe_part(part)))


def output_text(output: object) -> str:
    """The text of a function_call_output's `output` (a string, or a list of content parts)."""
    if isinstance(output, str):
        return output
    if isinstance(output, list):
        return " ".join(describe_part(p) for p in output if isinstance(p, dict))
    return json.dumps(output)


def item_text(item: JSON) -> str:
    kind = item.get("type")
    if kind == "message":
        return message_text(item)
    if kind == "function_call":
        return str(item.get("arguments", ""))
    if kind == "function_call_output":
        return output_text(item.get("output"))
    if kind == "reasoning":
        return " ".join(str(s.get("text", "")) for s in item.get("summary") or [] if isinstance(s, dict))
    return ""


def is_user_message(item: JSON) -> bool:
    return item.get("type") == "message" and item.get("role") == "user"


def estimate_tokens(context: list[JSON], instructions: str | None) -> int:
    """The echo model's token count: words of every item's text plus the instructions."""
    return sum(words(item_text(item)) for item in context) + words(instructions or "")
