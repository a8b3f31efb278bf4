"""A metaclass that applies history options a subclass's `__init__` does not take, after that `__init__` ran.

Why it exists: the reference page defines `DatabaseHistoryProvider.__init__(self, db_connection)` and then
constructs it as `DatabaseHistoryProvider(db, load_messages=True, store_inputs=True, ...)`. Plain Python
would raise `TypeError` there. With this metaclass, each of the named boolean options that the class's
`__init__` does not accept (and that no `**kwargs` would take) is held back from `__init__` and set as an
attribute on the new instance afterwards. Nothing else is changed: any other unknown keyword still raises.
"""

from __future__ import annotations

import inspect
from abc import ABCMeta
from typing import Any

HISTORY_OPTIONS = ("load_messages", "store_inputs", "store_outputs", "store_context_messages")


class DeferredHistoryOptionsMeta(ABCMeta):
    """`cls(*args, load_messages=..., ...)` works even when `cls.__init__` only takes `*args`."""

    def __call__(cls, *args: Any, **kwargs: Any) -> Any:
        params = inspect.signature(cls.__init__).parameters  # type: ignore[misc]
        takes_any = any(p.kind is p.VAR_KEYWORD for p in params.values())
        deferred = {k: kwargs.pop(k) for k in HISTORY_OPTIONS if k in kwargs and k not in params and not takes_any}
        instance = super().__call__(*args, **kwargs)
        for key, value in deferred.items():
            setattr(instance, key, bool(value))
        return instance
