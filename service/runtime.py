"""The function app's per-process objects (settings, table store, model client, agents), built once, lazily."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Literal

from pydantic import SecretStr

from agent_core.agents import Agent
from agent_core.compaction import (
    CompactionStrategy,
    SummarizationStrategy,
    TokenBudgetComposedStrategy,
    ToolResultCompactionStrategy,
)
from agent_core.exceptions import ConfigurationError
from agent_core.middleware import Middleware
from agent_core.model_client import ResponsesClient
from agent_core.providers import BaseContextProvider
from agent_core.tools import FunctionTool

from . import telemetry
from .auth import Authenticator, auth_config
from .settings import AppSettings
from .storage import StoreLimits, TableSessionStore

logger = logging.getLogger(__name__)

ModelKind = Literal["azure", "openai"]


@dataclass(frozen=True)
class AgentSpec:
    """An agent the app serves: its route name, prompt, tools and middleware. A fresh `Agent` is built per turn;
    middleware instances are shared by every turn of the process (keep per-turn data in the context)."""

    name: str
    description: str
    instructions: str | Callable[[AppSettings], str]
    tools: Sequence[FunctionTool] = ()
    context_providers: Callable[[], list[BaseContextProvider]] = field(default=list)
    middleware: Sequence[Middleware] = ()

    def build(self, client: ResponsesClient, settings: AppSettings, *extra: BaseContextProvider) -> Agent:
        instructions = self.instructions(settings) if callable(self.instructions) else self.instructions
        return Agent(
            client=client,
            name=self.name,
            description=self.description,
            instructions=instructions,
            tools=list(self.tools),
            context_providers=[*self.context_providers(), *extra],
            middleware=list(self.middleware),
            compaction_strategy=served_compaction(settings),
        )


def served_compaction(settings: AppSettings) -> CompactionStrategy | None:
    """The served agents' compaction: under AGENT_COMPACTION_TOKEN_BUDGET, old tool results become stubs
    first, then what leaves the window is summarized by the agent's own model (a running summary)."""
    budget = settings.compaction_token_budget
    if not budget:
        return None
    return TokenBudgetComposedStrategy(
        token_budget=budget, strategies=[ToolResultCompactionStrategy(), SummarizationStrategy()]
    )


def store_limits(settings: AppSettings) -> StoreLimits:
    """The TTL and size limits the store enforces, from the settings."""
    limits = settings.limits
    return StoreLimits(
        settings.session_ttl_seconds,
        limits.max_session_bytes,
        limits.max_state_bytes,
        settings.turn_lease_seconds,
        settings.history_retention_turns,
    )


def build_store(settings: AppSettings) -> TableSessionStore:
    """Connection string (Azurite: UseDevelopmentStorage=true), else the table endpoint with managed identity."""
    table = settings.sessions_table
    if settings.session_storage:
        return TableSessionStore.from_connection_string(settings.session_storage, table, store_limits(settings))
    if settings.session_storage_table_uri:
        from azure.identity.aio import DefaultAzureCredential

        client_id = settings.session_storage_client_id or settings.azure_client_id
        return TableSessionStore.from_endpoint(
            settings.session_storage_table_uri,
            table,
            credential=DefaultAzureCredential(managed_identity_client_id=client_id),
            limits=store_limits(settings),
        )
    raise ConfigurationError(
        "no session storage configured: set SessionStorage (a connection string; UseDevelopmentStorage=true "
        "for Azurite) or SessionStorage__tableServiceUri (the table endpoint, used with managed identity)"
    )


def _secret(value: SecretStr | None) -> str | None:
    return value.get_secret_value() if value is not None else None


