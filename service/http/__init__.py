"""The HTTP API: request bodies (bodies.py), views (views.py), problem+json (problems.py), SSE (sse.py), handlers."""

from .handlers import HttpApi
from .problems import HttpError

__all__ = ["HttpApi", "HttpError"]
