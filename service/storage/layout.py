"""How a session lies in its table partition: keys, the header row, turn rows, and packing text into properties.

Layout of a session's partition (`s~<owner hash>~<agent>~<session id>`):
  RowKey "h"                  the header: owner, agent, history mode, service id, state (the compaction state
                              included), times, counters, the window (its first turn, that turn's first message
                              index, its row count), the oldest turn kept, and the turn lease (id, expiry, the
                              leased turn's idempotency key and body hash)
  RowKey "h~<inc>~<99999999 - turn>"  one row per committed turn holding that turn's messages (continued in
                              "...~<n>" rows when a turn is over ~900 KB compressed) and, when the turn changed
                              the state, the patch back to the state before it (statelog.py); NEWEST FIRST
  RowKey "k~<key hash>~<inc>" the reply of a turn sent with an Idempotency-Key (continued like turn rows)
`inc` is the session's incarnation, newest first too (an inverted creation time): rows of an earlier session
with the same id sort after the current one's, are never read and are swept.

So the header and the newest turns are one contiguous key range: a turn reads its window (the header, then
the turns from the newest back to the window's first turn) with one row-key range query starting at "h",
sized by the header's row count of the window; a history page reads the turn range it covers.
The expiry index lives in partitions `x~<yyyymmddHHMM>` (one row per session deadline); see expiry.py.
"""

from __future__ import annotations

import hashlib
import json
import re
import secrets
import zlib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Literal

from pydantic import TypeAdapter

from agent_core.messages import Message
from agent_core.sessions import decode_value, encode_value

from .errors import InvalidSessionIdError, SessionLayoutError, TurnTooLargeError

SCHEMA_VERSION = 2
HEADER_RK = "h"
INDEX_PREFIX = "x~"
SESSION_PREFIX = "s~"
HistoryMode = Literal["local", "service"]

SESSION_ID_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]{0,127}$")
"""Client-chosen session ids: letters, digits, '-' and '_', 1-128 characters (safe in keys and URLs)."""

# Table Storage limits, with margins: a string property holds 64 KiB of UTF-16, an entity 1 MiB,
# a transaction 100 entities and 4 MiB of request body.
INLINE_UTF8_BYTES = 32_000  # UTF-8 bytes <= 32,000 guarantees UTF-16 <= 64,000 bytes
PIECE_BYTES = 63_000  # one binary property
PIECES_PER_ENTITY = 14  # 882,000 bytes of binary per entity
MAX_TRANSACTION_ENTITIES = 100
MAX_ENTITY_BYTES = 1_000_000  # estimated, under the 1 MiB entity limit
MAX_TRANSACTION_BYTES = 3_800_000  # estimated JSON body, base64 included
MESSAGES = TypeAdapter(list[Message])
_PIECE_COLUMNS = ["j", "zn", *(f"z{n:02d}" for n in range(PIECES_PER_ENTITY))]
HEADER_COLUMNS = [
    "schema", "session_id", "owner", "agent", "history", "service_session_id", "owns_conversation",
    "created_at", "updated_at", "expires_at", "turns", "message_count", "inc", "size_bytes",
    "lease_id", "lease_until", "lease_key", "lease_fp", "last_turn_id", "full", "dropping",
    "window_turn", "window_start", "window_rows", "kept_from",
]  # fmt: skip
_KEY_COLUMNS = ["fp", "turn", "nb"]
LOAD_COLUMNS = [
    "PartitionKey", "RowKey", *HEADER_COLUMNS, *(f"s{c}" for c in _PIECE_COLUMNS), *_PIECE_COLUMNS, *_KEY_COLUMNS,
]  # fmt: skip
"""Selecting columns spares the SDK parsing every row's Timestamp (40% of a 1,000-row load's CPU)."""


def validate_session_id(session_id: str) -> str:
    if not SESSION_ID_PATTERN.fullmatch(session_id):
        raise InvalidSessionIdError(
            "session_id must be 1-128 letters, digits, '-' or '_', starting with a letter or digit"
        )
    return session_id


def partition_key(owner: str, agent: str, session_id: str) -> str:
    """The session's partition. The owner is hashed in, so another principal addresses a different key."""
    owner_hash = hashlib.sha256(owner.encode()).hexdigest()[:32]
    return f"{SESSION_PREFIX}{owner_hash}~{agent}~{validate_session_id(session_id)}"


