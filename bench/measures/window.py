"""#1: what a turn reads at 1 / 10 / 100 / 1,000 / 10,000 turns of history, and what a turn and a history page
cost at 10,000 turns against 10.

Each session is created over HTTP, then seeded straight into its partition (devtools/seed_history.py, 100 rows
per transaction) with the header a served agent's compaction leaves: a summary and a window of the last
`window_turns` turns (a session shorter than that has no compaction yet). Then real turns run over HTTP,
interleaved across the lengths, and after each one a history page is read (`order=desc`, the page a chat
client opens with, and `order=asc` from the oldest). Entities read are the app store's own count of the rows
its queries returned; round trips are its logical operations and HTTP requests. The first turn on each
session is a warm-up: the app has not seen the seeded window yet, so its first load takes two requests.
"""

from __future__ import annotations

import secrets
from time import perf_counter
from typing import Any

import httpx2
from azure.data.tables.aio import TableClient

from devtools.seed_history import seed_history
from service.storage import TableSessionStore
from service.storage.layout import turn_range

from ..context import Context
from ..history import AGENT, OWNER, seed_messages
from ..result import Result
from ..services import diff
from ..stats import median, ms
from ..storage import LIMITS

RATIO_TARGET = 1.2
PAGE_LIMIT = 50


async def seeded_session(
    http: httpx2.AsyncClient, store: TableSessionStore, raw: TableClient, turns: int, window: int
) -> str:
    response = await http.post(f"/agents/{AGENT}/sessions", json={"session_id": f"w{turns}-{secrets.token_hex(4)}"})
    response.raise_for_status()
    session_id: str = response.json()["session_id"]
    stored = await store.load(OWNER, AGENT, session_id, with_history=False)
    await seed_history(raw, stored, turns, seed_messages, window_turns=window if turns > window else None)
    return session_id


async def raw_page_query(raw: TableClient, store: TableSessionStore, session_id: str) -> float:
    """The storage floor of a page: the same kind of range query (the last 25 turns), issued directly."""
    stored = await store.load(OWNER, AGENT, session_id, with_history=False)
    low, high = turn_range(stored.inc, max(1, stored.turns - 24), stored.turns)
    started = perf_counter()
    query = "PartitionKey eq @pk and RowKey ge @low and RowKey lt @high"
    rows = [r async for r in raw.query_entities(query, parameters={"pk": stored.pk, "low": low, "high": high})]
    seconds = perf_counter() - started
    if not rows:
        raise RuntimeError("the floor's range query found no rows")
    return seconds


async def timed(http: httpx2.AsyncClient, method: str, url: str, **kw: Any) -> tuple[float, dict[str, Any]]:
    started = perf_counter()
    response = await http.request(method, url, **kw)
    seconds = perf_counter() - started
    if response.status_code != 200:
        raise RuntimeError(f"{method} {url}: {response.status_code} {response.text[:300]}")
    payload: dict[str, Any] = response.json()
    return seconds, payload


async def run(ctx: Context) -> list[Result]:
    sizes, app = ctx.sizes, ctx.app()
    raw = TableClient.from_connection_string(ctx.connection_string, ctx.table)
    store = TableSessionStore.from_connection_string(ctx.connection_string, ctx.table, LIMITS)
    figures: dict[int, dict[str, Any]] = {}
    try:
        async with httpx2.AsyncClient(base_url=app.base_url, timeout=120) as http:
            sessions = {}
            for length in sizes.window_lengths:
                started = perf_counter()
                sessions[length] = await seeded_session(http, store, raw, length, sizes.window_turns)
                figures[length] = {"seed_seconds": round(perf_counter() - started, 2), "turn_s": [], "entities": []}
                for series in ("ops", "requests", "desc_s", "asc_s", "page_entities", "floor_s"):
                    figures[length][series] = []
            for session_id in sessions.values():  # warm-up: the app learns each seeded window's size
                await timed(http, "POST", f"/agents/{AGENT}/sessions/{session_id}/messages", json={"message": "hi"})
            for sample in range(sizes.window_samples):
                for length, session_id in sessions.items():
                    url = f"/agents/{AGENT}/sessions/{session_id}/messages"
                    entry = figures[length]
                    before = app.counters()
                    seconds, _ = await timed(http, "POST", url, json={"message": f"question {sample}"})
                    after = app.counters()
                    entry["turn_s"].append(seconds)
                    entry["entities"].append(after["entities"] - before["entities"])
                    entry["ops"].append(diff(after["operations"], before["operations"]))
                    entry["requests"].append(diff(after["requests"], before["requests"]))
                    before = app.counters()
                    seconds, page = await timed(http, "GET", url, params={"limit": PAGE_LIMIT, "order": "desc"})
                    entry["desc_s"].append(seconds)
                    entry["page_entities"].append(app.counters()["entities"] - before["entities"])
                    seconds, _ = await timed(http, "GET", url, params={"limit": PAGE_LIMIT, "order": "asc"})
                    entry["asc_s"].append(seconds)
                    entry["floor_s"].append(await raw_page_query(raw, store, session_id))
                    if len(page["messages"]) != min(PAGE_LIMIT, 2 * (length + 2 + sample)):
                        raise RuntimeError(f"a page of {len(page['messages'])} messages at {length} turns")
    finally:
        await raw.close()
        await store.close()
    return [result(figures, sizes.window_turns)]


