"""Errors as application/problem+json (RFC 9457): client mistakes are 4xx, upstream trouble 5xx, never a trace."""

from __future__ import annotations

import logging
import math
from typing import Any

from pydantic import ValidationError
from starlette.requests import Request
from starlette.responses import Response

from agent_core.exceptions import (
    AgentInputError,
    ApprovalError,
    ConfigurationError,
    ModelAuthenticationError,
    ModelBadRequestError,
    ModelError,
    ModelRateLimitError,
    ModelTimeoutError,
    SessionSerializationError,
)

from ..auth import AuthenticationError, IdentityProviderUnavailableError
from ..ownership import ConversationNotFoundError, UnboundConversationError
from ..storage import (
    InvalidSessionIdError,
    SessionConflictError,
    SessionExistsError,
    SessionLayoutError,
    SessionNotFoundError,
    StorageUnavailableError,
    TurnTooLargeError,
)
from ..storage.branching import BranchingError
from ..turns import IdempotencyKeyReusedError, TurnInProgressError
from .replies import Problem

logger = logging.getLogger(__name__)

DEFAULT_RETRY_AFTER = 5
"""Seconds to tell a client when the model or storage is throttling without saying (or saying `soon`)."""
MAX_RETRY_AFTER = 300
"""The longest Retry-After passed on: a far-future date from upstream means "later", not years."""


class HttpError(Exception):
    """An error answered as application/problem+json."""

    def __init__(
        self,
        status: int,
        title: str,
        detail: str,
        *,
        retry_after: float | None = None,
        headers: dict[str, str] | None = None,
        **extra: Any,
    ) -> None:
        super().__init__(detail)
        self.status, self.title, self.detail, self.retry_after, self.extra = status, title, detail, retry_after, extra
        self.headers = headers or {}

    def problem(self) -> Problem:
        """The body: a `Problem` (replies.py), so an extra field the model does not describe fails loudly."""
        return Problem(type="about:blank", title=self.title, status=self.status, detail=self.detail, **self.extra)

    def response(self, headers: dict[str, str] | None = None) -> Response:
        headers = {**self.headers, **(headers or {})}
        if self.retry_after is not None:
            headers["Retry-After"] = str(min(max(1, math.ceil(self.retry_after)), MAX_RETRY_AFTER))
        return self.problem().response(self.status, headers)


def not_found(what: str) -> HttpError:
    return HttpError(404, "Not Found", f"no such {what}")


def too_large(detail: str) -> HttpError:
    return HttpError(413, "Content Too Large", detail)


def bad_request(detail: str, **extra: Any) -> HttpError:
    return HttpError(400, "Bad Request", detail, **extra)


def invalid(exc: ValidationError, what: str = "the request body") -> HttpError:
    """400 naming each invalid field."""
    errors = [
        {"field": ".".join(str(p) for p in e["loc"]) or "body", "message": e["msg"]}
        for e in exc.errors(include_url=False)
    ]
    return bad_request(f"{what} is not valid", errors=errors)


def to_http_error(exc: Exception) -> HttpError:
    """The problem for an exception."""
    match exc:
        case HttpError():
            return exc
        case AuthenticationError():
            return HttpError(401, "Unauthorized", exc.detail, headers={"WWW-Authenticate": exc.challenge})
        case IdentityProviderUnavailableError():
            return HttpError(
                503, "Service Unavailable", f"cannot check tokens now: {exc.detail}", retry_after=exc.retry_after
            )
        case SessionNotFoundError() | InvalidSessionIdError():
            return not_found("session")
        case ConversationNotFoundError():
            return not_found("conversation")
        case UnboundConversationError():
            return HttpError(403, "Forbidden", str(exc))
        case BranchingError():
            return HttpError(409, "Conflict", str(exc), retry_after=exc.retry_after, **exc.extra)
        case SessionExistsError() | SessionLayoutError():
            return HttpError(409, "Conflict", str(exc))
        case TurnInProgressError():
            return HttpError(409, "Conflict", f"{exc}; nothing was done for this request", retry_after=exc.retry_after)
        case IdempotencyKeyReusedError():
            return HttpError(422, "Unprocessable Content", str(exc))
        case SessionConflictError():
            return HttpError(409, "Conflict", f"{exc}; retry the turn")
        case ApprovalError():
            return HttpError(409, "Conflict", str(exc), pending_approvals=exc.pending_ids)
        case TurnTooLargeError():
            return too_large(str(exc))
        case SessionSerializationError() | AgentInputError():
            return bad_request(str(exc))
        case StorageUnavailableError():
            return HttpError(
                503, "Service Unavailable", "session storage is busy or unavailable", retry_after=exc.retry_after
            )
        case ModelRateLimitError():
            status = 429 if exc.status_code == 429 else 503
            title = "Too Many Requests" if status == 429 else "Service Unavailable"
            return HttpError(
                status,
                title,
                "the model service is throttling requests",
                retry_after=exc.retry_after or DEFAULT_RETRY_AFTER,
            )
        case ModelTimeoutError():
            return HttpError(504, "Gateway Timeout", "the model did not answer in time")
        case ModelBadRequestError() if exc.status_code == 404:
            return HttpError(
                502,
                "Bad Gateway",
                "the model service has no such model or deployment: check AZURE_OPENAI_RESPONSES_DEPLOYMENT_NAME "
                "(or OPENAI_RESPONSES_MODEL_ID)",
            )
        case ModelBadRequestError():
            return bad_request(f"the model service rejected the request: {exc}")
        case ModelAuthenticationError():
            return HttpError(502, "Bad Gateway", "the app could not authenticate to the model service")
        case ModelError():
            return HttpError(502, "Bad Gateway", "the model service failed")
        case ConfigurationError():
            return HttpError(503, "Service Unavailable", f"the app is not configured: {exc}")
    logger.exception("unhandled error", exc_info=exc)
    return HttpError(500, "Internal Server Error", "unexpected error; see the app's logs")


def method_not_allowed(request: Request, allowed: tuple[str, ...]) -> Response:
    detail = f"{request.method} is not allowed here; use {', '.join(allowed)}"
    return HttpError(405, "Method Not Allowed", detail).response({"Allow": ", ".join(allowed)})
