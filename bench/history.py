"""Sessions with exactly N turns of history, fast: one template grown through the store, then cloned.

The template grows turn by turn through `TableSessionStore.commit_turn` (the path every turn's write takes),
with messages of fixed sizes, and the body bytes of each commit are recorded (measure #2). Clones copy its
partition under a new session id in transactions of 100 rows, so each measured turn starts from exactly the
history length it is labelled with.
"""

from __future__ import annotations

import secrets
from time import perf_counter
from typing import Any

from azure.data.tables.aio import TableClient

from agent_core import Message
from service.storage import StoredSession, partition_key

from .storage import CountingStore, clone_partition

OWNER = "anonymous"  # the principal the HTTP API uses when no platform header is sent
AGENT = "general"
ASSISTANT_TEXT = ("The answer, in a few sentences of ordinary length. " * 12)[:600]


def seed_messages(turn: int) -> list[Message]:
    """A turn of fixed size: a short question (so the echo model's recap stays small) and a 600-char answer."""
    return [Message("user", text=f"q{turn:05d}"), Message("assistant", text=ASSISTANT_TEXT)]


async def commit(seeder: CountingStore, stored: StoredSession, messages: list[Message]) -> StoredSession:
    return await seeder.store.commit_turn(stored, messages)


class HistorySeeder:
    """One template session of the general agent, grown on demand; `bytes_per_turn[i]` is turn i+1's write."""

    def __init__(self, seeder: CountingStore, raw: TableClient) -> None:
        self.seeder = seeder
        self.raw = raw
        self.template: StoredSession | None = None
        self.bytes_per_turn: list[int] = []
        self.seconds_per_turn: list[float] = []

    async def create(self, prefix: str) -> StoredSession:
        return await self.seeder.store.create(
            owner=OWNER,
            agent=AGENT,
            session_id=f"{prefix}-{secrets.token_hex(6)}",
            history="local",
            service_session_id=None,
            state={},
        )

    async def new_session(self, prefix: str, turns: int) -> StoredSession:
        """A fresh session with `turns` seeded turns (not the template: for short histories)."""
        stored = await self.create(prefix)
        while stored.turns < turns:
            stored = await commit(self.seeder, stored, seed_messages(stored.turns + 1))
        return stored

    async def grow_to(self, turns: int) -> StoredSession:
        if self.template is None:
            self.template = await self.create("template")
        while self.template.turns < turns:
            before = self.seeder.bytes.written
            started = perf_counter()
            self.template = await commit(self.seeder, self.template, seed_messages(self.template.turns + 1))
            self.seconds_per_turn.append(perf_counter() - started)
            self.bytes_per_turn.append(self.seeder.bytes.written - before)
        return self.template

    async def clone(self, prefix: str) -> tuple[str, str]:
        """A new session (id, partition key) with the template's current history (`grow_to` sets its length)."""
        assert self.template is not None, "grow_to() first"
        session_id = f"{prefix}-{secrets.token_hex(6)}"
        pk = partition_key(OWNER, AGENT, session_id)
        await clone_partition(self.raw, self.template.pk, pk, session_id)
        return session_id, pk

    async def close(self) -> None:
        await self.seeder.close()
        await self.raw.close()

    def summary(self) -> dict[str, Any]:
        return {"turns": len(self.bytes_per_turn), "bytes_per_turn": self.bytes_per_turn}
