"""Function tools: `@tool` turns a typed Python function into a JSON-schema tool the model can call."""

from __future__ import annotations

import asyncio
import inspect
import json
from collections.abc import Callable, Sequence
from typing import Annotated, Any, Literal, get_args, get_origin, get_type_hints, overload

from pydantic import BaseModel, Field, ValidationError, create_model
from pydantic.fields import FieldInfo

from .messages import Content

ApprovalMode = Literal["never_require", "always_require"]
ToolFunc = Callable[..., Any]


class FunctionTool:
    """A callable tool: name, description, JSON schema of its parameters, and whether a human must approve."""

    def __init__(
        self,
        func: ToolFunc,
        *,
        name: str | None = None,
        description: str | None = None,
        approval_mode: ApprovalMode = "never_require",
    ) -> None:
        if approval_mode not in ("never_require", "always_require"):
            raise ValueError(f"approval_mode must be 'never_require' or 'always_require', got {approval_mode!r}")
        self.func = func
        self.name = name or func.__name__
        self.description = description or inspect.cleandoc(func.__doc__ or "").split("\n\n")[0]
        self.approval_mode: ApprovalMode = approval_mode
        self.input_model = _input_model(func, self.name)
        self._parameters: dict[str, Any] | None = None
        self._is_async = inspect.iscoroutinefunction(func)

    def __repr__(self) -> str:
        return f"FunctionTool(name={self.name!r}, approval_mode={self.approval_mode!r})"

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        """Call the underlying function directly, as if undecorated."""
        return self.func(*args, **kwargs)

    @property
    def requires_approval(self) -> bool:
        return self.approval_mode == "always_require"

    def parameters(self) -> dict[str, Any]:
        """JSON schema of the tool's arguments, computed once per tool (every model call sends it)."""
        if self._parameters is None:
            schema = self.input_model.model_json_schema()
            schema.pop("title", None)
            schema.setdefault("properties", {})
            self._parameters = schema
        return self._parameters

    async def invoke(self, arguments: str | dict[str, Any]) -> str:
        """Validate the model's arguments, call the function (sync ones in a thread), return the result as text."""
        raw = json.loads(arguments or "{}") if isinstance(arguments, str) else arguments
        if not isinstance(raw, dict):
            raise ValueError("tool arguments must be a JSON object")
        parsed = self.input_model.model_validate(raw)
        kwargs = {name: getattr(parsed, name) for name in type(parsed).model_fields}
        if self._is_async:
            result = await self.func(**kwargs)
        else:
            result = await asyncio.to_thread(self.func, **kwargs)
        return format_result(result)


def format_result(result: Any) -> str:
    if isinstance(result, str):
        return result
    if isinstance(result, BaseModel):
        return result.model_dump_json()
    return json.dumps(result, default=str)


def _input_model(func: ToolFunc, tool_name: str) -> type[BaseModel]:
    """A pydantic model of the function's parameters; `Annotated[T, "text"]` becomes the field description."""
    hints = get_type_hints(func, include_extras=True)
    fields: dict[str, Any] = {}
    for param in inspect.signature(func).parameters.values():
        if param.kind in (param.VAR_POSITIONAL, param.VAR_KEYWORD):
            continue
        annotation = hints.get(param.name, Any)
        default: Any = ... if param.default is param.empty else param.default
        if get_origin(annotation) is Annotated:
            base, *extras = get_args(annotation)
            texts = [e for e in extras if isinstance(e, str)]
            infos = [e for e in extras if isinstance(e, FieldInfo)]
            if texts and not infos:
                annotation = base
                default = Field(default, description=texts[0])
        fields[param.name] = (annotation, default)
    model_name = "".join(part.title() for part in tool_name.split("_")) + "Input"
    return create_model(model_name, **fields)


@overload
def tool(func: ToolFunc, /) -> FunctionTool: ...


@overload
def tool(
    *, name: str | None = None, description: str | None = None, approval_mode: ApprovalMode = "never_require"
) -> Callable[[ToolFunc], FunctionTool]: ...


def tool(
    func: ToolFunc | None = None,
    /,
    *,
    name: str | None = None,
    description: str | None = None,
    approval_mode: ApprovalMode = "never_require",
) -> FunctionTool | Callable[[ToolFunc], FunctionTool]:
    """Decorate a function as a tool: `@tool` or `@tool(name=..., description=..., approval_mode=...)`."""

    def wrap(f: ToolFunc) -> FunctionTool:
        return FunctionTool(f, name=name, description=description, approval_mode=approval_mode)

    return wrap(func) if func is not None else wrap


ToolLike = FunctionTool | ToolFunc


def as_tools(tools: Sequence[ToolLike] | ToolLike | None) -> list[FunctionTool]:
    """Normalize tools: plain functions are wrapped with default settings."""
    if tools is None:
        return []
    if isinstance(tools, FunctionTool) or callable(tools):
        tools = [tools]
    return [t if isinstance(t, FunctionTool) else FunctionTool(t) for t in tools]


async def invoke_tool_call(call: Content, tools: dict[str, FunctionTool]) -> Content:
    """Run one tool call; a failure becomes an error result for the model instead of an exception."""
    assert call.call_id is not None
    tool_ = tools.get(call.name or "")
    if tool_ is None:
        result = f"Error: no tool named {call.name!r}."
    else:
        try:
            result = await tool_.invoke(call.arguments or "{}")
        except (ValidationError, ValueError) as exc:
            result = f"Error: invalid arguments for {tool_.name}: {exc}"
        except Exception as exc:
            result = f"Error: {tool_.name} failed: {type(exc).__name__}: {exc}"
    return Content.from_function_result(call.call_id, result, name=call.name)


async def invoke_tool_calls(calls: Sequence[Content], tools: dict[str, FunctionTool]) -> list[Content]:
    """Run parallel tool calls concurrently; results come back in call order."""
    return list(await asyncio.gather(*(invoke_tool_call(c, tools) for c in calls)))
