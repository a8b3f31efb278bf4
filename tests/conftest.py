"""Shared fixtures: the OpenAI-compatible echo model on loopback, and agent_core clients pointed at it."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from agent_core.offline_model import OfflineModel, OfflineModelServer
from agent_core.openai import OpenAIResponsesClient

from .azurite import Azurite


@pytest.fixture(scope="session")
def model_server() -> Iterator[OfflineModelServer]:
    with OfflineModelServer() as server:
        yield server


@pytest.fixture
def model(model_server: OfflineModelServer) -> OfflineModel:
    """The echo model, reset for each test: no stored responses, conversations, faults or recorded requests."""
    model_server.model.reset()
    return model_server.model


@pytest.fixture
def client(model_server: OfflineModelServer, model: OfflineModel) -> OpenAIResponsesClient:
    """A real AsyncOpenAI-based client over HTTP to the echo model; no SDK retries so faults surface once."""
    return OpenAIResponsesClient(model="echo-1", api_key="test-key", base_url=model_server.base_url, max_retries=0)


@pytest.fixture(scope="session")
def azurite() -> Iterator[Azurite]:
    """One Azurite Table service for the test session (in memory); tests use their own tables."""
    server = Azurite()
    try:
        yield server
    finally:
        server.stop()
