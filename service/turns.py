"""One turn of a stored session: load, take the turn lease, run the agent, commit — or write nothing.

`turn()` is the whole walk; the HTTP layer only parses and validates before calling it, and answers after.
A turn reads the session (one query), claims it with a conditional write of the header's lease (so a
second turn finds it busy before calling the model or running a tool), runs, and commits in one
transaction conditioned on the lease's ETag that also releases it: 1 read + 2 writes. A turn sent with
an Idempotency-Key stores its reply with the commit; the same key again gets that reply, with no model call.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
import secrets
import time
import weakref
from collections.abc import AsyncGenerator, AsyncIterator, Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from typing import Any, Literal

from agent_core.agents import AgentResponse, AgentResponseUpdate
from agent_core.approvals import APPROVALS_KEY
from agent_core.compaction import COMPACTION_STATE_KEY, HISTORY_START_KEY, CompactionState
from agent_core.messages import Message
from agent_core.providers import BaseHistoryProvider, InMemoryHistoryProvider, SessionContext, SupportsAgentRun
from agent_core.sessions import AgentSession, service_id_text

from . import telemetry
from .ownership import conversation_metadata
from .runtime import AgentSpec, Runtime
from .storage import SessionConflictError, SessionFullError, StoredSession, StoreError, partition_key
from .storage.branching import finish_dropping
from .storage.layout import KeyRecord

logger = logging.getLogger(__name__)

IfBusy = Literal["reject", "enqueue"]
BUSY_RETRY_AFTER = 1.0
"""Seconds a client refused with 409 (a turn in progress) is told to wait: turns take seconds, not the lease."""
_POLL_FIRST, _POLL_MAX = 0.02, 0.25


class TurnInProgressError(StoreError):
    """Another turn holds the session (or this very request, sent again with its Idempotency-Key, still runs)."""

    def __init__(self, message: str, *, retry_after: float = BUSY_RETRY_AFTER) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class IdempotencyKeyReusedError(StoreError):
    """An Idempotency-Key sent again with a different request body."""


HISTORY_SOURCE_ID = "history"
"""The stored history provider's `source_id` (its `session.state` entry is the runtime's)."""
RESERVED_STATE_KEYS = frozenset(
    {APPROVALS_KEY, COMPACTION_STATE_KEY, HISTORY_SOURCE_ID, InMemoryHistoryProvider.DEFAULT_SOURCE_ID}
)
"""Top-level `state` keys the runtime keeps its own data in: refused in a client's state, not shown back."""


class StoredHistoryProvider(BaseHistoryProvider):
    """The window loaded with the session header (its messages from index `start` of the whole history on,
    which it tells the compaction); new messages are collected for the turn's transaction."""

    def __init__(self, messages: Sequence[Message], start: int = 0) -> None:
        super().__init__(HISTORY_SOURCE_ID)
        self.loaded = list(messages)
        self.start = start
        self.new_messages: list[Message] = []

    async def before_run(
        self, *, agent: SupportsAgentRun, session: AgentSession | None, context: SessionContext, state: dict[str, Any]
    ) -> None:
        context.metadata[HISTORY_START_KEY] = self.start
        await super().before_run(agent=agent, session=session, context=context, state=state)

    async def get_messages(self, session_id: str | None, **kwargs: Any) -> list[Message]:
        return self.loaded

    async def save_messages(self, session_id: str | None, messages: Sequence[Message], **kwargs: Any) -> None:
        self.new_messages.extend(messages)


@dataclass(frozen=True)
class TurnRequest:
    """A validated turn: whose session, the input messages (approval decisions included), model options,
    what to do when another turn runs, and the Idempotency-Key with the fingerprint of the request body."""

    owner: str
    session_id: str
    messages: list[Message]
    options: dict[str, Any]
    stream: bool = False
    if_busy: IfBusy = "reject"
    idempotency_key: str | None = None
    fingerprint: str = ""

    @property
    def key_hash(self) -> str:
        if self.idempotency_key is None:
            return ""
        return hashlib.sha256(self.idempotency_key.encode()).hexdigest()[:40]


@dataclass
class TurnResult:
    response: AgentResponse
    session: StoredSession
    turn: int
    replayed: bool = False
    """True when this is the stored reply of an earlier request with the same Idempotency-Key."""
    compacted: bool = False
    """True when the turn's history compaction moved the window or the summary (`agent.compactions`)."""


@dataclass
class TurnEvent:
    """A streamed piece of a turn (`update`), or its end (`result`)."""

    update: AgentResponseUpdate | None = None
    result: TurnResult | None = None


