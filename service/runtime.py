"""The function app's per-process objects (settings, table store, model client, agents), built once, lazily."""

from __future__ import annotations

import asyncio
import logging
import os
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Literal

from agent_core.agents import Agent
from agent_core.exceptions import ConfigurationError
from agent_core.model_client import ResponsesClient
from agent_core.providers import BaseContextProvider
from agent_core.tools import FunctionTool

from .settings import AppSettings
from .storage import TableSessionStore

logger = logging.getLogger(__name__)

ModelKind = Literal["azure", "openai", "offline"]
OFFLINE_LABEL = "[offline model]"


@dataclass(frozen=True)
class AgentSpec:
    """An agent the app serves: its route name, prompt and tools. A fresh `Agent` is built per turn."""

    name: str
    description: str
    instructions: str | Callable[[AppSettings], str]
    tools: Sequence[FunctionTool] = ()
    context_providers: Callable[[], list[BaseContextProvider]] = field(default=list)

    def build(self, client: ResponsesClient, settings: AppSettings, *extra: BaseContextProvider) -> Agent:
        instructions = self.instructions(settings) if callable(self.instructions) else self.instructions
        return Agent(
            client=client,
            name=self.name,
            description=self.description,
            instructions=instructions,
            tools=list(self.tools),
            context_providers=[*self.context_providers(), *extra],
        )


def build_store(settings: AppSettings) -> TableSessionStore:
    """Connection string (Azurite: UseDevelopmentStorage=true), else the table endpoint with managed identity."""
    table = settings.sessions_table
    connection_string = settings.get("SessionStorage")
    if connection_string:
        return TableSessionStore.from_connection_string(connection_string, table)
    endpoint = settings.get("SessionStorage__tableServiceUri")
    if endpoint:
        from azure.identity.aio import DefaultAzureCredential

        client_id = settings.get("SessionStorage__clientId") or settings.get("AZURE_CLIENT_ID")
        return TableSessionStore.from_endpoint(
            endpoint, table, credential=DefaultAzureCredential(managed_identity_client_id=client_id)
        )
    raise ConfigurationError(
        "no session storage configured: set SessionStorage (a connection string; UseDevelopmentStorage=true "
        "for Azurite) or SessionStorage__tableServiceUri (the table endpoint, used with managed identity)"
    )


def build_model_client(settings: AppSettings) -> tuple[ResponsesClient, ModelKind]:
    """Azure when an endpoint is set, else OpenAI(-compatible), else the offline model if explicitly enabled."""
    timeout, retries = settings.model_timeout_seconds, settings.model_max_retries
    project_endpoint = settings.get("AZURE_AI_PROJECT_ENDPOINT")
    endpoint = settings.get("AZURE_OPENAI_ENDPOINT")
    if project_endpoint or endpoint:
        from agent_core.azure import AzureOpenAIResponsesClient

        credential = None
        if not settings.get("AZURE_OPENAI_API_KEY"):
            from azure.identity.aio import DefaultAzureCredential

            credential = DefaultAzureCredential(managed_identity_client_id=settings.get("AZURE_CLIENT_ID"))
        client = AzureOpenAIResponsesClient(
            project_endpoint=project_endpoint,
            endpoint=None if project_endpoint else endpoint,
            deployment_name=settings.get("AZURE_OPENAI_RESPONSES_DEPLOYMENT_NAME"),
            api_key=settings.get("AZURE_OPENAI_API_KEY"),
            credential=credential,
            api_version=settings.get("AZURE_OPENAI_API_VERSION"),
            timeout=timeout,
            max_retries=retries,
        )
        return client, "azure"
    from agent_core.openai import OpenAIResponsesClient

    if settings.get("OPENAI_API_KEY"):
        client_ = OpenAIResponsesClient(
            model=settings.get("OPENAI_RESPONSES_MODEL_ID"),
            api_key=settings.get("OPENAI_API_KEY"),
            base_url=settings.get("OPENAI_BASE_URL"),
            timeout=timeout,
            max_retries=retries,
        )
        return client_, "openai"
    if settings.offline_model:
        if settings.in_azure:
            raise ConfigurationError(
                "AGENT_OFFLINE_MODEL is for local runs only; in Azure set AZURE_AI_PROJECT_ENDPOINT or "
                "AZURE_OPENAI_ENDPOINT and AZURE_OPENAI_RESPONSES_DEPLOYMENT_NAME"
            )
        import httpx2

        from devtools.echo_model import EchoModel

        transport = httpx2.ASGITransport(app=EchoModel(label=OFFLINE_LABEL))
        offline = OpenAIResponsesClient(
            model="offline-echo",
            api_key="offline",
            base_url="http://offline-model/v1",
            http_client=httpx2.AsyncClient(transport=transport),
            max_retries=0,
        )
        return offline, "offline"
    raise ConfigurationError(
        "no model configured: set AZURE_AI_PROJECT_ENDPOINT (or AZURE_OPENAI_ENDPOINT) and "
        "AZURE_OPENAI_RESPONSES_DEPLOYMENT_NAME; or OPENAI_API_KEY; or, for local runs, AGENT_OFFLINE_MODEL=true"
    )


@dataclass
class Runtime:
    settings: AppSettings
    store: TableSessionStore
    client: ResponsesClient
    model_kind: ModelKind
    agents: Mapping[str, AgentSpec]

    async def close(self) -> None:
        await self.store.close()
        await self.client.close()


class RuntimeHolder:
    """Builds the runtime on first use (nothing slow at import time) and shares it for the process's life."""

    def __init__(self, agents: Mapping[str, AgentSpec], settings: AppSettings | None = None) -> None:
        self.agents = dict(agents)
        self._settings = settings
        self._runtime: Runtime | None = None
        self._lock: asyncio.Lock | None = None

    async def get(self) -> Runtime:
        if self._runtime is not None:
            return self._runtime
        if self._lock is None:
            self._lock = asyncio.Lock()
        async with self._lock:
            if self._runtime is None:
                settings = self._settings or AppSettings.from_env()
                store = build_store(settings)
                client, kind = build_model_client(settings)
                try:
                    await store.ensure_table()
                except Exception as exc:  # the table may be created by infra and our identity may not create tables
                    logger.warning("could not ensure table %s exists: %s", settings.sessions_table, exc)
                self._runtime = Runtime(settings, store, client, kind, self.agents)
                logger.info("runtime ready: model=%s table=%s", kind, settings.sessions_table)
        return self._runtime

    async def close(self) -> None:
        if self._runtime is not None:
            await self._runtime.close()
            self._runtime = None

    def configure(self, **overrides: str) -> None:
        """Re-read settings as the process environment plus `overrides` (limits, TTL...), keeping the clients.

        For tests and tooling; `configure()` with no overrides restores the process settings.
        """
        settings = AppSettings.from_env({**os.environ, **overrides})
        self._settings = settings
        if self._runtime is not None:
            self._runtime.settings = settings
