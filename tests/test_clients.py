"""Client construction: settings fallbacks, endpoints, key and Entra ID auth, clear configuration errors."""

from __future__ import annotations

import time
from typing import Any

import pytest
from azure.core.credentials import AccessToken

from agent_core import ConfigurationError
from agent_core.azure import AZURE_OPENAI_SCOPE, FOUNDRY_SCOPE, AzureOpenAIResponsesClient
from agent_core.openai import OpenAIResponsesClient
from devtools.echo_model import EchoModel, EchoModelServer

from .helpers import seen_user_messages

AZURE_SETTINGS = [
    "AZURE_AI_PROJECT_ENDPOINT",
    "AZURE_OPENAI_ENDPOINT",
    "AZURE_OPENAI_RESPONSES_DEPLOYMENT_NAME",
    "AZURE_OPENAI_API_KEY",
    "AZURE_OPENAI_API_VERSION",
    "OPENAI_API_KEY",
    "OPENAI_RESPONSES_MODEL_ID",
    "OPENAI_BASE_URL",
]


@pytest.fixture(autouse=True)
def clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in AZURE_SETTINGS:
        monkeypatch.delenv(name, raising=False)


class StaticCredential:
    """An async azure-core token credential issuing a fixed token and recording the scopes asked for."""

    def __init__(self) -> None:
        self.scopes: list[tuple[str, ...]] = []

    async def get_token(
        self,
        *scopes: str,
        claims: str | None = None,
        tenant_id: str | None = None,
        enable_cae: bool = False,
        **kwargs: Any,
    ) -> AccessToken:
        self.scopes.append(scopes)
        return AccessToken("entra-token", int(time.time()) + 3600)

    async def close(self) -> None:
        pass

    async def __aenter__(self) -> StaticCredential:
        return self

    async def __aexit__(self, *args: object) -> None:
        pass


def root(server: EchoModelServer) -> str:
    return server.base_url.removesuffix("/v1")


def test_missing_settings_name_the_setting():
    with pytest.raises(ConfigurationError, match=r"AZURE_AI_PROJECT_ENDPOINT.*AZURE_OPENAI_ENDPOINT"):
        AzureOpenAIResponsesClient(deployment_name="gpt")
    with pytest.raises(ConfigurationError, match="AZURE_OPENAI_RESPONSES_DEPLOYMENT_NAME"):
        AzureOpenAIResponsesClient(endpoint="https://x.openai.azure.com", api_key="k")
    with pytest.raises(ConfigurationError, match="OPENAI_RESPONSES_MODEL_ID"):
        OpenAIResponsesClient(api_key="k")
    with pytest.raises(ConfigurationError, match="OPENAI_API_KEY"):
        OpenAIResponsesClient(model="gpt")


def test_endpoints_map_to_v1_base_urls_and_scopes():
    foundry = AzureOpenAIResponsesClient(
        project_endpoint="https://acct.services.ai.azure.com/api/projects/proj/",
        deployment_name="gpt",
        credential=StaticCredential(),
    )
    assert foundry.base_url == "https://acct.services.ai.azure.com/api/projects/proj/openai/v1"
    assert (foundry.scope, foundry.uses_entra_id) == (FOUNDRY_SCOPE, True)
    resource = AzureOpenAIResponsesClient(endpoint="https://res.openai.azure.com", deployment_name="gpt", api_key="k")
    assert resource.base_url == "https://res.openai.azure.com/openai/v1"
    assert (resource.scope, resource.uses_entra_id) == (AZURE_OPENAI_SCOPE, False)


async def test_settings_fallback_and_key_auth(
    monkeypatch: pytest.MonkeyPatch, model_server: EchoModelServer, model: EchoModel
):
    monkeypatch.setenv("AZURE_OPENAI_ENDPOINT", root(model_server))
    monkeypatch.setenv("AZURE_OPENAI_RESPONSES_DEPLOYMENT_NAME", "my-deployment")
    monkeypatch.setenv("AZURE_OPENAI_API_KEY", "secret-key")
    monkeypatch.setenv("AZURE_OPENAI_API_VERSION", "preview")
    client = AzureOpenAIResponsesClient(max_retries=0)
    reply = await client.as_agent().run("hi")
    assert seen_user_messages(reply.text) == ["hi"]
    request = model.requests[-1]
    assert request.path.endswith("/openai/v1/responses")
    assert request.headers["api-key"] == "secret-key"
    assert request.body is not None
    assert request.body["model"] == "my-deployment"


async def test_entra_id_token_for_foundry_project(model_server: EchoModelServer, model: EchoModel):
    credential = StaticCredential()
    client = AzureOpenAIResponsesClient(
        project_endpoint=f"{root(model_server)}/api/projects/demo",
        deployment_name="gpt",
        credential=credential,
        max_retries=0,
    )
    await client.as_agent().run("hi")
    await client.as_agent().run("again")
    request = model.requests[-1]
    assert request.path.endswith("/api/projects/demo/openai/v1/responses")
    assert request.headers["authorization"] == "Bearer entra-token"
    assert "api-key" not in request.headers
    assert credential.scopes == [(FOUNDRY_SCOPE,)]  # the token is cached between calls
    await client.close()


async def test_openai_client_from_settings(monkeypatch: pytest.MonkeyPatch, model_server: EchoModelServer, model):
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test")
    monkeypatch.setenv("OPENAI_RESPONSES_MODEL_ID", "gpt-test")
    monkeypatch.setenv("OPENAI_BASE_URL", model_server.base_url)
    client = OpenAIResponsesClient(max_retries=0)
    await client.as_agent().run("hi")
    assert model.requests[-1].headers["authorization"] == "Bearer sk-test"
    assert model.responses_requests()[-1]["model"] == "gpt-test"
