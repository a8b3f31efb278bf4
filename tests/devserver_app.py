"""A small FunctionApp in the documented HTTP-streaming-extension style, served by the dev server in its tests."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import AsyncIterator

import azure.functions as func
from azurefunctions.extensions.http.fastapi import (
    JSONResponse,
    Request,
    Response,
    StreamingResponse,
)

timer_runs: list[func.TimerRequest] = []
stream_release = threading.Event()  # set by the test once it has seen the first streamed chunk
STREAM_GATE_SECONDS = 10.0  # a buffering server would hold the first chunk this long; the test times out sooner


def create_app() -> func.FunctionApp:
    """A fresh app for each dev server (a FunctionApp's functions are indexed once)."""
    app = func.FunctionApp(http_auth_level=func.AuthLevel.FUNCTION)

    @app.route(route="agents/{agent}/sessions/{session_id}")
    async def session_params(req: Request) -> Response:
        return JSONResponse(
            {
                "path_params": dict(req.path_params),
                "query": dict(req.query_params),
                "principal": req.headers.get("x-ms-client-principal-id"),
            }
        )

    @app.route(route="things/{thing_id}", methods=["GET", "DELETE"])
    async def thing(req: Request) -> Response:
        return Response(f"{req.method} {req.path_params['thing_id']}", media_type="text/plain")

    @app.route(route="echo", methods=["POST"])
    async def echo(req: Request) -> Response:
        return JSONResponse({"received": await req.json()}, status_code=201)

    @app.route(route="stream", methods=["GET"])
    async def stream(req: Request) -> StreamingResponse:
        async def events() -> AsyncIterator[str]:
            yield "data: first\n\n"
            waited = 0.0
            while not stream_release.is_set() and waited < STREAM_GATE_SECONDS:
                await asyncio.sleep(0.01)
                waited += 0.01
            yield "data: second\n\n" if stream_release.is_set() else "data: never-released\n\n"
            await asyncio.sleep(0.01)
            yield "data: [DONE]\n\n"

        return StreamingResponse(events(), media_type="text/event-stream")

    @app.route(route="boom")
    async def boom(req: Request) -> Response:
        raise RuntimeError("secret internals: do not leak me")

    @app.timer_trigger(schedule="%TEST_TIMER_SCHEDULE%", arg_name="timer", run_on_startup=False)
    async def tick(timer: func.TimerRequest) -> None:
        timer_runs.append(timer)

    return app
