"""Token estimates without a tokenizer: characters / 4 plus a per-item overhead, calibrated by the model's count.

The estimate is deliberately simple and cheap (string lengths only, no tokenizer download): it counts the
characters of every string field of a Responses input item except its `type` (message text, a call's
name, arguments and call id, an output and its call id), divides by `CHARS_PER_TOKEN` rounding up, and
adds `ITEM_OVERHEAD_TOKENS` per item for the framing the model service adds. Instructions count as one
more item; tool schemas as their JSON text. Compaction multiplies the estimate by a ratio learnt from
the `input_tokens` the model reported for the previous call (see `calibration_ratio`), so the budget is
kept in the model's own tokens whatever its tokenizer.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any

from .items import to_input_items
from .messages import Message
from .tools import FunctionTool

CHARS_PER_TOKEN = 4
"""Characters per token of the estimate: about right for English prose and JSON with OpenAI tokenizers."""

ITEM_OVERHEAD_TOKENS = 4
"""Tokens added per input item (role, type and separators the service wraps each item in)."""

MIN_RATIO, MAX_RATIO = 0.1, 10.0
"""Bounds of the calibration ratio, so one odd usage figure cannot make the budget meaningless."""


def estimate_text_tokens(text: str) -> int:
    """Tokens of a piece of text: its length / `CHARS_PER_TOKEN`, rounded up."""
    return -(-len(text) // CHARS_PER_TOKEN)


def estimate_item_tokens(item: Mapping[str, Any]) -> int:
    """Tokens of one Responses input item: its string fields (all but `type`) plus the per-item overhead."""
    chars = sum(len(value) for key, value in item.items() if key != "type" and isinstance(value, str))
    return ITEM_OVERHEAD_TOKENS + -(-chars // CHARS_PER_TOKEN)


def estimate_items_tokens(items: Sequence[Mapping[str, Any]]) -> int:
    return sum(estimate_item_tokens(item) for item in items)


def estimate_message_tokens(message: Message) -> int:
    """Tokens of the input items a message becomes (approval contents are not sent, so they count 0)."""
    return estimate_items_tokens(to_input_items([message]))


def estimate_instructions_tokens(instructions: str | None) -> int:
    """Instructions count like one message item; none count 0."""
    return ITEM_OVERHEAD_TOKENS + estimate_text_tokens(instructions) if instructions else 0


def estimate_tools_tokens(tools: Sequence[FunctionTool]) -> int:
    """Tool definitions are sent with every call: their name, description and JSON schema count."""
    schemas = [{"name": t.name, "description": t.description, "parameters": t.parameters()} for t in tools]
    return estimate_text_tokens(json.dumps(schemas)) if tools else 0


def calibration_ratio(estimated: int, reported: int) -> float | None:
    """Model-reported input tokens per estimated token, bounded to [MIN_RATIO, MAX_RATIO]; None without data."""
    if estimated <= 0 or reported <= 0:
        return None
    return min(MAX_RATIO, max(MIN_RATIO, reported / estimated))
