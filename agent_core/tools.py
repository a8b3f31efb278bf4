"""Function tools: `@tool` turns a typed Python function into a JSON-schema tool the model can call."""

from __future__ import annotations

import asyncio
import inspect
import json
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Annotated, Any, Literal, TypedDict, Unpack, get_args, get_origin, get_type_hints, overload

from pydantic import BaseModel, Field, ValidationError, create_model
from pydantic.fields import FieldInfo

from . import observability
from .messages import Content
from .observability import Operation
from .sessions import AgentSession

ApprovalMode = Literal["never_require", "always_require"]
ToolFunc = Callable[..., Any]


@dataclass
class FunctionInvocationContext:
    """What a tool learns about the run that calls it: declare a parameter of this type (it is not part of the
    tool's JSON schema). `session.state` is the run's working state: changes are kept if the run succeeds."""

    function: FunctionTool
    arguments: Mapping[str, Any]
    session: AgentSession | None = None
    kwargs: Mapping[str, Any] = field(default_factory=dict)
    metadata: dict[str, Any] = field(default_factory=dict)
    result: Any = None  # function middleware: the tool's result after `call_next()`, or one set instead


@dataclass
class ToolRun:
    """The run a batch of tool calls belongs to (for `FunctionInvocationContext`, function middleware, tracing)."""

    session: AgentSession | None = None
    kwargs: Mapping[str, Any] = field(default_factory=dict)
    middleware: Sequence[Any] = ()  # the run's function middleware (agent_core.middleware), outermost first
    through: Callable[..., Awaitable[str]] | None = None  # how to call through them (middleware.invoke_through)
    operation: Operation | None = None  # the run's telemetry span, parent of each tool call's
    conversation_id: str | None = None
    add_usage: Callable[[Any], None] | None = None  # token usage of work done for the run (agents as tools)


class FunctionTool:
    """A callable tool: name, description, JSON schema of its parameters, whether a human must approve, and
    optional limits (`max_invocations`, `max_invocation_exceptions`) over the tool's lifetime."""

    def __init__(
        self,
        func: ToolFunc,
        *,
        name: str | None = None,
        description: str | None = None,
        approval_mode: ApprovalMode | None = "never_require",
        schema: type[BaseModel] | Mapping[str, Any] | None = None,
        max_invocations: int | None = None,
        max_invocation_exceptions: int | None = None,
    ) -> None:
        approval_mode = approval_mode or "never_require"
        if approval_mode not in ("never_require", "always_require"):
            raise ValueError(f"approval_mode must be 'never_require' or 'always_require', got {approval_mode!r}")
        for limit_name, limit in (
            ("max_invocations", max_invocations),
            ("max_invocation_exceptions", max_invocation_exceptions),
        ):
            if limit is not None and (not isinstance(limit, int) or limit < 1):
                raise ValueError(f"{limit_name} must be a positive integer, got {limit!r}")
        self.func = func
        self.name = name or func.__name__
        self.description = description or inspect.cleandoc(func.__doc__ or "").split("\n\n")[0]
        self.approval_mode: ApprovalMode = approval_mode
        self.max_invocations = max_invocations
        self.max_invocation_exceptions = max_invocation_exceptions
        self.invocation_count = 0
        self.invocation_exception_count = 0
        self._context_param = _context_parameter(func)
        self._parameters: dict[str, Any] | None = None
        self.input_model: type[BaseModel] | None
        if isinstance(schema, Mapping):
            self.input_model = None  # arguments are passed as the model sent them
            self._parameters = dict(schema)
        else:
            self.input_model = schema or _input_model(func, self.name, skip=self._context_param)
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
            assert self.input_model is not None
            schema = self.input_model.model_json_schema()
            schema.pop("title", None)
            schema.setdefault("properties", {})
            self._parameters = schema
        return self._parameters

    async def invoke(self, arguments: str | Mapping[str, Any], *, run: ToolRun | None = None) -> str:
        """Validate the model's arguments, call the function (sync ones in a thread), return the result as text."""
        raw = json.loads(arguments or "{}") if isinstance(arguments, str) else arguments
        if not isinstance(raw, Mapping):
            raise ValueError("tool arguments must be a JSON object")
        if self.input_model is None:
            kwargs = dict(raw)
        else:
            parsed = self.input_model.model_validate(raw)
            kwargs = {name: getattr(parsed, name) for name in type(parsed).model_fields}
        if self._context_param:
            run = run or ToolRun()
            kwargs[self._context_param] = FunctionInvocationContext(
                self, dict(kwargs), session=run.session, kwargs=run.kwargs
            )
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


