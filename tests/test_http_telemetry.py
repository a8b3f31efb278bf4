"""Telemetry through HTTP: the span tree of a tool-calling turn under the caller's `traceparent`, the service's
metrics, the sweep's span. function_app.app on the dev server, sessions in Azurite, the echo model; spans and
metrics read back from in-memory providers that agent_core's instrumentation is enabled with."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import httpx2
import pytest
from opentelemetry.trace import SpanKind, StatusCode

from agent_core import observability
from service.agents import AGENTS
from service.http import HttpApi
from service.settings import AppSettings

from .api_client import create, say, sse_events
from .conftest import FunctionAppServer
from .test_observability import SENSITIVE_KEYS, Telemetry, _providers

TRACE_ID = "4bf92f3577b34da6a3ce929d0e0e4736"
CALLER_SPAN = "00f067aa0ba902b7"
TRACEPARENT = f"00-{TRACE_ID}-{CALLER_SPAN}-01"
TURN_ROUTE = "POST /api/agents/{agent}/sessions/{session_id}/messages"


@pytest.fixture
def telemetry() -> Iterator[Telemetry]:
    tracer_provider, exporter, meter_provider, reader = _providers()
    observability.enable_instrumentation(tracer_provider=tracer_provider, meter_provider=meter_provider)
    try:
        yield Telemetry(exporter, reader, meter_provider)
    finally:
        observability.disable_instrumentation()


def _values(telemetry: Telemetry, name: str) -> dict[tuple[tuple[str, Any], ...], Any]:
    values: dict[tuple[tuple[str, Any], ...], Any] = {}
    for point in telemetry.points(name):
        key = tuple(sorted(point.attributes.items()))
        values[key] = getattr(point, "value", None) if hasattr(point, "value") else (point.count, point.sum)
    return values


@pytest.mark.parametrize("stream", [False, True], ids=["json", "sse"])
async def test_span_tree_of_a_tool_calling_turn(http: httpx2.AsyncClient, telemetry: Telemetry, stream: bool):
    session = await create(http, "shopping")
    telemetry.spans.clear()
    headers = {"traceparent": TRACEPARENT}
    if stream:
        headers["accept"] = "text/event-stream"
    response = await say(http, session, "search_products(boots)", headers=headers)
    assert response.status_code == 200
    if stream:
        events = await sse_events(response)
        done = next(data for name, data in events if name == "done")
    else:
        done = response.json()
    assert done["text"] == "Tool results: search_products -> Found 3 products matching 'boots'"

    spans = telemetry.finished()
    by_name = {s.name: s for s in spans}
    assert set(by_name) == {
        TURN_ROUTE,
        "store.load",
        "store.claim",
        "invoke_agent shopping",
        "chat echo-1",
        "execute_tool search_products",
        "store.commit_turn",
    }
    assert [s.name for s in spans].count("chat echo-1") == 2
    assert {format(s.context.trace_id, "032x") for s in spans} == {TRACE_ID}

    server = by_name[TURN_ROUTE]
    assert server.kind == SpanKind.SERVER
    assert server.parent is not None
    assert format(server.parent.span_id, "016x") == CALLER_SPAN
    attributes = dict(server.attributes or {})
    assert attributes["http.response.status_code"] == 200
    assert attributes["http.route"] == "/api/agents/{agent}/sessions/{session_id}/messages"
    assert attributes["gen_ai.conversation.id"] == session["session_id"]

    def parent_of(name: str) -> str:
        span = by_name[name]
        assert span.parent is not None
        return next(s.name for s in spans if s.context.span_id == span.parent.span_id)

    assert parent_of("store.load") == TURN_ROUTE
    assert parent_of("store.claim") == TURN_ROUTE  # the turn's lease
    assert parent_of("invoke_agent shopping") == TURN_ROUTE
    assert parent_of("store.commit_turn") == TURN_ROUTE
    assert parent_of("chat echo-1") == "invoke_agent shopping"
    assert parent_of("execute_tool search_products") == "invoke_agent shopping"

    agent_span = dict(by_name["invoke_agent shopping"].attributes or {})
    assert agent_span["gen_ai.conversation.id"] == session["session_id"]
    assert agent_span["gen_ai.usage.input_tokens"] == done["usage"]["input_token_count"]
    assert agent_span["gen_ai.usage.output_tokens"] == done["usage"]["output_token_count"]
    assert agent_span["gen_ai.response.id"] == done["response_id"]
    assert not {k for s in spans for k in (s.attributes or {})} & SENSITIVE_KEYS
    assert "boots" not in str([dict(s.attributes or {}) for s in spans if s.name != TURN_ROUTE])

    assert _values(telemetry, "agent.turns") == {(("agent", "shopping"), ("outcome", "completed")): 1}
    ((count, size),) = _values(telemetry, "agent.session.size").values()
    assert count == 1
    assert size > 0
    assert _values(telemetry, "agent.sessions.active") == {(): 1}


async def test_conflicts_and_errors_are_recorded(http: httpx2.AsyncClient, telemetry: Telemetry):
    session = await create(http, "shopping")
    waiting = await say(http, session, "place_order(p1)")
    assert waiting.json()["approval_requests"]
    telemetry.spans.clear()
    conflict = await say(http, session, "something else")
    assert conflict.status_code == 409
    (server,) = [s for s in telemetry.finished() if s.kind == SpanKind.SERVER]
    attributes = dict(server.attributes or {})
    assert attributes["http.response.status_code"] == 409
    assert attributes["error.type"] == "ApprovalError"
    assert server.status.status_code == StatusCode.UNSET  # a client error is not a server failure
    assert _values(telemetry, "agent.conflicts") == {(("agent", "shopping"), ("reason", "ApprovalError")): 1}
    assert _values(telemetry, "agent.turns")[(("agent", "shopping"), ("outcome", "failed"))] == 1

    missing = await http.get("/agents/shopping/sessions/nope")
    assert missing.status_code == 404
    deleted = await http.delete(f"/agents/shopping/sessions/{session['session_id']}")
    assert deleted.status_code == 204
    assert _values(telemetry, "agent.sessions.active") == {(): 0}  # one created, one deleted


async def test_sweep_span_and_metrics(function_app_server: FunctionAppServer, telemetry: Telemetry):
    """The expiry timer's sweep (run here on this test's loop, with its own runtime) is traced and measured."""
    api = HttpApi(AGENTS, AppSettings.from_env(function_app_server.env))
    try:
        result = await api.sweep()
    finally:
        await api.close()
    sweep_span = next(s for s in telemetry.finished() if s.name == "expiry.sweep")
    attributes = dict(sweep_span.attributes or {})
    assert attributes["agent.sweep.expired"] == result.expired
    assert attributes["agent.sweep.refiled"] == result.refiled
    ((count, _),) = _values(telemetry, "agent.sweep.duration").values()
    assert count == 1
