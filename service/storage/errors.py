"""The store's typed errors, and the one mapping from azure-core exceptions to them that every store call uses.

No raw SDK exception leaves the store: callers (the HTTP layer, the sweep) handle `StoreError`s only.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime

from azure.core.exceptions import (
    AzureError,
    ResourceExistsError,
    ResourceModifiedError,
    ResourceNotFoundError,
    ServiceRequestError,
    ServiceResponseError,
)
from azure.data.tables import TableTransactionError

from agent_core.exceptions import AgentCoreError

DEFAULT_RETRY_AFTER = 1.0
"""Seconds a client is told to wait when storage is unavailable and says nothing itself."""
MAX_RETRY_AFTER = 60.0


class StoreError(AgentCoreError):
    """Base class of session store failures."""


class InvalidSessionIdError(StoreError):
    """A session id that cannot name a session (bad characters or length): no such session can exist."""


class SessionNotFoundError(StoreError):
    """No such session for this owner and agent (or it expired)."""


class SessionExistsError(StoreError):
    """A session with this id already exists."""


class SessionConflictError(StoreError):
    """Another turn changed the session since it was read; nothing was written."""


class SessionLayoutError(StoreError):
    """The session was stored by an earlier version in a row layout this one does not read (its header's
    `schema`). Nothing is read past the header or written; such a session can still be deleted."""


class TurnTooLargeError(StoreError):
    """A turn or session exceeds a storage limit or a configured maximum; nothing was written."""


class SessionFullError(TurnTooLargeError):
    """The turn would take the session past its size limit (it is, for this and every later turn, full)."""


class StorageUnavailableError(StoreError):
    """Table Storage is throttling, unreachable or failing. `retry_after`: seconds to wait before retrying."""

    def __init__(self, message: str, *, retry_after: float = DEFAULT_RETRY_AFTER) -> None:
        super().__init__(message)
        self.retry_after = retry_after


def _retry_after(exc: AzureError) -> float:
    """The service's Retry-After (seconds or an HTTP-date), clamped to 1-60 s; 1 s when absent or unreadable."""
    response = getattr(exc, "response", None)
    headers = getattr(response, "headers", None) or {}
    value = str(headers.get("Retry-After") or "").strip()
    if not value:
        return DEFAULT_RETRY_AFTER
    try:
        seconds = float(value)
    except ValueError:
        try:
            seconds = (parsedate_to_datetime(value) - datetime.now(UTC)).total_seconds()
        except (TypeError, ValueError):
            return DEFAULT_RETRY_AFTER
    if seconds != seconds:  # NaN
        return DEFAULT_RETRY_AFTER
    return min(max(seconds, DEFAULT_RETRY_AFTER), MAX_RETRY_AFTER)


def to_store_error(exc: AzureError, what: str) -> StoreError:
    """The typed error for an SDK exception raised while doing `what` (e.g. "session 'abc'")."""
    status = getattr(exc, "status_code", None)
    # a 409 on a later entity of a batch: its row exists already, so another turn committed first
    if isinstance(exc, TableTransactionError) and status == 409 and getattr(exc, "index", 0) != 0:
        return SessionConflictError("the session was changed by another turn; nothing was written")
    if isinstance(exc, ResourceModifiedError) or status == 412:
        return SessionConflictError("the session was changed by another turn; nothing was written")
    if isinstance(exc, ResourceNotFoundError) or status == 404:
        return SessionNotFoundError(f"{what} not found")
    if isinstance(exc, ResourceExistsError) or status == 409:
        return SessionExistsError(f"{what} already exists")
    if status == 413:
        return TurnTooLargeError("the turn is too large for one table transaction")
    if isinstance(exc, (ServiceRequestError, ServiceResponseError)) or status is None or status >= 500 or status == 429:
        return StorageUnavailableError(f"table storage is unavailable: {exc}", retry_after=_retry_after(exc))
    return StorageUnavailableError(f"table storage refused a request ({status}): {exc}")


@contextmanager
def storage_errors(what: str) -> Iterator[None]:
    """Run store code, turning any azure-core exception into the store's typed error."""
    try:
        yield
    except AzureError as exc:
        raise to_store_error(exc, what) from exc