def _context_parameter(func: ToolFunc) -> str | None:
    """The name of the parameter annotated `FunctionInvocationContext`, if the function has one."""
    hints = get_type_hints(func)
    return next((name for name, hint in hints.items() if hint is FunctionInvocationContext), None)


def _input_model(func: ToolFunc, tool_name: str, *, skip: str | None = None) -> type[BaseModel]:
    """A pydantic model of the function's parameters; `Annotated[T, "text"]` becomes the field description."""
    hints = get_type_hints(func, include_extras=True)
    fields: dict[str, Any] = {}
    for param in inspect.signature(func).parameters.values():
        if param.kind in (param.VAR_POSITIONAL, param.VAR_KEYWORD) or param.name == skip:
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


class ToolSettings(TypedDict, total=False):
    """The keyword arguments of `@tool(...)`, as `FunctionTool` takes them."""

    name: str | None
    description: str | None
    approval_mode: ApprovalMode | None
    schema: type[BaseModel] | Mapping[str, Any] | None
    max_invocations: int | None
    max_invocation_exceptions: int | None


@overload
def tool(func: ToolFunc, /) -> FunctionTool: ...


@overload
def tool(**settings: Unpack[ToolSettings]) -> Callable[[ToolFunc], FunctionTool]: ...


def tool(
    func: ToolFunc | None = None, /, **settings: Unpack[ToolSettings]
) -> FunctionTool | Callable[[ToolFunc], FunctionTool]:
    """Decorate a function as a tool: `@tool` or `@tool(name=..., approval_mode=..., max_invocations=...)`."""

    def wrap(f: ToolFunc) -> FunctionTool:
        return FunctionTool(f, **settings)

    return wrap(func) if func is not None else wrap


ToolLike = FunctionTool | ToolFunc


def as_tools(tools: Sequence[ToolLike] | ToolLike | None) -> list[FunctionTool]:
    """Normalize tools: plain functions are wrapped with default settings."""
    if tools is None:
        return []
    if isinstance(tools, FunctionTool) or callable(tools):
        tools = [tools]
    return [t if isinstance(t, FunctionTool) else FunctionTool(t) for t in tools]


async def invoke_tool_call(call: Content, tools: dict[str, FunctionTool], run: ToolRun | None = None) -> Content:
    """Run one tool call; a failure (or a tool past its limits) becomes an error result for the model."""
    assert call.call_id is not None
    tool_ = tools.get(call.name or "")
    if tool_ is None:
        result = f"Error: no tool named {call.name!r}."
    elif tool_.max_invocations is not None and tool_.invocation_count >= tool_.max_invocations:
        result = f"Error: {tool_.name} has reached its maximum of {tool_.max_invocations} invocations."
    elif (
        tool_.max_invocation_exceptions is not None
        and tool_.invocation_exception_count >= tool_.max_invocation_exceptions
    ):
        result = f"Error: {tool_.name} failed {tool_.invocation_exception_count} times and is disabled."
    else:
        tool_.invocation_count += 1
        result = await _invoke(tool_, call, run or ToolRun())
    return Content.from_function_result(call.call_id, result, name=call.name)


async def _invoke(tool_: FunctionTool, call: Content, run: ToolRun) -> str:
    """The call through the run's function middleware, in an `execute_tool` span. The tool's own failure becomes
    an error result; a middleware's exception fails the run."""
    failure: Exception | None = None

    async def execute(arguments: str | Mapping[str, Any]) -> str:
        nonlocal failure
        try:
            return await tool_.invoke(arguments, run=run)
        except (ValidationError, ValueError) as exc:
            failure = exc
            tool_.invocation_exception_count += 1
            return f"Error: invalid arguments for {tool_.name}: {exc}"
        except Exception as exc:
            failure = exc
            tool_.invocation_exception_count += 1
            return f"Error: {tool_.name} failed: {type(exc).__name__}: {exc}"

    op = observability.tool_operation(
        tool_name=tool_.name,
        call_id=call.call_id,
        description=tool_.description,
        conversation_id=run.conversation_id,
        parent=run.operation,
    )
    with op, op.activate():
        if run.middleware and run.through is not None:
            result = await run.through(run.middleware, tool_, call.arguments or "{}", run, execute)
        else:
            result = await execute(call.arguments or "{}")
        if failure is not None:
            op.record_error(failure)
        op.capture_tool_call(call.arguments, result)
    return result


async def invoke_tool_calls(
    calls: Sequence[Content], tools: dict[str, FunctionTool], run: ToolRun | None = None
) -> list[Content]:
    """Run parallel tool calls concurrently; results come back in call order."""
    return list(await asyncio.gather(*(invoke_tool_call(c, tools, run) for c in calls)))
