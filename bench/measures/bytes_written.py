"""#2: bytes written per turn at turn 1,000 ÷ at turn 1, with messages of the same sizes.

The bytes are the request bodies the store sends to Table Storage for each turn's commit (the entity group
transaction: header + turn row), counted by an azure-core policy on the template session's store.
"""

from __future__ import annotations

from ..context import Context
from ..result import Result
from ..stats import ratio

TARGET = 1.2


async def run(ctx: Context) -> list[Result]:
    history = await ctx.history()
    last = max(ctx.sizes.history_lengths)
    await history.grow_to(last)
    series = history.bytes_per_turn
    first_bytes, last_bytes = series[0], series[last - 1]
    growth = ratio(last_bytes, first_bytes)
    return [
        Result(
            id=2,
            title="Bytes written per turn, turn N ÷ turn 1",
            target=f"≤ {TARGET}",
            measured=f"turn 1: {first_bytes} B, turn {last}: {last_bytes} B → {growth}",
            met=growth <= TARGET,
            figures={
                "turn_1_bytes": first_bytes,
                f"turn_{last}_bytes": last_bytes,
                "ratio": growth,
                "bytes_per_turn": series,
                "message_bytes_per_turn": {"user": 6, "assistant": 600},
            },
        )
    ]
