"""Direct Table Storage access for the bench: counting stores, bare clients, partition clones and the raw turn.

The "raw turn" is the storage floor a turn is compared with: the same partition query and the same
ETag-conditioned transaction (header + turn row) a turn commits, issued directly with azure-data-tables.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from time import perf_counter
from typing import Any

from azure.core import MatchConditions
from azure.core.exceptions import ResourceExistsError
from azure.core.pipeline import PipelineRequest, PipelineResponse
from azure.core.pipeline.policies import SansIOHTTPPolicy
from azure.data.tables import UpdateMode
from azure.data.tables.aio import TableClient

from service.storage import HEADER_RK, STORAGE_RETRIES, RequestCounter, StoreLimits, TableSessionStore
from service.storage.layout import turn_rk

_BATCH = 100  # entities per transaction
LIMITS = StoreLimits(ttl_seconds=86_400, max_session_bytes=64 << 20, max_state_bytes=1 << 16)
"""The bench's stores: a day's TTL and room for the longest seeded history."""


class BodyBytes(SansIOHTTPPolicy[Any, Any]):
    """Sums request body bytes of writes (non-GET) and response body bytes of reads (GET)."""

    def __init__(self) -> None:
        self.written = 0
        self.read = 0

    def on_request(self, request: PipelineRequest[Any]) -> None:
        http = request.http_request
        if http.method != "GET":
            body = http.body or b""
            self.written += len(body.encode() if isinstance(body, str) else body)

    def on_response(self, request: PipelineRequest[Any], response: PipelineResponse[Any, Any]) -> None:
        if request.http_request.method == "GET":
            length = response.http_response.headers.get("Content-Length")
            if length is not None:
                self.read += int(length)
            else:
                with contextlib.suppress(Exception):  # a streamed body is not loaded yet: not counted
                    self.read += len(response.http_response.body())


@dataclass
class CountingStore:
    """A TableSessionStore like the app's (same retries), with the bytes it writes and reads counted."""

    store: TableSessionStore
    bytes: BodyBytes

    @classmethod
    def open(cls, connection_string: str, table: str) -> CountingStore:
        counter, body_bytes = RequestCounter(), BodyBytes()
        client = TableClient.from_connection_string(
            connection_string, table, per_call_policies=[counter, body_bytes], retry_total=STORAGE_RETRIES
        )
        return cls(TableSessionStore(client, LIMITS, counter=counter), body_bytes)

    async def close(self) -> None:
        await self.store.close()


def raw_table(connection_string: str, table: str) -> TableClient:
    """A bare async TableClient with the SDK's defaults: the floor's client."""
    return TableClient.from_connection_string(connection_string, table)


async def ensure_table(client: TableClient) -> None:
    with contextlib.suppress(ResourceExistsError):
        await client.create_table()


async def partition(client: TableClient, pk: str) -> list[dict[str, Any]]:
    return [dict(row) async for row in client.query_entities("PartitionKey eq @pk", parameters={"pk": pk})]


async def clone_partition(client: TableClient, source_pk: str, target_pk: str, session_id: str) -> None:
    """Copy a session's partition under another partition key (its header renamed), 100 rows per transaction."""
    rows = await partition(client, source_pk)
    copies = [{**row, "PartitionKey": target_pk} for row in rows]
    for copy in copies:
        if copy["RowKey"] == HEADER_RK:
            copy["session_id"] = session_id
    for start in range(0, len(copies), _BATCH):
        await client.submit_transaction([("create", row) for row in copies[start : start + _BATCH]])


@dataclass
class RawTurnTiming:
    read_s: float
    write_s: float
    rows_read: int

    @property
    def total_s(self) -> float:
        return self.read_s + self.write_s


async def raw_turn(client: TableClient, pk: str, turn_row: dict[str, Any]) -> RawTurnTiming:
    """A turn's storage work done directly: query the partition, then one transaction replacing the header
    (If-Match its ETag) and creating the turn's row with `turn_row`'s properties."""
    started = perf_counter()
    rows = [row async for row in client.query_entities("PartitionKey eq @pk", parameters={"pk": pk})]
    read = perf_counter()
    header = rows[0]
    now = datetime.now(UTC)
    turn = int(header["turns"]) + 1
    new_header = {**header, "turns": turn, "updated_at": now, "expires_at": now + timedelta(days=1)}
    row = {**turn_row, "PartitionKey": pk, "RowKey": turn_rk(str(header["inc"]), turn)}
    condition = {
        "mode": UpdateMode.REPLACE,
        "etag": header.metadata["etag"],
        "match_condition": MatchConditions.IfNotModified,
    }
    await client.submit_transaction([("update", new_header, condition), ("create", row)])
    return RawTurnTiming(read - started, perf_counter() - read, len(rows))


def row_properties(row: dict[str, Any]) -> dict[str, Any]:
    """A stored row's own properties (no keys)."""
    return {k: v for k, v in row.items() if k not in ("PartitionKey", "RowKey")}
