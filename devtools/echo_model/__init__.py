"""A deterministic "echo" model speaking the OpenAI Responses + Conversations wire format (tests, bench, local runs).

Tests point the real openai SDK at it over HTTP (`EchoModelServer`); `python -m devtools.echo_model` serves it
on a port of its own. What it answers is written in `replies`, how it counts tokens and applies a context
window in `items` and `window`, structured output in `structured`, reasoning items in `reasoning`.
"""

from .app import EchoModel, RecordedRequest
from .server import EchoModelServer

__all__ = ["EchoModel", "EchoModelServer", "RecordedRequest"]