def expiry_bucket(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y%m%d%H%M")


def index_entity(pk: str, inc: str, expires_at: datetime) -> dict[str, Any]:
    return {"PartitionKey": f"{INDEX_PREFIX}{expiry_bucket(expires_at)}", "RowKey": f"{pk}~{inc}"}


MAX_TURN = 99_999_999
HISTORY_END = "h~~"
"""Past every turn row of every incarnation: `RowKey ge "h" and RowKey lt "h~~"` is the header then the history."""


def new_inc(now: datetime) -> str:
    """A new incarnation: the inverted creation time (newer sorts first) and 32 random bits."""
    millis = int(now.timestamp() * 1000)
    return f"{(1 << 44) - millis:011x}{secrets.token_hex(4)}"


def turn_rk(inc: str, turn: int) -> str:
    """A turn's first row. Inverted, so that the newest turn comes first right after the header."""
    return f"h~{inc}~{MAX_TURN - turn:08d}"


def legacy_turn_range(inc: str) -> tuple[str, str]:
    """RowKey bounds of one incarnation's turn rows in schema 1 (`t~<inc>~<turn>`, oldest first): only deleted."""
    return f"t~{inc}~", f"t~{inc}~~"


def turn_range(inc: str, first: int = 1, last: int = MAX_TURN) -> tuple[str, str]:
    """RowKey bounds (low inclusive, high exclusive) of one incarnation's rows of turns `first..last`."""
    return turn_rk(inc, last), f"{turn_rk(inc, first)}~~"


def row_turn(row_key: str) -> tuple[str, int]:
    """The incarnation and turn of a turn row's key (continuation rows included)."""
    _, inc, inverted, *_ = row_key.split("~")
    return inc, MAX_TURN - int(inverted)


def key_rk(inc: str, key_hash: str) -> str:
    """An idempotency record's row: keyed by the key first, so a load can ask for it before knowing `inc`."""
    return f"k~{key_hash}~{inc}"


def key_range(key_hash: str = "") -> tuple[str, str]:
    """RowKey bounds of one key's records (every incarnation's), or of all records without `key_hash`."""
    prefix = f"k~{key_hash}~" if key_hash else "k~"
    return prefix, f"{prefix}~"


def is_key_row_of(row_key: str, inc: str) -> bool:
    return row_key.startswith("k~") and row_key.split("~")[2] == inc


# --- packing text into entity properties ------------------------------------------------------------


def pack(text: str) -> list[dict[str, Any]]:
    """Property sets holding `text`: inline when small, else zlib-compressed and split over binary properties
    (and over several entities when one cannot hold it)."""
    raw = text.encode()
    if len(raw) <= INLINE_UTF8_BYTES:
        return [{"j": text}]
    packed = zlib.compress(raw, 6)
    pieces = [packed[i : i + PIECE_BYTES] for i in range(0, len(packed), PIECE_BYTES)]
    groups = [pieces[i : i + PIECES_PER_ENTITY] for i in range(0, len(pieces), PIECES_PER_ENTITY)]
    props: list[dict[str, Any]] = [{f"z{n:02d}": piece for n, piece in enumerate(group)} for group in groups]
    props[0]["zn"] = len(groups)
    return props


def unpack(entities: list[Mapping[str, Any]]) -> str:
    first = entities[0]
    if "j" in first:
        return str(first["j"])
    chunks = [bytes(e[k]) for e in entities for k in sorted(k for k in e if re.fullmatch(r"z\d\d", k))]
    return zlib.decompress(b"".join(chunks)).decode()


def estimate_bytes(entity: Mapping[str, Any]) -> int:
    size = 200
    for key, value in entity.items():
        size += len(key) + 40
        if isinstance(value, bytes):
            size += len(value) * 4 // 3 + 4
        else:
            size += len(str(value).encode()) + 2
    return size


# --- the stored session ------------------------------------------------------------------------------


@dataclass
class StoredSession:
    """A session as loaded from its partition: header fields plus (local mode) its message history.

    A turn commits an updated copy (`dataclasses.replace(loaded, state=..., ...)`): the store takes the
    counters, times and ETag from the copy as it was read and derives the new ones itself.
    """

    pk: str
    session_id: str
    owner: str
    agent: str
    history: HistoryMode
    service_session_id: str | None
    state: dict[str, Any]
    created_at: datetime
    updated_at: datetime
    expires_at: datetime
    turns: int
    inc: str
    size_bytes: int
    owns_conversation: bool = False
    etag: str = ""
    messages: list[Message] = field(default_factory=list)
    message_count: int = 0
    lease_id: str = ""
    """The turn holding the session (empty when none), until `lease_until`."""
    lease_until: datetime | None = None
    lease_key: str = ""
    """The leased turn's Idempotency-Key hash and body fingerprint (empty without a key)."""
    lease_fp: str = ""
    last_turn_id: str = ""
    """The lease id of the last committed turn: how a turn whose commit answer was lost finds out it committed."""
    full: int = 0
    """The size limit a turn was refused for overshooting (0: none): while the limit is no higher, later
    turns are refused before the model is called."""
    record: KeyRecord | None = None
    """The idempotency record asked for at load (`load(key_hash=...)`), when there is one."""
    state_json: Any = None
    """`state` as stored (JSON with `$type` tags): what a turn's reverse state patch is computed against."""
    dropping: int = 0
    """A rewind's mark: rows of turns after `turns`, up to this one, may still exist and are being deleted.
    Readers ignore every row of a turn after `turns`, so a session is never seen half rewound."""
    window_turn: int = 1
    """The first turn a turn loads: the one holding the compaction state's `first_kept` message."""
    window_start: int = 0
    """The index (in the whole history) of `window_turn`'s first message: where `messages` start."""
    window_rows: int = 0
    """Rows from `window_turn` to the newest turn: how many rows the next load asks for."""
    kept_from: int = 1
    """The oldest turn whose rows may still be stored (retention removes older ones)."""
    spans: list[TurnSpan] = field(default_factory=list)
    """The loaded turns, oldest first: where their messages are in `messages` and how many rows each has."""
    schema: int = SCHEMA_VERSION
    """The row layout the session was stored in (1: turn rows `t~<inc>~<turn>`, before windowed reads)."""

    def leased(self, now: datetime) -> bool:
        """True while a turn holds the session (an expired lease no longer counts)."""
        return bool(self.lease_id) and self.lease_until is not None and self.lease_until > now


@dataclass(frozen=True)
class TurnSpan:
    """One stored turn as loaded: its number, its first message's index in the whole history, its message
    count, its rows (the first and its continuations) and the bytes of its messages' JSON."""

    turn: int
    start: int
    messages: int
    rows: int
    nbytes: int


@dataclass(frozen=True)
class KeyRecord:
    """What a turn sent with an Idempotency-Key committed: the request's fingerprint, its turn and its reply."""

    fingerprint: str
    turn: int
    response_json: str


def header_entity(s: StoredSession, state_props: dict[str, Any]) -> dict[str, Any]:
    return {
        "PartitionKey": s.pk,
        "RowKey": HEADER_RK,
        "schema": SCHEMA_VERSION,
        "session_id": s.session_id,
        "owner": s.owner,
        "agent": s.agent,
        "history": s.history,
        "service_session_id": s.service_session_id or "",
        "owns_conversation": s.owns_conversation,
        "created_at": s.created_at,
        "updated_at": s.updated_at,
        "expires_at": s.expires_at,
        "turns": s.turns,
        "message_count": s.message_count,
        "inc": s.inc,
        "size_bytes": s.size_bytes,
        **lease_props(s),
        "last_turn_id": s.last_turn_id,
        "full": s.full,
        "dropping": s.dropping,
        "window_turn": s.window_turn,
        "window_start": s.window_start,
        "window_rows": s.window_rows,
        "kept_from": s.kept_from,
        **{f"s{k}": v for k, v in state_props.items()},
    }


def lease_props(s: StoredSession) -> dict[str, Any]:
    """The header's lease columns (an absent expiry is written as the epoch: Table Storage has no null)."""
    return {
        "lease_id": s.lease_id,
        "lease_until": s.lease_until or _EPOCH,
        "lease_key": s.lease_key,
        "lease_fp": s.lease_fp,
    }


_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def state_props(state: dict[str, Any], max_state_bytes: int) -> dict[str, Any]:
    """The header properties holding `state` (its `$type`-tagged JSON), refused when over the limit."""
    return stored_state_props(encode_value(state), max_state_bytes)


def stored_state_props(state_json: Any, max_state_bytes: int) -> dict[str, Any]:
    """`state_props` of a state already encoded (`encode_value`)."""
    text = json.dumps(state_json, separators=(",", ":"))
    size = len(text.encode())
    if size > max_state_bytes:
        raise TurnTooLargeError(f"session state is {size} bytes; the limit is {max_state_bytes}")
    props = pack(text)
    if len(props) > 1:
        raise TurnTooLargeError("session state is too large for one table entity")
    return props[0]


def session_from_header(entity: Mapping[str, Any]) -> StoredSession:
    state_entity = {k[1:]: v for k, v in entity.items() if k.startswith("s") and re.fullmatch(r"s(j|z\d\d|zn)", k)}
    state_json = json.loads(unpack([state_entity])) if state_entity else {}
    metadata = getattr(entity, "metadata", {}) or {}
    return StoredSession(
        pk=entity["PartitionKey"],
        session_id=entity["session_id"],
        owner=entity["owner"],
        agent=entity["agent"],
        history=entity["history"],
        service_session_id=entity.get("service_session_id") or None,
        owns_conversation=bool(entity.get("owns_conversation", False)),
        state=decode_value(state_json),
        state_json=state_json,
        created_at=entity["created_at"],
        updated_at=entity["updated_at"],
        expires_at=entity["expires_at"],
        turns=int(entity["turns"]),
        message_count=int(entity.get("message_count", 0)),
        inc=entity["inc"],
        size_bytes=int(entity.get("size_bytes", 0)),
        etag=str(metadata.get("etag", "")),
        lease_id=str(entity.get("lease_id") or ""),
        lease_until=entity.get("lease_until"),
        lease_key=str(entity.get("lease_key") or ""),
        lease_fp=str(entity.get("lease_fp") or ""),
        last_turn_id=str(entity.get("last_turn_id") or ""),
        full=int(entity.get("full") or 0),
        dropping=int(entity.get("dropping") or 0),
        window_turn=int(entity.get("window_turn") or 1),
        window_start=int(entity.get("window_start") or 0),
        window_rows=int(entity.get("window_rows") or 0),
        kept_from=int(entity.get("kept_from") or 1),
        schema=int(entity.get("schema") or 1),
    )


def require_current_layout(s: StoredSession) -> None:
    """Refuse (SessionLayoutError) a session stored in an earlier row layout: read with this one's keys it
    would look empty, and a turn on it would orphan its history."""
    if s.schema != SCHEMA_VERSION:
        raise SessionLayoutError(
            f"session {s.session_id!r} was stored by an earlier version of this app (row layout {s.schema}, this "
            f"version reads {SCHEMA_VERSION}); it can be deleted, not read or continued"
        )


def group_turn_rows(rows: Iterable[Mapping[str, Any]]) -> list[list[Mapping[str, Any]]]:
    """Rows of one turn (the first plus its continuations) together, in the order read (newest turn first)."""
    groups: list[list[Mapping[str, Any]]] = []
    for row in rows:
        if row["RowKey"].count("~") == 3 and groups:  # h~inc~turn~n continues the previous row
            groups[-1].append(row)
        else:
            groups.append([row])
    return groups


def turn_entities(
    pk: str, inc: str, turn: int, messages: list[Message], extra: Mapping[str, Any] | None = None
) -> tuple[list[dict[str, Any]], int]:
    """The rows holding one turn's messages (and `extra` properties: its state patch), and the bytes of their
    JSON (what the session grows by). `extra` goes on the last row when it fits, else on a row of its own."""
    text = MESSAGES.dump_json(messages, exclude_defaults=True).decode()
    groups = pack(text)
    if extra:
        if estimate_bytes({**groups[-1], **extra}) <= MAX_ENTITY_BYTES:
            groups[-1] = {**groups[-1], **extra}
        else:
            groups.append(dict(extra))
    rk = turn_rk(inc, turn)
    keys = [rk if n == 0 else f"{rk}~{n:03d}" for n in range(len(groups))]
    rows = [{"PartitionKey": pk, "RowKey": key, **props} for key, props in zip(keys, groups, strict=True)]
    size = len(text.encode())
    rows[0]["nb"] = size  # what deleting the turn frees (retention), readable with the keys alone
    return rows, size


def turn_of(row_key: str) -> int:
    """The turn a turn row (or one of its continuations) belongs to."""
    return row_turn(row_key)[1]


def key_entities(pk: str, inc: str, key_hash: str, record: KeyRecord) -> list[dict[str, Any]]:
    """The rows holding an idempotency record (its reply packed like a turn's messages)."""
    rk = key_rk(inc, key_hash)
    rows = [
        {"PartitionKey": pk, "RowKey": rk if n == 0 else f"{rk}~{n:03d}", **props}
        for n, props in enumerate(pack(record.response_json))
    ]
    rows[0].update({"fp": record.fingerprint, "turn": record.turn})
    return rows


def key_record(rows: list[Mapping[str, Any]]) -> KeyRecord:
    return KeyRecord(fingerprint=str(rows[0]["fp"]), turn=int(rows[0]["turn"]), response_json=unpack(rows))
