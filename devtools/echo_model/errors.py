"""OpenAI-style error answers: the HTTP status and the `{"error": {...}}` body the real API sends."""

from __future__ import annotations

from typing import Any

JSON = dict[str, Any]

_DEFAULT_CODES = {401: "invalid_api_key", 404: "not_found", 408: "timeout", 429: "rate_limit_exceeded"}


class ApiError(Exception):
    """An error answer: HTTP status plus the fields of the `error` object (`type` follows from the status)."""

    def __init__(self, status: int, message: str, *, param: str | None = None, code: str | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.param = param
        self.code = code or _DEFAULT_CODES.get(status)

    def body(self) -> JSON:
        status = self.status
        kind = "requests" if status == 429 else "server_error" if status >= 500 else "invalid_request_error"
        return {"error": {"message": self.message, "type": kind, "param": self.param, "code": self.code}}
