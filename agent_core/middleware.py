"""Middleware with Agent Framework 1.x's shape: code around a whole run, each model call and each tool call.

- agent middleware wraps a run: `AgentContext` (agent, session, messages, options, stream, result);
- chat middleware wraps each model call: `ChatContext` (client, request, options, stream, session, result);
- function middleware wraps each tool call: `FunctionInvocationContext` (function, arguments, session, kwargs,
  result; agent_core.tools' class, the one tools receive).

Each is a class with `async def process(self, context, call_next)` (`AgentMiddleware`, `ChatMiddleware`,
`FunctionMiddleware`) or a function `async def f(context, call_next)` marked with `@agent_middleware`,
`@chat_middleware` or `@function_middleware` (or typed by its first parameter's annotation). `call_next()`
runs the rest of the chain and then the operation; code before it sees the inputs (and may change them), code
after it sees `context.result` (and may replace it). Not calling `call_next()` skips the operation: set
`context.result` first, or raise `MiddlewareTermination(result=...)`, which ends the chain with that result.

Order: the agent's middleware first, then the run's (`run(..., middleware=[...])`); within a list, the first
is the outermost (it runs first before `call_next()` and last after it). Any other exception a middleware
raises fails the run like any other failure: the session is left exactly as it was.
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import json
from abc import ABC, abstractmethod
from collections.abc import AsyncGenerator, AsyncIterator, Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from enum import Enum
from typing import TYPE_CHECKING, Any, TypeVar

from .exceptions import AgentInputError
from .messages import Message
from .tools import FunctionInvocationContext, FunctionTool, ToolRun, format_result

if TYPE_CHECKING:
    from .model_api import ModelClient, ModelRequest, ModelTurn
    from .results import AgentResponse
    from .sessions import AgentSession

__all__ = [
    "AgentContext",
    "AgentMiddleware",
    "ChatContext",
    "ChatMiddleware",
    "FunctionInvocationContext",
    "FunctionMiddleware",
    "Middleware",
    "MiddlewareTermination",
    "MiddlewareType",
    "agent_middleware",
    "chat_middleware",
    "function_middleware",
]

CallNext = Callable[[], Awaitable[None]]
T = TypeVar("T")


class MiddlewareTermination(Exception):
    """Raised by a middleware to end the chain now; `result` (if given) becomes the context's result."""

    def __init__(self, message: str = "Middleware terminated execution.", *, result: Any = None) -> None:
        super().__init__(message)
        self.result = result


@dataclass
class AgentContext:
    """What agent middleware sees: the run's inputs (changeable before `call_next()`) and, after it, the result."""

    agent: Any  # agent_core.agents.Agent (not imported: agents imports this module)
    messages: list[Message]
    session: AgentSession | None = None
    options: dict[str, Any] = field(default_factory=dict)
    stream: bool = False
    metadata: dict[str, Any] = field(default_factory=dict)
    result: AgentResponse | None = None
    kwargs: dict[str, Any] = field(default_factory=dict)


@dataclass
class ChatContext:
    """What chat middleware sees: the model request (its input items, instructions, tools and `options`, all
    changeable before `call_next()`) and, after it, the model's turn in `result`."""

    client: ModelClient
    request: ModelRequest
    stream: bool = False
    session: AgentSession | None = None
    metadata: dict[str, Any] = field(default_factory=dict)
    result: ModelTurn | None = None

    @property
    def options(self) -> dict[str, Any]:
        """The request's model options (temperature, max_output_tokens, ...), as sent."""
        return self.request.options


class AgentMiddleware(ABC):
    """Code around a whole run."""

    @abstractmethod
    async def process(self, context: AgentContext, call_next: CallNext) -> None: ...


class ChatMiddleware(ABC):
    """Code around each model call."""

    @abstractmethod
    async def process(self, context: ChatContext, call_next: CallNext) -> None: ...


class FunctionMiddleware(ABC):
    """Code around each tool call."""

    @abstractmethod
    async def process(self, context: FunctionInvocationContext, call_next: CallNext) -> None: ...


class MiddlewareType(Enum):
    AGENT = "agent"
    CHAT = "chat"
    FUNCTION = "function"


MiddlewareFunc = Callable[[Any, CallNext], Awaitable[None]]
Middleware = AgentMiddleware | ChatMiddleware | FunctionMiddleware | MiddlewareFunc
_MARK = "_agent_core_middleware_type"
_BY_CLASS: tuple[tuple[type, MiddlewareType], ...] = (
    (AgentMiddleware, MiddlewareType.AGENT),
    (ChatMiddleware, MiddlewareType.CHAT),
    (FunctionMiddleware, MiddlewareType.FUNCTION),
)
_BY_ANNOTATION = {
    "AgentContext": MiddlewareType.AGENT,
    "ChatContext": MiddlewareType.CHAT,
    "FunctionInvocationContext": MiddlewareType.FUNCTION,
}

F = TypeVar("F", bound=MiddlewareFunc)


def _mark(func: F, kind: MiddlewareType) -> F:
    is_async = inspect.iscoroutinefunction(func)  # (kept out of the `if`: it would narrow `func`'s type)
    if not is_async:
        raise AgentInputError(f"{kind.value} middleware {func!r} must be an async function (context, call_next)")
    setattr(func, _MARK, kind)
    return func


def agent_middleware(func: F) -> F:
    """Mark `async def f(context: AgentContext, call_next)` as agent middleware."""
    return _mark(func, MiddlewareType.AGENT)


