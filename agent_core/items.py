"""Messages as Responses API input items: the one conversion the run loop does, once per message per run."""

from __future__ import annotations

from collections.abc import Iterable

from .messages import Message
from .model_api import InputItem


def to_input_items(messages: Iterable[Message]) -> list[InputItem]:
    """Messages as Responses API input items. Approval contents are local bookkeeping and are not sent."""
    items: list[InputItem] = []
    for message in messages:
        text = message.text
        if text and message.role != "tool":
            items.append({"type": "message", "role": message.role, "content": text})
        for c in message.contents:
            if c.type == "function_call":
                items.append({"type": "function_call", "call_id": c.call_id, "name": c.name, "arguments": c.arguments})
            elif c.type == "function_result":
                items.append({"type": "function_call_output", "call_id": c.call_id, "output": c.result or ""})
    return items