def result(figures: dict[int, dict[str, Any]], window_turns: int) -> Result:
    lengths = sorted(figures)
    short, long_ = (10 if 10 in figures else lengths[0]), lengths[-1]
    per_turn = {n: max(f["entities"]) for n, f in figures.items()}
    turn_ratio = median(figures[long_]["turn_s"]) / median(figures[short]["turn_s"])
    desc_ratio = median(figures[long_]["desc_s"]) / median(figures[short]["desc_s"])
    asc_ratio = median(figures[long_]["asc_s"]) / median(figures[short]["asc_s"])
    floor_ratio = median(figures[long_]["floor_s"]) / median(figures[short]["floor_s"])
    flat = [per_turn[n] for n in lengths if n >= 100] or [per_turn[long_]]
    bounded = max(flat) <= 1 + window_turns + max(len(f["entities"]) for f in figures.values()) + 1
    ops_ok = all(o == {"read": 1, "write": 2} for f in figures.values() for o in f["ops"])
    met = bounded and max(flat) == min(flat) and turn_ratio <= RATIO_TARGET and desc_ratio <= RATIO_TARGET and ops_ok
    reads = " / ".join(f"{per_turn[n]:,}" for n in lengths)
    measured = (
        f"entities read per turn at {' / '.join(f'{n:,}' for n in lengths)} turns: {reads} (max of the samples; "
        f"1 read + 2 writes each: {'yes' if ops_ok else 'no'}); turn {ms(median(figures[long_]['turn_s'])):.1f} ÷ "
        f"{ms(median(figures[short]['turn_s'])):.1f} ms = ×{turn_ratio:.2f}; history page (desc) "
        f"{ms(median(figures[long_]['desc_s'])):.1f} ÷ {ms(median(figures[short]['desc_s'])):.1f} ms = "
        f"×{desc_ratio:.2f} (asc ×{asc_ratio:.2f}), {max(figures[long_]['page_entities'])} entities a page at both; "
        f"Azurite's own range query of 25 turns on the same sessions ×{floor_ratio:.2f}"
    )
    return Result(
        id=1,
        title="Entities read per turn; a turn and a history page at 10,000 turns ÷ at 10",
        target=f"bounded by the window and flat from 100 turns on; turn and page ratios ≤ {RATIO_TARGET}",
        measured=measured,
        met=met,
        figures={
            "window_turns": window_turns,
            "by_history": [
                {
                    "history_turns": n,
                    "entities_per_turn": figures[n]["entities"],
                    "operations": figures[n]["ops"][0] if figures[n]["ops"] else {},
                    "requests": figures[n]["requests"][0] if figures[n]["requests"] else {},
                    "turn_ms_p50": ms(median(figures[n]["turn_s"])),
                    "page_desc_ms_p50": ms(median(figures[n]["desc_s"])),
                    "page_asc_ms_p50": ms(median(figures[n]["asc_s"])),
                    "floor_ms_p50": ms(median(figures[n]["floor_s"])),
                    "page_entities": figures[n]["page_entities"],
                    "seed_seconds": figures[n]["seed_seconds"],
                }
                for n in lengths
            ],
            "turn_ratio": round(turn_ratio, 3),
            "page_desc_ratio": round(desc_ratio, 3),
            "page_asc_ratio": round(asc_ratio, 3),
            "floor_ratio": round(floor_ratio, 3),
        },
        notes=[
            f"Sessions seeded with a compaction window of the last {window_turns} turns (shorter ones whole); each "
            "measured turn adds one turn to the window, so the window grows by one row per sample. Entities are "
            "the rows the app store's queries returned (header included).",
            "The floor is the same kind of row-key range query (25 turns) issued directly with azure-data-tables on "
            "the same sessions: how much of the page's time ratio is the emulator's own.",
        ],
    )
