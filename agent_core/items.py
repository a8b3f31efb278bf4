"""Messages as Responses API input items: the one conversion the run loop does, once per message per run."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from .messages import Content, Message
from .model_api import InputItem


def to_input_items(messages: Iterable[Message]) -> list[InputItem]:
    """Messages as Responses API input items, in content order: reasoning (only with its encrypted content, the
    form a stateless call can take back), the message's text and images/files, function calls and results.
    Approval and error contents are local bookkeeping and are not sent."""
    items: list[InputItem] = []
    for message in messages:
        media = [c for c in message.contents if c.type in ("uri", "data")]
        for c in message.contents:
            if c.type == "text_reasoning" and c.protected_data:
                items.append(_reasoning_item(c))
        text = message.text
        if message.role != "tool" and (text or media):
            if media and message.role != "assistant":
                items.append({"type": "message", "role": message.role, "content": _parts(message.contents)})
            elif text:
                items.append({"type": "message", "role": message.role, "content": text})
        for c in message.contents:
            if c.type == "function_call":
                items.append({"type": "function_call", "call_id": c.call_id, "name": c.name, "arguments": c.arguments})
            elif c.type == "function_result":
                items.append({"type": "function_call_output", "call_id": c.call_id, "output": c.result or ""})
    return items


def _reasoning_item(c: Content) -> InputItem:
    item: InputItem = {"type": "reasoning", "summary": [], "encrypted_content": c.protected_data}
    if c.id:
        item["id"] = c.id
    if c.text:
        item["summary"] = [{"type": "summary_text", "text": c.text}]
    return item


def _parts(contents: Iterable[Content]) -> list[dict[str, Any]]:
    """Text, images (`input_image`) and other files (`input_file`, by URL or as a data URI) of a user message."""
    parts: list[dict[str, Any]] = []
    for c in contents:
        if c.type == "text" and c.text:
            parts.append({"type": "input_text", "text": c.text})
        elif c.type in ("uri", "data") and c.uri:
            if (c.media_type or "").startswith("image/"):
                parts.append({"type": "input_image", "image_url": c.uri, "detail": "auto"})
            elif c.type == "data":
                parts.append({"type": "input_file", "file_data": c.uri, "filename": c.name or "file"})
            else:
                parts.append({"type": "input_file", "file_url": c.uri})
    return parts
