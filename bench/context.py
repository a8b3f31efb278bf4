"""What the measures share during a run: sizes, Azurite, the echo model, the app process and seeded history."""

from __future__ import annotations

import os
import secrets
from dataclasses import dataclass, field
from pathlib import Path

from .config import Sizes
from .history import HistorySeeder
from .services import AppProcess, ModelProcess, app_settings
from .storage import CountingStore, ensure_table, raw_table


@dataclass
class Context:
    sizes: Sizes
    connection_string: str
    model: ModelProcess
    out_dir: Path
    azurite_pid: int | None = None  # None when the bench uses an Azurite it did not start
    table: str = field(default_factory=lambda: f"bench{secrets.token_hex(4)}")
    _app: AppProcess | None = None
    _history: HistorySeeder | None = None

    def processes(self, app: AppProcess | None = None) -> dict[str, int]:
        """The pids whose CPU time the bench can account for, by role."""
        found = {"bench (clients)": os.getpid(), "echo model": self.model.pid}
        if app is not None:
            found["app"] = app.pid
        if self.azurite_pid is not None:
            found["azurite"] = self.azurite_pid
        return found

    @staticmethod
    def new_table(prefix: str) -> str:
        return f"{prefix}{secrets.token_hex(4)}"

    def settings(self, table: str | None = None) -> dict[str, str]:
        return app_settings(self.connection_string, table or self.table, self.model.base_url)

    def app(self) -> AppProcess:
        """The function app in its own process, on the run's table (started on first use)."""
        if self._app is None:
            self._app = AppProcess(self.settings(), timings=True)
        return self._app

    async def history(self) -> HistorySeeder:
        """The run's template session (on the app's table), shared by the turn measures."""
        if self._history is None:
            self._history = await self.open_history(self.table)
        return self._history

    async def open_history(self, table: str) -> HistorySeeder:
        """A seeder on `table` (created if needed); the caller closes it unless it is the run's own."""
        seeder = CountingStore.open(self.connection_string, table)
        await seeder.store.ensure_table()
        raw = raw_table(self.connection_string, table)
        await ensure_table(raw)
        return HistorySeeder(seeder, raw)

    async def close(self) -> None:
        if self._history is not None:
            await self._history.close()
            self._history = None
        if self._app is not None:
            self._app.stop()
            self._app = None
