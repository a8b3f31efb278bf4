"""The echo model over real HTTP: in a background thread (tests, bench), or as a process of its own (CLI)."""

from __future__ import annotations

from ..serving import ThreadedServer
from .app import EchoModel


class EchoModelServer(ThreadedServer):
    """Runs an EchoModel under uvicorn on 127.0.0.1 in a background thread (free port); `base_url` ends in /v1."""

    def __init__(self, model: EchoModel | None = None) -> None:
        self.model = model if model is not None else EchoModel()
        super().__init__(self.model, name="echo-model")
        self.base_url = f"http://127.0.0.1:{self.port}/v1"
