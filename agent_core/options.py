"""Run options: Agent Framework 1.x's chat option names and the Responses API's, each applied or refused by name.

Nothing is silently dropped: a key either reaches the model (as is, or renamed), changes the run (tools,
instructions, structured output, service storage), or raises `AgentInputError` naming it.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from .exceptions import AgentInputError
from .structured import ResponseFormat, check_response_format, text_format
from .tools import FunctionTool, as_tools

PASSTHROUGH = frozenset(
    {
        "model",
        "temperature",
        "top_p",
        "max_output_tokens",
        "tool_choice",
        "parallel_tool_calls",
        "metadata",
        "reasoning",
        "text",
        "truncation",
        "user",
        "safety_identifier",
        "prompt_cache_key",
        "prompt_cache_retention",
        "service_tier",
        "include",
        "max_tool_calls",
        "top_logprobs",
    }
)
"""Keys sent to `responses.create` unchanged."""

RENAMED = {"max_tokens": "max_output_tokens", "allow_multiple_tool_calls": "parallel_tool_calls"}
"""Agent Framework names and the Responses API parameter each becomes."""

RUN_KEYS = frozenset({"store", "conversation_id", "instructions", "tools", "response_format", "verbosity"})
"""Keys that shape the run itself (see `RunOptions`)."""

REFUSED = {
    **{
        key: "the Responses API has no equivalent"
        for key in ("stop", "seed", "logit_bias", "frequency_penalty", "presence_penalty")
    },
    "background": "background responses are not supported",
    "continuation_token": "background responses are not supported",
    "stream_options": "use run(..., stream=True)",
    "prompt": "prompt templates are not supported",
}
"""Known keys that cannot take effect here, with the reason given in the error."""

OPTION_KEYS = PASSTHROUGH | RENAMED.keys() | RUN_KEYS


@dataclass
class RunOptions:
    """The options of one run, sorted by what they do."""

    model_args: dict[str, Any] = field(default_factory=dict)  # for responses.create
    instructions: list[str] = field(default_factory=list)
    tools: list[FunctionTool] = field(default_factory=list)
    response_format: ResponseFormat | None = None
    conversation_id: str | None = None
    store: bool | None = None


def merge_options(default_options: Mapping[str, Any] | None, options: Mapping[str, Any] | None) -> dict[str, Any]:
    """Per-run options over the agent's `default_options`; `instructions` and `tools` add up instead."""
    merged = {**(default_options or {}), **(options or {})}
    for key in ("instructions", "tools"):
        parts = [o[key] for o in (default_options, options) if o and o.get(key)]
        if len(parts) == 2:
            merged[key] = [*_listed(parts[0]), *_listed(parts[1])]
    return merged


def resolve(options: Mapping[str, Any]) -> RunOptions:
    """Sort `options` by what each key does; raise `AgentInputError` for a key that cannot take effect."""
    run = RunOptions()
    verbosity = None
    for key, value in options.items():
        if key in REFUSED:
            raise AgentInputError(f"option {key!r} is not supported: {REFUSED[key]}")
        if key in PASSTHROUGH:
            run.model_args[key] = _tool_choice(value) if key == "tool_choice" else value
        elif key in RENAMED:
            run.model_args[RENAMED[key]] = value
        elif key == "instructions":
            run.instructions = [str(text) for text in _listed(value) if text]
        elif key == "tools":
            run.tools = as_tools(value)
        elif key == "response_format":
            run.response_format = check_response_format(value)
        elif key == "conversation_id":
            if value is not None and not isinstance(value, str):
                raise AgentInputError("options['conversation_id'] must be a string")
            run.conversation_id = value
        elif key == "store":
            run.store = value
        elif key == "verbosity":
            verbosity = value
        else:
            raise AgentInputError(f"unknown option {key!r}; known options: {sorted(OPTION_KEYS | REFUSED.keys())}")
    if run.response_format is not None or verbosity is not None:
        text = dict(run.model_args.get("text") or {})
        if run.response_format is not None:
            text["format"] = text_format(run.response_format)
        if verbosity is not None:
            text["verbosity"] = verbosity
        run.model_args["text"] = text
    return run


def _listed(value: Any) -> list[Any]:
    if isinstance(value, (list, tuple)):
        return list(value)
    return [value]


def _tool_choice(value: Any) -> Any:
    """Agent Framework's `{"mode": "required", "required_function_name": ...}` in the Responses API's form."""
    if isinstance(value, Mapping) and "mode" in value:
        name = value.get("required_function_name")
        return {"type": "function", "name": name} if name else value["mode"]
    return value
