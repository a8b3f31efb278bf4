"""Sessions in Azure Table Storage: the store (store.py), the row layout and packing (layout.py), errors (errors.py)."""

from .errors import (
    InvalidSessionIdError,
    SessionConflictError,
    SessionExistsError,
    SessionFullError,
    SessionLayoutError,
    SessionNotFoundError,
    StorageUnavailableError,
    StoreError,
    TurnTooLargeError,
)
from .layout import HEADER_RK, SESSION_ID_PATTERN, HistoryMode, StoredSession, partition_key
from .store import STORAGE_RETRIES, RequestCounter, StoreLimits, TableSessionStore

__all__ = [
    "HEADER_RK",
    "SESSION_ID_PATTERN",
    "STORAGE_RETRIES",
    "HistoryMode",
    "InvalidSessionIdError",
    "RequestCounter",
    "SessionConflictError",
    "SessionExistsError",
    "SessionFullError",
    "SessionLayoutError",
    "SessionNotFoundError",
    "StorageUnavailableError",
    "StoreError",
    "StoreLimits",
    "StoredSession",
    "TableSessionStore",
    "TurnTooLargeError",
    "partition_key",
]
