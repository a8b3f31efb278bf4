"""The context window: refuse an over-long input, or with `truncation: "auto"` drop its oldest items.

As on the real service, truncation drops whole items from the start of the context (previous responses,
the conversation, then the new input), never the instructions; a function call and its output go together.
When even the newest item alone does not fit, the answer is the API's 400 `context_length_exceeded`.
"""

from __future__ import annotations

from .errors import JSON, ApiError
from .items import item_text, words


def fit_window(context: list[JSON], instructions: str | None, window: int | None, truncation: object) -> list[JSON]:
    """The part of `context` the model reads (all of it, unless it is over `window` estimated tokens)."""
    if truncation not in (None, "auto", "disabled"):
        raise ApiError(400, "'truncation' must be 'auto' or 'disabled'.", param="truncation")
    if window is None:
        return context
    sizes = [words(item_text(item)) for item in context]
    total = full = sum(sizes) + words(instructions or "")
    if total <= window:
        return context
    if truncation == "auto":
        calls = _tool_call_members(context)
        dropped: set[int] = set()
        for start, item in enumerate(context):
            if total <= window:
                return [kept for i, kept in enumerate(context) if i not in dropped]
            if start in dropped:
                continue
            for i in calls.get(item.get("call_id"), [start]) if _is_tool_item(item) else [start]:
                dropped.add(i)
                total -= sizes[i]
    raise ApiError(
        400,
        "Your input exceeds the context window of this model. Please adjust your input and try again. "
        f"({full} tokens, estimated as words, in a window of {window})",
        param="input",
        code="context_length_exceeded",
    )


def _is_tool_item(item: JSON) -> bool:
    return item.get("type") in ("function_call", "function_call_output") and isinstance(item.get("call_id"), str)


def _tool_call_members(context: list[JSON]) -> dict[object, list[int]]:
    """For each call_id, the positions of its call and output(s): they leave the window together."""
    members: dict[object, list[int]] = {}
    for i, item in enumerate(context):
        if _is_tool_item(item):
            members.setdefault(item["call_id"], []).append(i)
    return members
