"""A turn as Server-Sent Events: `delta`, `tool_call`, `tool_result`, `approval_request`, then `done` or `error`."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

from starlette.responses import Response, StreamingResponse

from agent_core.agents import AgentResponseUpdate

from ..turns import TurnEvent
from .problems import to_http_error
from .replies import ApprovalRequestEvent, DeltaEvent, Reply, ToolCallEvent, ToolResultEvent
from .views import turn_reply

EVENT_STREAM = "text/event-stream"


def sse(event: str, data: Reply) -> bytes:
    """One event; its data is the JSON of the event's reply model (replies.SSE_EVENTS names each)."""
    return f"event: {event}\ndata: {data.to_json()}\n\n".encode()


def update_events(update: AgentResponseUpdate) -> list[bytes]:
    events: list[bytes] = []
    if update.text:
        events.append(sse("delta", DeltaEvent(text=update.text)))
    for c in update.contents:
        if c.type == "function_call":
            events.append(sse("tool_call", ToolCallEvent(call_id=c.call_id, name=c.name, arguments=c.arguments)))
        elif c.type == "function_result":
            events.append(sse("tool_result", ToolResultEvent(call_id=c.call_id, name=c.name, result=c.result)))
        elif c.type == "function_approval_request":
            events.append(sse("approval_request", ApprovalRequestEvent(id=c.id, name=c.name, arguments=c.arguments)))
    return events


async def stream_response(turn: AsyncIterator[TurnEvent], background: set[asyncio.Task[None]]) -> Response:
    """SSE. The turn runs in its own task (kept in `background`), so a client that disconnects still gets its
    turn committed. The response starts with the turn's first event: a turn that fails before producing
    anything (not found, throttled, bad request) gets its real status as problem+json instead of a 200 with
    an error event.
    """
    queue: asyncio.Queue[bytes | Exception | None] = asyncio.Queue()

    async def produce() -> None:
        try:
            async for event in turn:
                if event.update is not None:
                    for chunk in update_events(event.update):
                        queue.put_nowait(chunk)
                elif event.result is not None:
                    queue.put_nowait(sse("done", turn_reply(event.result)))
        except Exception as exc:
            queue.put_nowait(exc)
        finally:
            queue.put_nowait(None)

    task = asyncio.create_task(produce())
    background.add(task)
    task.add_done_callback(background.discard)
    first = await queue.get()
    if isinstance(first, Exception):
        return to_http_error(first).response()

    async def events() -> AsyncIterator[bytes]:
        item: bytes | Exception | None = first
        while item is not None:
            yield sse("error", to_http_error(item).problem()) if isinstance(item, Exception) else item
            item = await queue.get()

    headers = {"Cache-Control": "no-cache", "X-Accel-Buffering": "no"}
    return StreamingResponse(events(), media_type=EVENT_STREAM, headers=headers)
