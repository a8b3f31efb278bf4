"""AzureOpenAIResponsesClient: the Responses API (v1) on an Azure AI Foundry project or Azure OpenAI resource."""

from __future__ import annotations

import asyncio
import inspect
import os
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, ClassVar, TypeAlias, cast

import httpx2
import openai

from .exceptions import ConfigurationError
from .model_client import ResponsesClient, sdk_options

if TYPE_CHECKING:
    from azure.core.credentials import TokenCredential
    from azure.core.credentials_async import AsyncTokenCredential

    Credential: TypeAlias = AsyncTokenCredential | TokenCredential
else:
    Credential = object

FOUNDRY_SCOPE = "https://ai.azure.com/.default"
AZURE_OPENAI_SCOPE = "https://cognitiveservices.azure.com/.default"


def _v1_base_url(endpoint: str) -> str:
    endpoint = endpoint.rstrip("/")
    return endpoint if endpoint.endswith("/openai/v1") else f"{endpoint}/openai/v1"


def _token_provider(credential: Credential, scope: str) -> Callable[[], Awaitable[str]]:
    """An async bearer-token callable for `AsyncOpenAI(api_key=...)`; accepts async or sync credentials."""
    from azure.identity.aio import get_bearer_token_provider

    if inspect.iscoroutinefunction(credential.get_token):
        return get_bearer_token_provider(cast("AsyncTokenCredential", credential), scope)
    sync_credential = cast("TokenCredential", credential)

    async def sync_provider() -> str:  # a sync azure.identity credential: keep the event loop free
        token = await asyncio.to_thread(sync_credential.get_token, scope)
        return token.token

    return sync_provider


class AzureOpenAIResponsesClient(ResponsesClient):
    """Responses API client for Azure. Key auth when a key is given, else Entra ID (DefaultAzureCredential).

    Settings used when an argument is omitted: AZURE_AI_PROJECT_ENDPOINT, AZURE_OPENAI_ENDPOINT,
    AZURE_OPENAI_RESPONSES_DEPLOYMENT_NAME, AZURE_OPENAI_API_KEY, AZURE_OPENAI_API_VERSION.
    """

    otel_provider_name: ClassVar[str] = "azure.ai.openai"

    def __init__(
        self,
        *,
        project_endpoint: str | None = None,
        endpoint: str | None = None,
        deployment_name: str | None = None,
        api_key: str | None = None,
        credential: Credential | None = None,
        api_version: str | None = None,
        timeout: float | None = None,
        max_retries: int | None = None,
        http_client: httpx2.AsyncClient | None = None,
    ) -> None:
        env = os.environ
        if not project_endpoint and not endpoint:
            project_endpoint = env.get("AZURE_AI_PROJECT_ENDPOINT") or None
            endpoint = None if project_endpoint else env.get("AZURE_OPENAI_ENDPOINT") or None
        if not project_endpoint and not endpoint:
            raise ConfigurationError(
                "AzureOpenAIResponsesClient needs an endpoint: set AZURE_AI_PROJECT_ENDPOINT (Foundry project, "
                "https://<account>.services.ai.azure.com/api/projects/<project>) or AZURE_OPENAI_ENDPOINT "
                "(https://<resource>.openai.azure.com), or pass project_endpoint= / endpoint="
            )
        deployment_name = deployment_name or env.get("AZURE_OPENAI_RESPONSES_DEPLOYMENT_NAME")
        if not deployment_name:
            raise ConfigurationError(
                "AzureOpenAIResponsesClient needs a model deployment: set AZURE_OPENAI_RESPONSES_DEPLOYMENT_NAME "
                "or pass deployment_name="
            )
        api_key = api_key or (env.get("AZURE_OPENAI_API_KEY") if credential is None else None) or None
        api_version = api_version or env.get("AZURE_OPENAI_API_VERSION") or None
        if project_endpoint:
            base_url, scope = _v1_base_url(project_endpoint), FOUNDRY_SCOPE
        else:
            assert endpoint is not None
            base_url, scope = _v1_base_url(endpoint), AZURE_OPENAI_SCOPE
        self.base_url = base_url
        self.scope = scope
        self.uses_entra_id = api_key is None
        auth: str | Callable[[], Awaitable[str]]
        if api_key:
            auth = api_key
        else:
            if credential is None:
                from azure.identity.aio import DefaultAzureCredential

                credential = DefaultAzureCredential()  # honours AZURE_CLIENT_ID for a user-assigned identity
            auth = _token_provider(credential, scope)
        self.credential = credential
        super().__init__(
            client=openai.AsyncOpenAI(
                api_key=auth,
                base_url=base_url,
                default_headers={"api-key": api_key} if api_key else None,
                default_query={"api-version": api_version} if api_version else None,
                **sdk_options(timeout=timeout, max_retries=max_retries, http_client=http_client),
            ),
            model=deployment_name,
        )

    async def close(self) -> None:
        await super().close()
        close = getattr(self.credential, "close", None)
        if close is not None and inspect.iscoroutinefunction(close):
            await close()
