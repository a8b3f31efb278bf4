"""OpenAIResponsesClient: the Responses API on OpenAI or any OpenAI-compatible endpoint."""

from __future__ import annotations

import os

import httpx2
import openai

from .exceptions import ConfigurationError
from .model_client import ResponsesClient, sdk_options


class OpenAIResponsesClient(ResponsesClient):
    """Responses API client for OpenAI (`OPENAI_API_KEY`, `OPENAI_RESPONSES_MODEL_ID`) or a compatible server."""

    def __init__(
        self,
        model: str | None = None,
        *,
        api_key: str | None = None,
        base_url: str | None = None,
        timeout: float | None = None,
        max_retries: int | None = None,
        http_client: httpx2.AsyncClient | None = None,
        async_client: openai.AsyncOpenAI | None = None,
    ) -> None:
        model = model or os.environ.get("OPENAI_RESPONSES_MODEL_ID")
        if not model:
            raise ConfigurationError(
                "OpenAIResponsesClient needs a model: pass model= or set OPENAI_RESPONSES_MODEL_ID"
            )
        if async_client is None:
            api_key = api_key or os.environ.get("OPENAI_API_KEY")
            if not api_key:
                raise ConfigurationError("OpenAIResponsesClient needs an API key: pass api_key= or set OPENAI_API_KEY")
            async_client = openai.AsyncOpenAI(
                api_key=api_key,
                base_url=base_url or os.environ.get("OPENAI_BASE_URL") or None,
                **sdk_options(timeout=timeout, max_retries=max_retries, http_client=http_client),
            )
        super().__init__(client=async_client, model=model)


OpenAIChatClient = OpenAIResponsesClient
"""Agent Framework 1.x's name for its Responses API client on OpenAI; the same class."""
