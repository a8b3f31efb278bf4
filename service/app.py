"""The app factory: the Functions app (routes and the expiry timer, one line each) bound to one HttpApi.

`function_app.py` calls `create_app()` with no settings: the runtime then reads the process environment (the
app settings) on the first request, so importing the app stays cheap. Tests and tools pass explicit settings
and get an app of their own; nothing patches the process environment or reaches into module state.

A new route needs its entry in service/http/operations.py too: the OpenAPI document is built from the routes
registered here and refuses a route it cannot describe.

HTTP functions use the FastAPI types of the HTTP streaming extension, as the platform requires for streamed
responses (PYTHON_ENABLE_INIT_INDEXING=1). Each route accepts every method and answers 405 itself, so a wrong
method gets a problem+json 405 on the platform too.
"""

from __future__ import annotations

import logging
import os
import sys
from collections.abc import Iterable, Mapping

import azure.functions as func
from azure.functions.decorators.http import HttpTrigger
from azurefunctions.extensions.http.fastapi import Request, Response

from .agents import AGENTS
from .http import HttpApi
from .runtime import AgentSpec
from .settings import AppSettings

logger = logging.getLogger(__name__)

ALL_METHODS = [
    func.HttpMethod.GET,
    func.HttpMethod.POST,
    func.HttpMethod.PUT,
    func.HttpMethod.PATCH,
    func.HttpMethod.DELETE,
    func.HttpMethod.HEAD,
    func.HttpMethod.OPTIONS,
]
"""Every method reaches the handler, which answers 405 with its own `Allow` (the host's would list these)."""
# Under the Functions worker these log every storage and identity request, headers included, at INFO.
NOISY_LOGGERS = ("azure.core.pipeline.policies.http_logging_policy", "azure.identity")
# The modules of the Functions Python worker (the classic worker, and the 3.13+ proxy worker and runtime).
WORKER_MODULES = ("azure_functions_worker", "proxy_worker", "azure_functions_runtime")


class AgentFunctionApp(func.FunctionApp):
    """A FunctionApp whose functions call `api`; `api.runtime` holds the settings, the store and the model client."""

    def __init__(self, api: HttpApi) -> None:
        super().__init__(http_auth_level=func.AuthLevel.FUNCTION)
        self.api = api
        api.routes = self.http_routes  # the OpenAPI document describes exactly the routes registered below
        self._functions: list[func.Function] | None = None

    def get_functions(self) -> list[func.Function]:
        """The functions, built once: the SDK's get_functions() refuses to run twice (it sees every name again
        as a duplicate), and the host, the dev server and the OpenAPI document all read them."""
        if self._functions is None:
            self._functions = super().get_functions()
        return self._functions

    def http_routes(self) -> list[str]:
        """The route templates of the app's HTTP functions, in the order they are registered."""
        triggers = (function.get_trigger() for function in self.get_functions())
        return [str(t.route) for t in triggers if isinstance(t, HttpTrigger)]


def create_app(settings: AppSettings | None = None, agents: Mapping[str, AgentSpec] = AGENTS) -> AgentFunctionApp:
    """The Functions app serving `agents`; `settings` default to the process environment, read on first use."""
    quiet_sdk_logs()
    for problem in worker_setting_problems(os.environ, sys.modules):
        logger.error(problem)
    app = AgentFunctionApp(HttpApi(dict(agents), settings))
    api = app.api

    @app.route(route="agents/{agent}/sessions", methods=ALL_METHODS)
    async def sessions(req: Request) -> Response:
        """POST: create a session. GET: the caller's sessions, newest first."""
        return await api.sessions(req)

    @app.route(route="agents/{agent}/sessions/{session_id}", methods=ALL_METHODS)
    async def session(req: Request) -> Response:
        """GET: a session's metadata and state. PATCH: its title and metadata. DELETE: delete it."""
        return await api.session(req)

    @app.route(route="agents/{agent}/sessions/{session_id}/messages", methods=ALL_METHODS)
    async def messages(req: Request) -> Response:
        """POST: run a turn (JSON, or SSE with Accept: text/event-stream). GET: the history, paged."""
        return await api.messages(req)

    @app.route(route="agents/{agent}/sessions/{session_id}/fork", methods=ALL_METHODS)
    async def fork(req: Request) -> Response:
        """POST: a new session holding the history up to a turn (default: all of it)."""
        return await api.fork(req)

    @app.route(route="agents/{agent}/sessions/{session_id}/rewind", methods=ALL_METHODS)
    async def rewind(req: Request) -> Response:
        """POST: drop the turns after a turn (regenerate, edit and resend)."""
        return await api.rewind(req)

    @app.route(route="agents", methods=ALL_METHODS)
    async def agents_list(req: Request) -> Response:
        """GET: the served agents, their descriptions and tools."""
        return await api.agents(req)

    @app.route(route="playground", methods=ALL_METHODS)
    async def playground(req: Request) -> Response:
        """GET: the playground page (always locally; in Azure only with AGENT_PLAYGROUND_ENABLED)."""
        return await api.playground(req)

    @app.route(route="openapi.json", methods=ALL_METHODS, auth_level=func.AuthLevel.ANONYMOUS)
    async def openapi(req: Request) -> Response:
        """GET: the OpenAPI 3.1 document of these routes (service/http/operations.py describes each)."""
        return await api.openapi(req)

    @app.route(route="health", methods=ALL_METHODS, auth_level=func.AuthLevel.ANONYMOUS)
    async def health(req: Request) -> Response:
        """GET: liveness and configuration."""
        return await api.health(req)

    @app.timer_trigger(schedule="%AGENT_SWEEP_SCHEDULE%", arg_name="timer", run_on_startup=False)
    async def expire_sessions(timer: func.TimerRequest) -> None:
        """Delete sessions past their sliding deadline (the host resolves the schedule from the app setting)."""
        await api.sweep()

    return app


def quiet_sdk_logs() -> None:
    """The Azure SDKs' per-request logs to WARNING: under the worker they are over half of all log lines."""
    for name in NOISY_LOGGERS:
        logging.getLogger(name).setLevel(logging.WARNING)


def worker_setting_problems(env: Mapping[str, str], modules: Iterable[str]) -> list[str]:
    """Settings the Functions worker needs and lacks, when running under it (elsewhere: none).

    Without PYTHON_ENABLE_INIT_INDEXING=1 the worker indexes the app but never starts the HTTP streaming
    extension's server, so every request hangs until the function timeout; the log line is the only clue.
    """
    if not any(name in WORKER_MODULES for name in modules):
        return []
    if env.get("PYTHON_ENABLE_INIT_INDEXING") == "1":
        return []
    return [
        "PYTHON_ENABLE_INIT_INDEXING is not 1: the Functions worker will not start the HTTP streaming extension "
        "and every request will hang until the function timeout; set the app setting PYTHON_ENABLE_INIT_INDEXING=1"
    ]