async def turn(runtime: Runtime, spec: AgentSpec, request: TurnRequest) -> AsyncGenerator[TurnEvent, None]:
    """Load the session, take its lease, run the agent and commit the turn; every failure leaves the
    session as it was (and frees the lease). Yields the run's updates when `request.stream` is set, and
    always ends with the result: the committed turn, or the stored one for a repeated Idempotency-Key.
    With telemetry on, each turn counts in `agent.turns` (completed or failed), `agent.session.size` and, when
    its compaction moved the window, `agent.compactions`.
    """
    metrics = telemetry.metrics()
    try:
        async with contextlib.aclosing(_turn(runtime, spec, request)) as events:
            async for event in events:
                if metrics is not None and event.result is not None:
                    metrics.turn(spec.name, "completed")
                    metrics.session_size(spec.name, event.result.session.size_bytes)
                    if event.result.compacted:
                        metrics.compaction(spec.name)
                yield event
    except Exception:
        if metrics is not None:
            metrics.turn(spec.name, "failed")
        raise


async def _turn(runtime: Runtime, spec: AgentSpec, request: TurnRequest) -> AsyncGenerator[TurnEvent, None]:
    wait = runtime.settings.enqueue_wait_seconds if request.if_busy == "enqueue" else 0.0
    deadline = time.monotonic() + wait
    async with (
        _local_turn(partition_key(request.owner, spec.name, request.session_id), request, deadline),
        contextlib.aclosing(_leased_turn(runtime, spec, request, deadline)) as events,
    ):
        async for event in events:
            yield event


async def _leased_turn(
    runtime: Runtime, spec: AgentSpec, request: TurnRequest, deadline: float
) -> AsyncGenerator[TurnEvent, None]:
    leased = await _acquire(runtime, spec, request, deadline)
    if isinstance(leased, TurnResult):
        if request.stream:
            for message in leased.response.messages:
                yield TurnEvent(update=AgentResponseUpdate(contents=message.contents, role=message.role))
        yield TurnEvent(result=leased)
        return
    store = runtime.store
    created_conversation: str | None = None
    try:
        if leased.dropping:  # a rewind was interrupted: its dropped rows go before this turn writes its own
            leased = await finish_dropping(store, leased)
        history = StoredHistoryProvider(leased.messages, leased.window_start)
        agent = spec.build(runtime.client, runtime.settings, history)
        session = AgentSession(leased.session_id, leased.service_session_id, leased.state)
        owns_conversation = leased.owns_conversation
        if leased.history == "service" and not session.service_session_id:
            # a service-mode session gets its server-side conversation on its first turn, once it holds the lease
            metadata = conversation_metadata(leased.owner, leased.agent, leased.session_id)
            session.service_session_id = created_conversation = await runtime.client.create_conversation(
                metadata=metadata
            )
            owns_conversation = True
        options = run_options(runtime, leased, request.options)
        if request.stream:
            stream = agent.run(request.messages, session=session, stream=True, options=options)
            async for update in stream:
                yield TurnEvent(update=update)
            response = await stream.get_final_response()
        else:
            response = await agent.run(request.messages, session=session, options=options)
        service_id = service_id_text(session.service_session_id)
        owned = owns_conversation
        updated = replace(leased, state=session.state, service_session_id=service_id, owns_conversation=owned)
        record = None
        if request.idempotency_key is not None:
            record = (request.key_hash, KeyRecord(request.fingerprint, leased.turns + 1, response.model_dump_json()))
        keep_from = CompactionState.of(session.state).first_kept if COMPACTION_STATE_KEY in session.state else None
        committed = await store.commit_turn(updated, history.new_messages, record=record, keep_from=keep_from)
    except BaseException as exc:
        if not isinstance(exc, SessionConflictError):  # a conflict means the lease is no longer ours
            await store.release(leased, full=isinstance(exc, SessionFullError))
        if created_conversation is not None:
            await _delete_conversation(runtime, created_conversation)
        raise
    compacted = compaction_moved(leased.state, session.state)
    yield TurnEvent(result=TurnResult(response, committed, committed.turns, compacted=compacted))


def run_options(runtime: Runtime, session: StoredSession, options: dict[str, Any]) -> dict[str, Any]:
    """The request's options, with `truncation` (AGENT_SERVICE_TRUNCATION) for a session whose history the
    model service keeps: it trims what it keeps to the model's window. A request's own `truncation` wins."""
    if session.history == "service" and "truncation" not in options:
        return {**options, "truncation": runtime.settings.service_truncation}
    return options


