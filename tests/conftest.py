"""Shared fixtures: the OpenAI-compatible echo model on loopback, and agent_core clients pointed at it."""

from __future__ import annotations

import secrets
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import httpx2
import pytest

from agent_core.openai import OpenAIResponsesClient
from devtools.devserver import DevServer
from devtools.echo_model import EchoModel, EchoModelServer
from service.app import AgentFunctionApp, create_app
from service.settings import AppSettings
from service.storage import TableSessionStore

from .azurite import Azurite
from .oidc_issuer import OidcIssuer, OidcIssuerServer
from .storage_proxy import StorageProxy


@pytest.fixture(scope="session")
def model_server() -> Iterator[EchoModelServer]:
    with EchoModelServer() as server:
        yield server


@pytest.fixture
def model(model_server: EchoModelServer) -> EchoModel:
    """The echo model, reset for each test: no stored responses, conversations, faults or recorded requests."""
    model_server.model.reset()
    return model_server.model


@pytest.fixture
def client(model_server: EchoModelServer, model: EchoModel) -> OpenAIResponsesClient:
    """A real AsyncOpenAI-based client over HTTP to the echo model; no SDK retries so faults surface once."""
    return OpenAIResponsesClient(model="echo-1", api_key="test-key", base_url=model_server.base_url, max_retries=0)


@pytest.fixture(scope="session")
def issuer_server() -> Iterator[OidcIssuerServer]:
    """A local OpenID issuer (tests/oidc_issuer.py) for the test session."""
    with OidcIssuerServer() as server:
        yield server


@pytest.fixture
def issuer(issuer_server: OidcIssuerServer) -> OidcIssuer:
    """The issuer with fresh keys and zeroed request counts for each test."""
    issuer_server.oidc.reset()
    return issuer_server.oidc


@pytest.fixture(scope="session")
def azurite() -> Iterator[Azurite]:
    """One Azurite Table service for the test session (in memory); tests use their own tables."""
    server = Azurite()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="session")
def storage_proxy(azurite: Azurite) -> Iterator[StorageProxy]:
    proxy = StorageProxy(f"http://127.0.0.1:{azurite.port}").start()
    yield proxy
    proxy.stop()


SWEEP_SCHEDULE = "0 0 0 1 1 *"  # the timer is run on demand (POST /admin/functions/expire_sessions)


@dataclass
class FunctionAppServer:
    """An app from service.app.create_app, served by the dev server, with the settings it was built with."""

    base_url: str
    env: dict[str, str]  # the app settings its settings were parsed from
    app: AgentFunctionApp

    @property
    def store(self) -> TableSessionStore:
        runtime = self.app.api.runtime.built
        assert runtime is not None, "the runtime is built by the first request"
        return runtime.store


class AppServers:
    """Serves apps with explicit settings: the session's sessions table, the echo model, plus overrides."""

    def __init__(self, azurite: Azurite, storage_proxy: StorageProxy, model_server: EchoModelServer) -> None:
        self.env = {
            "SessionStorage": azurite.connection_string.replace(f":{azurite.port}/", f":{storage_proxy.port}/"),
            "AGENT_SESSIONS_TABLE": f"sessions{secrets.token_hex(4)}",
            "OPENAI_API_KEY": "test-key",
            "OPENAI_BASE_URL": model_server.base_url,
            "OPENAI_RESPONSES_MODEL_ID": "echo-1",
            "AGENT_MODEL_MAX_RETRIES": "0",
            "AGENT_MODEL_TIMEOUT_SECONDS": "2",
            "AGENT_GENERAL_INSTRUCTIONS": "You are the general test assistant.",
        }

    @contextmanager
    def serve(self, **overrides: str) -> Iterator[FunctionAppServer]:
        """An app of its own (own runtime and clients) on the dev server, closed afterwards."""
        env = {**self.env, **overrides}
        app = create_app(AppSettings.from_env(env))
        host_env = {"AGENT_SWEEP_SCHEDULE": SWEEP_SCHEDULE}
        with DevServer(app, env=host_env, run_timers=False, on_shutdown=[app.api.close]) as server:
            yield FunctionAppServer(server.base_url, env, app)


@pytest.fixture(scope="session")
def app_servers(azurite: Azurite, storage_proxy: StorageProxy, model_server: EchoModelServer) -> AppServers:
    """Builds apps with explicit settings (sessions in Azurite through the fault proxy, the echo model)."""
    return AppServers(azurite, storage_proxy, model_server)


@pytest.fixture(scope="session")
def function_app_server(app_servers: AppServers) -> Iterator[FunctionAppServer]:
    """The test session's app on the dev server, built as function_app.py builds it but with explicit settings."""
    with app_servers.serve() as server:
        yield server


def app_client(server: FunctionAppServer) -> httpx2.AsyncClient:
    """An HTTP client for a served app's /api routes."""
    return httpx2.AsyncClient(base_url=server.base_url + "/api", timeout=30)


@pytest.fixture
def configure(function_app_server: FunctionAppServer) -> Iterator[Callable[..., None]]:
    """Change the session app's settings (and what the platform sets) for one test, explicitly; restored afterwards.

    The settings are the session app's plus the overrides, never the process environment.
    """

    def apply(**overrides: str) -> None:
        env = {**function_app_server.env, **overrides}
        function_app_server.app.api.runtime.reconfigure(AppSettings.from_env(env))

    yield apply
    apply()


@pytest.fixture
async def http(function_app_server: FunctionAppServer, model: EchoModel) -> AsyncIterator[httpx2.AsyncClient]:
    """An HTTP client for the session app's /api routes (the echo model is reset for each test)."""
    async with app_client(function_app_server) as client:
        yield client


@pytest.fixture
async def store(azurite: Azurite) -> AsyncIterator[Any]:
    """A TableSessionStore on a fresh table of the session's Azurite, dropped afterwards."""
    from service.storage import TableSessionStore

    store = TableSessionStore.from_connection_string(azurite.connection_string, f"t{secrets.token_hex(6)}")
    await store.ensure_table()
    yield store
    await store.table.delete_table()
    await store.close()
