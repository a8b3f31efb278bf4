"""The deterministic model: what it answers for a context.

In order: after tool outputs, "Tool results: name -> output; ..."; else the tools the last user message
calls as `name(args)` (a JSON object, or one string for the first required parameter); else, when that
message contains `refuse()`, a refusal; else a recap, `I have seen N user message(s): "..." | "..."`, plus
` [instructions: ...]` (first 60 characters). When the context carries reasoning items this model made,
` [reasoning carried: N]` follows. A `json_schema` text format turns the text into a JSON value of that
schema; a `reasoning` request puts a reasoning item first.
"""

from __future__ import annotations

import json
import re

from .errors import JSON
from .items import is_user_message, message_text, new_id, output_text
from .reasoning import ReasoningSeal, carried_reasoning, reasoning_item, wants_reasoning
from .structured import json_schema_format, value_for

REFUSAL_MARKER = "refuse()"


def reply(body: JSON, context: list[JSON], *, label: str, seal: ReasoningSeal, response_id: str) -> list[JSON]:
    """The output items for a (checked) request whose model reads `context`."""
    tools: list[JSON] = [] if body.get("tool_choice") == "none" else body.get("tools") or []
    instructions = body.get("instructions") if isinstance(body.get("instructions"), str) else None
    text_format = json_schema_format(body)
    carried = carried_reasoning(context, seal)
    user_messages = [item for item in context if is_user_message(item)]
    prefix = f"{label} " if label else ""

    output: list[JSON] = []
    if wants_reasoning(body):
        thought = f"The user has sent {len(user_messages)} message(s); answering the last."
        output.append(reasoning_item(body, response_id, thought, seal))
    after_tools = bool(context) and context[-1].get("type") == "function_call_output"
    calls = [] if after_tools else _function_calls(user_messages, tools)
    if calls:
        return output + calls
    last_said = message_text(user_messages[-1]) if user_messages else ""
    if not after_tools and REFUSAL_MARKER in last_said:
        refusal = f"{prefix}I refuse to answer: {last_said}"
        return [*output, _message([{"type": "refusal", "refusal": refusal}])]
    if after_tools:
        text = _tool_results_text(context)
    else:
        said = [message_text(item) for item in user_messages]
        text = f"I have seen {len(said)} user message(s): " + " | ".join(f'"{s}"' for s in said)
        if instructions:
            text += f" [instructions: {instructions[:60]}]"
    if carried:
        text += f" [reasoning carried: {carried}]"
    text = prefix + text
    if text_format is not None:
        text = json.dumps(value_for(text_format["schema"], text))
    return [*output, _message([{"type": "output_text", "text": text, "annotations": []}])]


def _message(content: list[JSON]) -> JSON:
    return {"type": "message", "id": new_id("msg"), "role": "assistant", "status": "completed", "content": content}


def _tool_results_text(context: list[JSON]) -> str:
    last_user = max((i for i, item in enumerate(context) if is_user_message(item)), default=-1)
    names = {item["call_id"]: item["name"] for item in context if item.get("type") == "function_call"}
    results = [
        f"{names.get(item['call_id'], 'unknown_tool')} -> {output_text(item.get('output'))}"
        for item in context[last_user + 1 :]
        if item.get("type") == "function_call_output"
    ]
    return "Tool results: " + "; ".join(results)


def _function_calls(user_messages: list[JSON], tools: list[JSON]) -> list[JSON]:
    by_name = {t["name"]: t for t in tools if t.get("type") == "function" and isinstance(t.get("name"), str)}
    if not by_name or not user_messages:
        return []
    alternatives = "|".join(re.escape(name) for name in sorted(by_name, key=len, reverse=True))
    pattern = re.compile(rf"(?<![\w.])({alternatives})\((.*?)\)", re.DOTALL)
    return [
        {
            "type": "function_call",
            "id": new_id("fc"),
            "call_id": new_id("call"),
            "name": match.group(1),
            "arguments": json.dumps(_tool_arguments(match.group(2), by_name[match.group(1)])),
            "status": "completed",
        }
        for match in pattern.finditer(message_text(user_messages[-1]))
    ]


def _tool_arguments(raw: str, tool: JSON) -> JSON:
    try:
        parsed = json.loads(raw)
    except ValueError:
        parsed = None
    if isinstance(parsed, dict):
        return parsed
    schema: JSON = tool["parameters"] if isinstance(tool.get("parameters"), dict) else {}
    required = schema.get("required") or []
    properties = list((schema.get("properties") or {}).keys())
    target = required[0] if required else properties[0] if properties else None
    if target is None:
        return {"input": raw.strip()} if raw.strip() else {}
    return {str(target): raw.strip()}
