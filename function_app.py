"""Azure Functions entry point (Python v2 model): routes and the expiry timer, each calling into agent_core.

HTTP functions use the FastAPI types of the HTTP streaming extension, as the platform requires for
streamed responses (PYTHON_ENABLE_INIT_INDEXING=1). Each route accepts every method and answers 405
itself, so a wrong method gets a problem+json 405 on the platform too.
"""

import azure.functions as func
from azurefunctions.extensions.http.fastapi import Request, Response

from service.agents import AGENTS
from service.http import HttpApi

app = func.FunctionApp(http_auth_level=func.AuthLevel.FUNCTION)
api = HttpApi(AGENTS)

ALL_METHODS = [
    func.HttpMethod.GET,
    func.HttpMethod.POST,
    func.HttpMethod.PUT,
    func.HttpMethod.PATCH,
    func.HttpMethod.DELETE,
]


@app.route(route="agents/{agent}/sessions", methods=ALL_METHODS)
async def sessions(req: Request) -> Response:
    """POST: create a session."""
    return await api.sessions(req)


@app.route(route="agents/{agent}/sessions/{session_id}", methods=ALL_METHODS)
async def session(req: Request) -> Response:
    """GET: a session's metadata and state. DELETE: delete it."""
    return await api.session(req)


@app.route(route="agents/{agent}/sessions/{session_id}/messages", methods=ALL_METHODS)
async def messages(req: Request) -> Response:
    """POST: run a turn (JSON, or SSE with Accept: text/event-stream). GET: the history, paged."""
    return await api.messages(req)


@app.route(route="health", methods=ALL_METHODS, auth_level=func.AuthLevel.ANONYMOUS)
async def health(req: Request) -> Response:
    """GET: liveness and configuration."""
    return await api.health(req)


@app.timer_trigger(schedule="%AGENT_SWEEP_SCHEDULE%", arg_name="timer", run_on_startup=False)
async def expire_sessions(timer: func.TimerRequest) -> None:
    """Delete sessions past their sliding deadline."""
    await api.sweep()