def build_model_client(settings: AppSettings) -> tuple[ResponsesClient, ModelKind]:
    """Azure when an endpoint is set, else OpenAI or an OpenAI-compatible server (locally: the echo model)."""
    timeout, retries = settings.model_timeout_seconds, settings.model_max_retries
    project_endpoint = settings.azure_ai_project_endpoint
    if project_endpoint or settings.azure_openai_endpoint:
        from agent_core.azure import AzureOpenAIResponsesClient

        credential = None
        if settings.azure_openai_api_key is None:
            from azure.identity.aio import DefaultAzureCredential

            credential = DefaultAzureCredential(managed_identity_client_id=settings.azure_client_id)
        client = AzureOpenAIResponsesClient(
            project_endpoint=project_endpoint,
            endpoint=None if project_endpoint else settings.azure_openai_endpoint,
            deployment_name=settings.azure_openai_deployment,
            api_key=_secret(settings.azure_openai_api_key),
            credential=credential,
            api_version=settings.azure_openai_api_version,
            timeout=timeout,
            max_retries=retries,
        )
        return client, "azure"
    if settings.openai_api_key is not None:
        from agent_core.openai import OpenAIResponsesClient

        client_ = OpenAIResponsesClient(
            model=settings.openai_model,
            api_key=_secret(settings.openai_api_key),
            base_url=settings.openai_base_url,
            timeout=timeout,
            max_retries=retries,
        )
        return client_, "openai"
    raise ConfigurationError(
        "no model configured: set AZURE_AI_PROJECT_ENDPOINT (or AZURE_OPENAI_ENDPOINT) and "
        "AZURE_OPENAI_RESPONSES_DEPLOYMENT_NAME; or OPENAI_API_KEY (with OPENAI_BASE_URL for an OpenAI-compatible "
        "server; scripts/run starts the echo model when none is set)"
    )


@dataclass
class Runtime:
    settings: AppSettings
    store: TableSessionStore
    client: ResponsesClient
    model_kind: ModelKind
    agents: Mapping[str, AgentSpec]
    auth: Authenticator

    async def close(self) -> None:
        await self.store.close()
        await self.client.close()
        await self.auth.close()


class RuntimeHolder:
    """Builds the runtime on first use (nothing slow at import time) and shares it for the process's life.

    With `settings` None the runtime reads the process environment when it is built (the deployed app);
    tests and tools pass explicit settings.
    """

    def __init__(self, agents: Mapping[str, AgentSpec], settings: AppSettings | None = None) -> None:
        self.agents = dict(agents)
        self._settings = settings
        self._runtime: Runtime | None = None
        self._lock: asyncio.Lock | None = None

    @property
    def built(self) -> Runtime | None:
        """The runtime once the first request has built it (None before): for tests and tools that inspect it."""
        return self._runtime

    async def get(self) -> Runtime:
        if self._runtime is not None:
            return self._runtime
        if self._lock is None:
            self._lock = asyncio.Lock()
        async with self._lock:
            if self._runtime is None:
                settings = self._settings or AppSettings.from_env()
                await telemetry.ensure_configured(settings)
                auth = Authenticator(auth_config(settings))
                store = build_store(settings)
                client, kind = build_model_client(settings)
                try:
                    await store.ensure_table()
                except Exception as exc:  # the table may be created by infra and our identity may not create tables
                    logger.warning("could not ensure table %s exists: %s", settings.sessions_table, exc)
                self._runtime = Runtime(settings, store, client, kind, self.agents, auth)
                logger.info("runtime ready: model=%s table=%s", kind, settings.sessions_table)
        return self._runtime

    async def close(self) -> None:
        if self._runtime is not None:
            await self._runtime.close()
            self._runtime = None

    def reconfigure(self, settings: AppSettings) -> None:
        """Apply other settings to a running app, keeping its clients; nothing is read from the environment.

        For tests and tools that vary limits, TTL or auth between requests.
        """
        self._settings = settings
        if self._runtime is not None:
            self._runtime.settings = settings
            self._runtime.auth.reconfigure(auth_config(settings))
            self._runtime.store = self._runtime.store.with_limits(store_limits(settings))
