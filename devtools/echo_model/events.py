"""A response as Responses-API server-sent events (sequence numbers are added when sending)."""

from __future__ import annotations

import json
import re

from .errors import JSON


def response_events(response: JSON, *, break_after: int | None) -> list[JSON]:
    """created, in_progress, each output item's events, completed; or `response.failed` after `break_after` deltas."""
    pending = {**response, "status": "in_progress", "output": [], "usage": None}
    events: list[JSON] = [
        {"type": "response.created", "response": pending},
        {"type": "response.in_progress", "response": pending},
    ]
    for index, item in enumerate(response["output"]):
        events += _item_events(item, index)
    if break_after is None:
        return [*events, {"type": "response.completed", "response": response}]
    deltas = [i for i, event in enumerate(events) if event["type"].endswith(".delta")]
    cut = deltas[break_after] if break_after < len(deltas) else len(events)
    error = {"code": "server_error", "message": "injected stream failure"}
    return [*events[:cut], {"type": "response.failed", "response": {**pending, "status": "failed", "error": error}}]


def sse(event: JSON, sequence: int) -> bytes:
    return f"event: {event['type']}\ndata: {json.dumps({**event, 'sequence_number': sequence})}\n\n".encode()


def _item_events(item: JSON, index: int) -> list[JSON]:
    """The events that announce, fill in and finish one output item."""
    at = {"item_id": item["id"], "output_index": index}
    added = {"type": "response.output_item.added", "output_index": index}
    done = {"type": "response.output_item.done", "output_index": index, "item": item}
    if item["type"] == "function_call":
        arguments = item["arguments"]
        return [
            {**added, "item": {**item, "status": "in_progress", "arguments": ""}},
            {"type": "response.function_call_arguments.delta", **at, "delta": arguments},
            {"type": "response.function_call_arguments.done", **at, "name": item["name"], "arguments": arguments},
            done,
        ]
    if item["type"] == "reasoning":
        return [{**added, "item": {**item, "summary": []}}, *_summary_events(item, at), done]
    events = [{**added, "item": {**item, "status": "in_progress", "content": []}}]
    for content_index, part in enumerate(item["content"]):
        events += _part_events(part, {**at, "content_index": content_index})
    return [*events, done]


def _part_events(part: JSON, at: JSON) -> list[JSON]:
    kind, field = ("refusal", "refusal") if part["type"] == "refusal" else ("output_text", "text")
    extra: JSON = {} if kind == "refusal" else {"logprobs": []}
    return [
        {"type": "response.content_part.added", **at, "part": {**part, field: ""}},
        *({"type": f"response.{kind}.delta", **at, "delta": chunk, **extra} for chunk in _chunks(part[field])),
        {"type": f"response.{kind}.done", **at, field: part[field], **extra},
        {"type": "response.content_part.done", **at, "part": part},
    ]


def _summary_events(item: JSON, at: JSON) -> list[JSON]:
    events: list[JSON] = []
    for summary_index, summary in enumerate(item["summary"]):
        where = {**at, "summary_index": summary_index}
        text = summary["text"]
        events += [
            {"type": "response.reasoning_summary_part.added", **where, "part": {**summary, "text": ""}},
            *({"type": "response.reasoning_summary_text.delta", **where, "delta": chunk} for chunk in _chunks(text)),
            {"type": "response.reasoning_summary_text.done", **where, "text": text},
            {"type": "response.reasoning_summary_part.done", **where, "part": summary},
        ]
    return events


def _chunks(text: str, words_per_chunk: int = 3) -> list[str]:
    """Split text into pieces of at most `words_per_chunk` words that join back to exactly `text`."""
    words = [w for w in re.split(r"(?<=\s)(?=\S)", text) if w]
    return ["".join(words[i : i + words_per_chunk]) for i in range(0, len(words), words_per_chunk)] or [""]