def chat_middleware(func: F) -> F:
    """Mark `async def f(context: ChatContext, call_next)` as chat middleware."""
    return _mark(func, MiddlewareType.CHAT)


def function_middleware(func: F) -> F:
    """Mark `async def f(context: FunctionInvocationContext, call_next)` as function middleware."""
    return _mark(func, MiddlewareType.FUNCTION)


def middleware_type(middleware: object) -> MiddlewareType:
    """Which kind a middleware is: its class, its decorator, or its first parameter's annotation."""
    for cls, kind in _BY_CLASS:
        if isinstance(middleware, cls):
            return kind
    marked: MiddlewareType | None = getattr(middleware, _MARK, None)
    if marked is not None:
        return marked
    if callable(middleware):
        params = list(inspect.signature(middleware).parameters.values())
        if len(params) == 2 and inspect.iscoroutinefunction(middleware):
            annotation = params[0].annotation
            name = annotation if isinstance(annotation, str) else getattr(annotation, "__name__", "")
            annotated = _BY_ANNOTATION.get(str(name).strip("'\"").rsplit(".", 1)[-1])
            if annotated is not None:
                return annotated
    raise AgentInputError(
        f"{middleware!r} is not middleware: subclass AgentMiddleware, ChatMiddleware or FunctionMiddleware, or "
        "decorate an async (context, call_next) function with @agent_middleware, @chat_middleware or "
        "@function_middleware"
    )


@dataclass(frozen=True)
class MiddlewareSet:
    """Middleware sorted by kind, in order (outermost first)."""

    agent: tuple[Middleware, ...] = ()
    chat: tuple[Middleware, ...] = ()
    function: tuple[Middleware, ...] = ()

    def __bool__(self) -> bool:
        return bool(self.agent or self.chat or self.function)

    @classmethod
    def of(cls, middleware: Sequence[Middleware] | Middleware | None) -> MiddlewareSet:
        if middleware is None:
            return cls()
        items = [middleware] if not isinstance(middleware, Sequence) else list(middleware)
        kinds: dict[MiddlewareType, list[Middleware]] = {kind: [] for kind in MiddlewareType}
        for item in items:
            kinds[middleware_type(item)].append(item)
        return cls(
            tuple(kinds[MiddlewareType.AGENT]), tuple(kinds[MiddlewareType.CHAT]), tuple(kinds[MiddlewareType.FUNCTION])
        )

    def __add__(self, other: MiddlewareSet) -> MiddlewareSet:
        return MiddlewareSet(self.agent + other.agent, self.chat + other.chat, self.function + other.function)


def _step(middleware: Middleware) -> MiddlewareFunc:
    process = getattr(middleware, "process", None)
    if isinstance(middleware, AgentMiddleware | ChatMiddleware | FunctionMiddleware) and process is not None:
        return process  # type: ignore[no-any-return]
    return middleware  # type: ignore[return-value]


async def run_chain(chain: Sequence[Middleware], context: Any, final: CallNext) -> bool:
    """Run `chain` around `final`; returns whether `final` ran. `MiddlewareTermination` stops the chain (its
    `result`, if any, becomes `context.result`); every other exception propagates."""
    ran = False

    async def innermost() -> None:
        nonlocal ran
        ran = True
        await final()

    def link(index: int) -> CallNext:
        if index == len(chain):
            return innermost
        step = _step(chain[index])
        next_link = link(index + 1)

        async def call() -> None:
            await step(context, next_link)

        return call

    try:
        await link(0)()
    except MiddlewareTermination as stop:
        if stop.result is not None:
            context.result = stop.result
    return ran


async def stream_chain(
    chain: Sequence[Middleware], context: Any, inner: Callable[[], AsyncIterator[T]], *, on_done: CallNext | None = None
) -> AsyncGenerator[T, None]:
    """A streamed operation through `chain`: `call_next()` consumes `inner()`, whose items reach the caller as
    they are produced (the chain runs in a task, so the middleware's code before and after `call_next()` runs
    around the live stream). `on_done` runs inside the innermost step, after `inner` is exhausted."""
    queue: asyncio.Queue[tuple[bool, Any]] = asyncio.Queue()

    async def final() -> None:
        iterator = inner()
        try:
            async for item in iterator:
                await queue.put((False, item))
        finally:
            close = getattr(iterator, "aclose", None)
            if close is not None:
                await close()
        if on_done is not None:
            await on_done()

    task = asyncio.create_task(run_chain(chain, context, final))
    task.add_done_callback(lambda _: queue.put_nowait((True, None)))
    try:
        while True:
            done, item = await queue.get()
            if done:
                break
            yield item
        await task
    finally:
        if not task.done():
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task


async def invoke_through(
    chain: Sequence[Middleware],
    function: FunctionTool,
    arguments: str,
    run: ToolRun,
    execute: Callable[[str | Mapping[str, Any]], Awaitable[str]],
) -> str:
    """One tool call through function middleware: `context.arguments` is the model's JSON object (middleware may
    replace it), `execute` runs the tool on it and fills `context.result`; the result comes back as text."""
    try:
        raw = json.loads(arguments or "{}")
    except ValueError:
        raw = None
    if not isinstance(raw, dict):
        return await execute(arguments)  # not an object: the tool's own validation answers
    context = FunctionInvocationContext(function, raw, session=run.session, kwargs=run.kwargs)

    async def final() -> None:
        context.result = await execute(context.arguments)

    await run_chain(chain, context, final)
    return "" if context.result is None else format_result(context.result)
