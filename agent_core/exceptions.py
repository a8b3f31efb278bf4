"""Typed errors raised by agent_core, so callers (and the HTTP layer) can map each to a clear response."""

from __future__ import annotations


class AgentCoreError(Exception):
    """Base class of every error agent_core raises on purpose."""


class ConfigurationError(AgentCoreError):
    """A client or agent is missing configuration; the message names the setting to set."""


class SessionSerializationError(AgentCoreError):
    """A session (or a value in its state) cannot be turned into JSON or back."""


class AgentInputError(AgentCoreError, ValueError):
    """The messages or options given to `Agent.run` are malformed."""


class ApprovalError(AgentInputError):
    """Approval decisions do not match the session's pending approval requests."""

    def __init__(self, message: str, *, pending_ids: list[str] | None = None) -> None:
        super().__init__(message)
        self.pending_ids = pending_ids or []


class ModelError(AgentCoreError):
    """The model service failed a request. The session is left exactly as it was before the run.

    `code` is the service's error code when it gave one (e.g. `context_length_exceeded`,
    `rate_limit_exceeded`), so callers can tell failures of the same status apart.
    """

    def __init__(self, message: str, *, status_code: int | None = None, code: str | None = None) -> None:
        super().__init__(message)
        self.status_code = status_code
        self.code = code


class ModelRateLimitError(ModelError):
    """The model service is throttling (429) or temporarily unavailable (503)."""

    def __init__(
        self,
        message: str,
        *,
        status_code: int | None = 429,
        retry_after: float | None = None,
        code: str | None = None,
    ) -> None:
        super().__init__(message, status_code=status_code, code=code)
        self.retry_after = retry_after


class ModelTimeoutError(ModelError):
    """The model service did not answer in time."""


class ModelBadRequestError(ModelError):
    """The model service rejected the request (4xx other than auth and throttling)."""


class ModelAuthenticationError(ModelError):
    """The model service refused our credentials (401/403): a deployment problem, not a user one."""


class ModelServiceError(ModelError):
    """The model service failed (5xx, broken connection, or a failed streamed response)."""


class StructuredOutputError(AgentCoreError):
    """The model's reply does not match the run's `response_format`; the session is left as it was."""

    def __init__(self, message: str, *, text: str = "") -> None:
        super().__init__(message)
        self.text = text


class CompactionError(AgentCoreError):
    """A compaction was asked of messages that do not match the session's compaction state."""