async def run_turn(runtime: Runtime, spec: AgentSpec, request: TurnRequest) -> TurnResult:
    """`turn()` to its end: the result. The turn is closed before this returns, so the session is free for
    the next turn at once (an abandoned async generator would hold it until garbage collection)."""
    async with contextlib.aclosing(turn(runtime, spec, request)) as events:
        async for event in events:
            if event.result is not None:
                return event.result
    raise AssertionError("a turn always ends with its result")


_local_locks: weakref.WeakValueDictionary[str, asyncio.Lock] = weakref.WeakValueDictionary()


@contextlib.asynccontextmanager
async def _local_turn(pk: str, request: TurnRequest, deadline: float) -> AsyncIterator[None]:
    """This process's turns on one session, one at a time, before any of them touches storage: a turn that
    would be refused is refused without a read, and enqueued turns wait here in order instead of all
    polling and racing for the lease (turns on other instances still meet at the lease)."""
    lock = _local_locks.setdefault(pk, asyncio.Lock())
    if lock.locked():
        if request.if_busy == "reject":
            if request.idempotency_key is None:
                raise TurnInProgressError("a turn is in progress on this session")
            yield  # the stored record (a replay) or the lease decides
            return
        try:
            await asyncio.wait_for(lock.acquire(), max(0.0, deadline - time.monotonic()) or 1e-3)
        except TimeoutError:
            raise TurnInProgressError("a turn is in progress on this session") from None
    else:
        await lock.acquire()
    try:
        yield
    finally:
        lock.release()


async def _acquire(
    runtime: Runtime, spec: AgentSpec, request: TurnRequest, deadline: float
) -> StoredSession | TurnResult:
    """The session, leased to this turn; or the stored result of an earlier request with the same key.

    A session another turn holds is refused at once (`reject`) or waited for (`enqueue`, polling the
    header, bounded by AGENT_ENQUEUE_WAIT_SECONDS), then read again: the waiter runs on the new history.
    """
    store, key_hash = runtime.store, request.key_hash
    delay = _POLL_FIRST
    while True:
        stored = await store.load(request.owner, spec.name, request.session_id, key_hash=key_hash or None)
        if stored.record is not None:
            return _replay(stored, stored.record, request)
        now = datetime.now(UTC)
        if stored.leased(now):
            if key_hash and stored.lease_key == key_hash:
                if stored.lease_fp != request.fingerprint:
                    raise IdempotencyKeyReusedError("this Idempotency-Key was sent with a different request")
                busy = TurnInProgressError("the turn with this Idempotency-Key is still running")
            else:
                busy = TurnInProgressError("a turn is in progress on this session")
        else:
            store.check_room(stored, request.messages)
            try:
                return await store.claim(
                    stored, secrets.token_hex(8), key_hash=key_hash, fingerprint=request.fingerprint, now=now
                )
            except SessionConflictError:
                busy = TurnInProgressError("a turn is in progress on this session")
        # busy: wait for the lease to go (polling the header alone), then read the session again
        while True:
            if time.monotonic() + delay > deadline:
                raise busy
            await asyncio.sleep(delay)
            delay = min(delay * 1.5, _POLL_MAX)
            header = await store.get_header(stored.pk)
            if header is None or not header.leased(datetime.now(UTC)):
                break


def _replay(stored: StoredSession, record: KeyRecord, request: TurnRequest) -> TurnResult:
    if record.fingerprint != request.fingerprint:
        raise IdempotencyKeyReusedError("this Idempotency-Key was used for a different request")
    response = AgentResponse.model_validate_json(record.response_json)
    return TurnResult(response, stored, record.turn, replayed=True)


async def _delete_conversation(runtime: Runtime, conversation_id: str) -> None:
    """A failed first service-mode turn leaves no orphan conversation behind (best effort)."""
    try:
        await runtime.client.delete_conversation(conversation_id)
    except Exception as exc:
        logger.warning("could not delete conversation %s of a failed turn: %s", conversation_id, exc)


def compaction_moved(before: Mapping[str, Any], after: Mapping[str, Any]) -> bool:
    """Whether a turn's compaction changed what is sent (window, stubs or summary) between the session state it
    started from and the one it commits; the token calibration alone does not count."""
    old, new = before.get(COMPACTION_STATE_KEY), after.get(COMPACTION_STATE_KEY)
    if not isinstance(new, CompactionState):
        return False
    if not isinstance(old, CompactionState):
        old = CompactionState()
    return (old.first_kept, old.stubbed_through, old.summarized_through, old.summary) != (
        new.first_kept,
        new.stubbed_through,
        new.summarized_through,
        new.summary,
    )
