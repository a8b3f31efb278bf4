"""Shared fixtures: the OpenAI-compatible echo model on loopback, and agent_core clients pointed at it."""

from __future__ import annotations

import secrets
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from typing import Any

import httpx2
import pytest

from agent_core.openai import OpenAIResponsesClient
from devtools.echo_model import EchoModel, EchoModelServer

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


@dataclass
class FunctionAppServer:
    """The real function_app.app served by the dev server, with the settings it was started with."""

    base_url: str
    env: dict[str, str]
    api: Any  # service.http.HttpApi

    @property
    def store(self) -> Any:
        runtime = self.api.runtime._runtime
        assert runtime is not None, "the runtime is built by the first request"
        return runtime.store


@pytest.fixture(scope="session")
def function_app_server(
    azurite: Azurite, storage_proxy: StorageProxy, model_server: EchoModelServer
) -> Iterator[FunctionAppServer]:
    """function_app.app on the dev server: sessions in Azurite (through the fault proxy), the echo model."""
    from devtools.devserver import DevServer

    connection = azurite.connection_string.replace(f":{azurite.port}/", f":{storage_proxy.port}/")
    env = {
        "SessionStorage": connection,
        "AGENT_SESSIONS_TABLE": f"sessions{secrets.token_hex(4)}",
        "OPENAI_API_KEY": "test-key",
        "OPENAI_BASE_URL": model_server.base_url,
        "OPENAI_RESPONSES_MODEL_ID": "echo-1",
        "AGENT_MODEL_MAX_RETRIES": "0",
        "AGENT_MODEL_TIMEOUT_SECONDS": "2",
        "AGENT_SWEEP_SCHEDULE": "0 0 0 1 1 *",
        "AGENT_GENERAL_INSTRUCTIONS": "You are the general test assistant.",
    }
    with pytest.MonkeyPatch.context() as mp:
        for name in (
            "AZURE_AI_PROJECT_ENDPOINT",
            "AZURE_OPENAI_ENDPOINT",
            "WEBSITE_INSTANCE_ID",
        ):
            mp.delenv(name, raising=False)
        for name, value in env.items():
            mp.setenv(name, value)
        import function_app

        with DevServer(function_app.app, run_timers=False, on_shutdown=[function_app.api.close]) as server:
            yield FunctionAppServer(server.base_url, env, function_app.api)


@pytest.fixture
def configure(function_app_server: FunctionAppServer) -> Iterator[Any]:
    """Change the function app's settings (and what the platform sets) for one test; restored afterwards."""
    holder = function_app_server.api.runtime
    yield holder.configure
    holder.configure()


@pytest.fixture
async def http(function_app_server: FunctionAppServer, model: EchoModel) -> AsyncIterator[httpx2.AsyncClient]:
    """An HTTP client for the function app's /api routes (the echo model is reset for each test)."""
    async with httpx2.AsyncClient(base_url=function_app_server.base_url + "/api", timeout=30) as client:
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
