"""OpenTelemetry: agent_core's GenAI spans and metrics, and the service's export wiring (OTLP, Azure Monitor).

Spans and metrics are read back with the SDK's in-memory exporter and reader; OTLP export goes over real
HTTP to a receiver on loopback that decodes the protobuf; Azure Monitor is configured in a child process
whose endpoints point at that receiver, which must see nothing.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import ExportMetricsServiceRequest
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import HistogramDataPoint, InMemoryMetricReader, NumberDataPoint
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind, StatusCode

from agent_core import observability
from agent_core.compaction import COMPACTION_STATE_KEY, CompactionState
from agent_core.exceptions import ConfigurationError, ModelRateLimitError
from agent_core.messages import Content, Message
from agent_core.observability import OPERATION_DURATION_BUCKETS, TOKEN_USAGE_BUCKETS, OtelAttr
from service.settings import AppSettings
from service.telemetry import ServiceMetrics, TelemetryConfig, aad_client_id, ensure_configured
from service.turns import compaction_moved

ROOT = Path(__file__).resolve().parent.parent


@dataclass
class Telemetry:
    spans: InMemorySpanExporter
    reader: InMemoryMetricReader
    meter_provider: MeterProvider

    def finished(self) -> list[ReadableSpan]:
        return list(self.spans.get_finished_spans())

    def by_name(self) -> dict[str, ReadableSpan]:
        return {s.name: s for s in self.finished()}

    def points(self, metric_name: str) -> list[Any]:
        data = self.reader.get_metrics_data()
        assert data is not None
        return [
            point
            for rm in data.resource_metrics
            for sm in rm.scope_metrics
            for metric in sm.metrics
            if metric.name == metric_name
            for point in metric.data.data_points
        ]

    def metric(self, metric_name: str) -> Any:
        data = self.reader.get_metrics_data()
        assert data is not None
        found = [m for rm in data.resource_metrics for sm in rm.scope_metrics for m in sm.metrics]
        return next(m for m in found if m.name == metric_name)


def _providers() -> tuple[TracerProvider, InMemorySpanExporter, MeterProvider, InMemoryMetricReader]:
    exporter = InMemorySpanExporter()
    tracer_provider = TracerProvider()
    tracer_provider.add_span_processor(SimpleSpanProcessor(exporter))
    reader = InMemoryMetricReader()
    return tracer_provider, exporter, MeterProvider(metric_readers=[reader]), reader


@pytest.fixture(params=[False], ids=["no-content"])
def telemetry(request: pytest.FixtureRequest) -> Iterator[Telemetry]:
    """agent_core instrumentation on, into in-memory providers of this test (not the global ones)."""
    tracer_provider, exporter, meter_provider, reader = _providers()
    observability.enable_instrumentation(
        enable_sensitive_data=request.param, tracer_provider=tracer_provider, meter_provider=meter_provider
    )
    try:
        yield Telemetry(exporter, reader, meter_provider)
    finally:
        observability.disable_instrumentation()


def _one_run(*, fail_chat: Exception | None = None) -> None:
    """The operations of a run with one model call that asks for a tool, the tool, and a final model call."""
    messages = [Message("user", text="find socks")]
    with observability.agent_operation(
        agent_name="shopping", description="shop", conversation_id="sess-1", model="echo-1", provider_name="openai"
    ) as run:
        run.capture_input(messages, "You help users shop.")
        with observability.chat_operation(
            model="echo-1",
            provider_name="openai",
            conversation_id="sess-1",
            agent_name="shopping",
            server_address="127.0.0.1",
            server_port=8000,
            options={"temperature": 0.5, "max_output_tokens": 100},
            parent=run,
        ) as chat:
            chat.capture_input(messages, "You help users shop.")
            chat.set_response(response_id="resp_1", model="echo-1", input_tokens=30, output_tokens=7)
            call = Content.from_function_call("call_1", "search_products", '{"query": "socks"}')
            chat.capture_output([Message("assistant", [call])])
        with observability.tool_operation(
            tool_name="search_products", call_id="call_1", description="Search", conversation_id="sess-1", parent=run
        ) as tool_op:
            tool_op.capture_tool_call('{"query": "socks"}', "Found 3 products")
        with observability.chat_operation(model="echo-1", conversation_id="sess-1", parent=run) as chat:
            if fail_chat is not None:
                raise fail_chat
            chat.set_response(response_id="resp_2", input_tokens=50, output_tokens=11)
        run.set_response(response_id="resp_2", input_tokens=80, output_tokens=18)


def test_off_until_enabled_and_not_imported() -> None:
    """Disabled hooks are the shared no-op, and `import agent_core` does not import OpenTelemetry at all."""
    observability.disable_instrumentation()
    op = observability.agent_operation(agent_name="a")
    assert op is observability.NO_OP
    assert not op.recording
    assert op.context() is None
    code = "import sys, agent_core.observability; print(sorted(m for m in sys.modules if 'opentelemetry' in m))"
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_disabled_records_nothing() -> None:
    tracer_provider, exporter, meter_provider, reader = _providers()
    observability.enable_instrumentation(tracer_provider=tracer_provider, meter_provider=meter_provider)
    observability.disable_instrumentation()
    _one_run()
    assert exporter.get_finished_spans() == ()
    data = reader.get_metrics_data()
    assert data is None or not data.resource_metrics


def test_span_tree_names_kinds_and_attributes(telemetry: Telemetry) -> None:
    _one_run()
    spans = telemetry.finished()
    names = ["chat echo-1", "execute_tool search_products", "chat echo-1", "invoke_agent shopping"]
    assert [s.name for s in spans] == names
    agent = spans[-1]
    assert agent.parent is None
    for child in spans[:-1]:
        assert child.parent is not None
        assert child.parent.span_id == agent.context.span_id
        assert child.context.trace_id == agent.context.trace_id
        assert child.attributes is not None
        assert child.attributes[OtelAttr.CONVERSATION_ID] == "sess-1"
    assert agent.kind == SpanKind.INTERNAL
    assert dict(agent.attributes or {}) == {
        "gen_ai.operation.name": "invoke_agent",
        "gen_ai.agent.name": "shopping",
        "gen_ai.agent.description": "shop",
        "gen_ai.conversation.id": "sess-1",
        "gen_ai.request.model": "echo-1",
        "gen_ai.provider.name": "openai",
        "gen_ai.response.id": "resp_2",
        "gen_ai.usage.input_tokens": 80,
        "gen_ai.usage.output_tokens": 18,
    }
    chat = spans[0]
    assert chat.kind == SpanKind.CLIENT
    attributes = dict(chat.attributes or {})
    assert attributes["gen_ai.operation.name"] == "chat"
    assert attributes["gen_ai.provider.name"] == attributes["gen_ai.system"] == "openai"  # Azure Monitor's "GenAI"
    assert attributes["gen_ai.response.id"] == "resp_1"
    assert attributes["gen_ai.usage.input_tokens"] == 30
    assert attributes["gen_ai.request.temperature"] == 0.5
    assert attributes["gen_ai.request.max_tokens"] == 100
    assert attributes["server.address"] == "127.0.0.1"
    tool_span = spans[1]
    assert dict(tool_span.attributes or {}) == {
        "gen_ai.operation.name": "execute_tool",
        "gen_ai.tool.name": "search_products",
        "gen_ai.tool.call.id": "call_1",
        "gen_ai.tool.description": "Search",
        "gen_ai.tool.type": "function",
        "gen_ai.conversation.id": "sess-1",
    }
    assert all(s.status.status_code == StatusCode.UNSET for s in spans)


SENSITIVE_KEYS = {
    "gen_ai.input.messages",
    "gen_ai.output.messages",
    "gen_ai.system_instructions",
    "gen_ai.tool.call.arguments",
    "gen_ai.tool.call.result",
}


def test_no_content_unless_enabled(telemetry: Telemetry) -> None:
    _one_run()
    recorded = {key for s in telemetry.finished() for key in (s.attributes or {})}
    assert not recorded & SENSITIVE_KEYS
    assert "socks" not in json.dumps([dict(s.attributes or {}) for s in telemetry.finished()])


@pytest.mark.parametrize("telemetry", [True], ids=["content"], indirect=True)
def test_content_when_enabled(telemetry: Telemetry) -> None:
    _one_run()
    spans = telemetry.by_name()
    chat: dict[str, Any] = dict(spans["chat echo-1"].attributes or {})  # the last chat span: no content given
    first_chat: dict[str, Any] = dict(telemetry.finished()[0].attributes or {})
    assert json.loads(first_chat["gen_ai.input.messages"]) == [
        {"role": "user", "parts": [{"type": "text", "content": "find socks"}]}
    ]
    assert json.loads(first_chat["gen_ai.output.messages"]) == [
        {
            "role": "assistant",
            "parts": [
                {"type": "tool_call", "id": "call_1", "name": "search_products", "arguments": '{"query": "socks"}'}
            ],
        }
    ]
    assert json.loads(first_chat["gen_ai.system_instructions"]) == [{"type": "text", "content": "You help users shop."}]
    assert "gen_ai.input.messages" not in chat
    tool_attributes = dict(spans["execute_tool search_products"].attributes or {})
    assert tool_attributes["gen_ai.tool.call.arguments"] == '{"query": "socks"}'
    assert tool_attributes["gen_ai.tool.call.result"] == "Found 3 products"


def test_metrics_follow_the_conventions(telemetry: Telemetry) -> None:
    _one_run()
    duration = telemetry.metric("gen_ai.client.operation.duration")
    assert duration.unit == "s"
    counts: dict[str, int] = {}
    for point in duration.data.data_points:
        assert isinstance(point, HistogramDataPoint)
        assert tuple(point.explicit_bounds) == OPERATION_DURATION_BUCKETS
        attributes: dict[str, Any] = dict(point.attributes or {})
        assert "gen_ai.conversation.id" not in attributes  # ids stay off metrics (cardinality)
        name = attributes["gen_ai.operation.name"]
        counts[name] = counts.get(name, 0) + point.count
    assert counts == {"chat": 2, "invoke_agent": 1}  # tool calls are spans only

    usage = telemetry.metric("gen_ai.client.token.usage")
    assert usage.unit == "{token}"
    sums: dict[str, tuple[int, int]] = {}
    for p in usage.data.data_points:
        total, count = sums.get(p.attributes["gen_ai.token.type"], (0, 0))
        sums[p.attributes["gen_ai.token.type"]] = (total + p.sum, count + p.count)
    assert sums == {"input": (80, 2), "output": (18, 2)}  # per model call; the agent span does not double count
    for point in usage.data.data_points:
        assert tuple(point.explicit_bounds) == tuple(float(b) for b in TOKEN_USAGE_BUCKETS)
        assert point.attributes["gen_ai.operation.name"] == "chat"


def test_errors_are_recorded(telemetry: Telemetry) -> None:
    error = ModelRateLimitError("throttled", status_code=429, retry_after=1)
    with pytest.raises(ModelRateLimitError):
        _one_run(fail_chat=error)
    spans = telemetry.finished()
    failed_chat, agent = spans[-2], spans[-1]
    for span in (failed_chat, agent):
        assert span.status.status_code == StatusCode.ERROR
        assert (span.attributes or {})["error.type"] == "agent_core.exceptions.ModelRateLimitError"
        assert [e.name for e in span.events] == ["exception"]
    assert "gen_ai.response.id" not in (agent.attributes or {})
    points = telemetry.points("gen_ai.client.operation.duration")
    errors = sorted((p.attributes["gen_ai.operation.name"], p.attributes.get("error.type", "")) for p in points)
    assert errors == [
        ("chat", ""),
        ("chat", "agent_core.exceptions.ModelRateLimitError"),
        ("invoke_agent", "agent_core.exceptions.ModelRateLimitError"),
    ]


def test_handled_failure_marks_the_span(telemetry: Telemetry) -> None:
    """A tool failure becomes an error result for the model, but its span still says it failed."""
    with observability.tool_operation(tool_name="flaky") as op:
        op.record_error(TimeoutError("slow"))
    (span,) = telemetry.finished()
    assert span.status.status_code == StatusCode.ERROR
    assert (span.attributes or {})["error.type"] == "TimeoutError"


def test_activate_parents_spans_made_inside(telemetry: Telemetry) -> None:
    """Code run inside `activate()` (a tool, a sub-agent) gets the operation's span as its parent."""
    with (
        observability.tool_operation(tool_name="ask_expert") as tool_op,
        tool_op.activate(),
        observability.agent_operation(agent_name="expert"),
    ):
        pass
    inner, outer = telemetry.finished()
    assert inner.name == "invoke_agent expert"
    assert inner.parent is not None
    assert inner.parent.span_id == outer.context.span_id


def test_service_metrics() -> None:
    reader = InMemoryMetricReader()
    provider = MeterProvider(metric_readers=[reader])
    metrics = ServiceMetrics(provider.get_meter("test"))
    for _ in range(3):
        metrics.session_created()
    metrics.session_deleted()
    metrics.turn("shopping", "completed")
    metrics.turn("shopping", "completed")
    metrics.turn("shopping", "failed")
    metrics.conflict("shopping", "session_changed")
    metrics.compaction("general")
    metrics.session_size("shopping", 5000)
    metrics.sweep(expired=1, refiled=2, orphans=0, skipped=0, duration_seconds=0.25)
    telemetry = Telemetry(InMemorySpanExporter(), reader, provider)

    def values(name: str) -> dict[tuple[tuple[str, Any], ...], Any]:
        result: dict[tuple[tuple[str, Any], ...], Any] = {}
        for p in telemetry.points(name):
            key = tuple(sorted(p.attributes.items()))
            result[key] = p.value if isinstance(p, NumberDataPoint) else (p.count, p.sum)
        return result

    assert values("agent.sessions.active") == {(): 1}  # 3 created, 1 deleted, 1 expired by the sweep
    assert values("agent.turns") == {
        (("agent", "shopping"), ("outcome", "completed")): 2,
        (("agent", "shopping"), ("outcome", "failed")): 1,
    }
    assert values("agent.conflicts") == {(("agent", "shopping"), ("reason", "session_changed")): 1}
    assert values("agent.compactions") == {(("agent", "general"),): 1}
    assert values("agent.session.size") == {(("agent", "shopping"),): (1, 5000)}
    assert values("agent.sweep.sessions") == {(("result", "expired"),): 1, (("result", "refiled"),): 2}
    assert values("agent.sweep.duration") == {(): (1, 0.25)}


FRESH = CompactionState()


@pytest.mark.parametrize(
    ("before", "after", "counted"),
    [
        (None, None, False),  # no compaction configured
        (None, FRESH, False),  # the first turn: nothing moved yet
        (FRESH, FRESH.model_copy(update={"first_kept": 4}), True),  # the window moved
        (FRESH, FRESH.model_copy(update={"stubbed_through": 3}), True),  # old tool results stubbed
        (FRESH, FRESH.model_copy(update={"summary": "s", "summarized_through": 4}), True),  # summarized
        (FRESH, FRESH.model_copy(update={"token_ratio": 1.3}), False),  # calibration alone
    ],
    ids=["none", "first", "window", "stubs", "summary", "calibration"],
)
def test_a_turn_counts_as_compacted_when_what_is_sent_changed(
    before: CompactionState | None, after: CompactionState | None, counted: bool
) -> None:
    def state(value: CompactionState | None) -> dict[str, Any]:
        return {} if value is None else {COMPACTION_STATE_KEY: value}

    assert compaction_moved(state(before), state(after)) is counted


@pytest.mark.parametrize(
    ("auth", "expected"),
    [
        ("ClientId=1234-abcd;Authorization=AAD", "1234-abcd"),
        ("Authorization=AAD", ""),
        ("authorization=aad; clientid=xyz", "xyz"),
        ("Authorization=Key", None),
    ],
)
def test_authentication_string(auth: str, expected: str | None) -> None:
    assert aad_client_id(auth) == expected


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"APPLICATIONINSIGHTS_AUTHENTICATION_STRING": "ClientId"}, "APPLICATIONINSIGHTS_AUTHENTICATION_STRING"),
        ({"AGENT_TELEMETRY_CONSOLE": "maybe"}, "AGENT_TELEMETRY_CONSOLE"),
        ({"ENABLE_SENSITIVE_DATA": "2"}, "ENABLE_SENSITIVE_DATA"),
        ({"OTEL_EXPORTER_OTLP_ENDPOINT": "collector:4318"}, "OTEL_EXPORTER_OTLP_ENDPOINT"),
    ],
)
def test_bad_telemetry_settings_are_refused(env: dict[str, str], message: str) -> None:
    with pytest.raises(ConfigurationError, match=message):
        TelemetryConfig.from_env(env)


def test_config_from_env() -> None:
    assert not TelemetryConfig.from_env({}).enabled
    config = TelemetryConfig.from_env(
        {
            "APPLICATIONINSIGHTS_CONNECTION_STRING": "InstrumentationKey=k",
            "APPLICATIONINSIGHTS_AUTHENTICATION_STRING": "ClientId=c;Authorization=AAD",
            "OTEL_EXPORTER_OTLP_ENDPOINT": "http://collector:4318",
            "AGENT_TELEMETRY_CONSOLE": "true",
        }
    )
    assert config == TelemetryConfig(
        connection_string="InstrumentationKey=k",
        aad_client_id="c",
        otlp_endpoint="http://collector:4318",
        console=True,
        sensitive_data=False,
    )


async def test_runtime_refuses_bad_telemetry_settings() -> None:
    """The runtime's first build configures telemetry from the app settings; a bad value fails it loudly."""
    assert await ensure_configured(AppSettings.from_env({})) is False
    with pytest.raises(ConfigurationError, match="configured once per process"):
        await ensure_configured(AppSettings.from_env({"AGENT_TELEMETRY_CONSOLE": "true"}))


def test_grpc_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_PROTOCOL", "grpc")
    with pytest.raises(ConfigurationError, match="http/protobuf"):
        observability.otlp_http_exporters("http://127.0.0.1:1")


# --- export in child processes -----------------------------------------------------------------------


@dataclass
class Receiver:
    """An OTLP/HTTP receiver (and stand-in for Application Insights' endpoints) on loopback."""

    port: int
    requests: list[tuple[str, bytes]] = field(default_factory=list)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def spans(self) -> list[Any]:
        found = []
        for path, body in self.requests:
            if path == "/v1/traces":
                request = ExportTraceServiceRequest.FromString(body)
                found += [s for rs in request.resource_spans for ss in rs.scope_spans for s in ss.spans]
        return found

    def metric_names(self) -> set[str]:
        names: set[str] = set()
        for path, body in self.requests:
            if path == "/v1/metrics":
                request = ExportMetricsServiceRequest.FromString(body)
                names |= {m.name for rm in request.resource_metrics for sm in rm.scope_metrics for m in sm.metrics}
        return names

    def resources(self) -> list[dict[str, str]]:
        found = []
        for path, body in self.requests:
            if path == "/v1/traces":
                for rs in ExportTraceServiceRequest.FromString(body).resource_spans:
                    found.append({a.key: a.value.string_value for a in rs.resource.attributes})
        return found


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    received: list[tuple[str, bytes]] = []

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers.get("content-length", "0")))
            received.append((self.path, body))
            self.send_response(200)
            self.send_header("content-type", "application/x-protobuf")
            self.send_header("content-length", "0")
            self.end_headers()

        def log_message(self, format: str, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield Receiver(server.server_address[1], received)
    finally:
        server.shutdown()
        server.server_close()


def _child_run(mode: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    base = {k: v for k, v in os.environ.items() if not k.startswith(("OTEL_", "APPLICATIONINSIGHTS_"))}
    out = subprocess.run(
        [sys.executable, "-m", "tests.telemetry_child", mode],
        cwd=ROOT,
        env={**base, **env},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert out.returncode == 0, out.stderr
    return out


def _child(mode: str, env: dict[str, str]) -> dict[str, Any]:
    report: dict[str, Any] = json.loads(_child_run(mode, env).stdout.strip().splitlines()[-1])
    return report


def test_console_export() -> None:
    """AGENT_TELEMETRY_CONSOLE=true (the dev server's --telemetry-console) prints the spans to stdout."""
    out = _child_run("service", {"AGENT_TELEMETRY_CONSOLE": "true"}).stdout
    for name in ("invoke_agent shopping", "chat echo-1", "execute_tool search_products"):
        assert f'"name": "{name}"' in out
    assert '"gen_ai.conversation.id": "sess-1"' in out


@pytest.mark.parametrize("mode", ["service", "library"])
def test_otlp_http_export(receiver: Receiver, mode: str) -> None:
    """service.telemetry (from OTEL_EXPORTER_OTLP_ENDPOINT) and configure_otel_providers export real OTLP."""
    report = _child(mode, {"OTEL_EXPORTER_OTLP_ENDPOINT": receiver.url})
    assert report == {"instrumentation": True}
    spans = {s.name: s for s in receiver.spans()}
    assert set(spans) == {"invoke_agent shopping", "chat echo-1", "execute_tool search_products"}
    agent, chat = spans["invoke_agent shopping"], spans["chat echo-1"]
    assert chat.parent_span_id == agent.span_id
    assert chat.trace_id == agent.trace_id
    attributes = {a.key: a.value for a in chat.attributes}
    assert attributes["gen_ai.conversation.id"].string_value == "sess-1"
    assert attributes["gen_ai.usage.input_tokens"].int_value == 12
    assert {"gen_ai.client.operation.duration", "gen_ai.client.token.usage", "agent.turns"} <= receiver.metric_names()
    service_name = "agent-core-functions" if mode == "service" else "telemetry-child"
    assert {r["service.name"] for r in receiver.resources()} == {service_name}


def test_azure_monitor_wiring_without_network(receiver: Receiver) -> None:
    """A connection string configures Azure Monitor's exporters with the app's managed identity; nothing is sent
    (every endpoint in the connection string is the loopback receiver, which stays silent)."""
    key = "InstrumentationKey=00000000-0000-0000-0000-000000000000"
    client_id = "11111111-2222-3333-4444-555555555555"
    endpoints = f"IngestionEndpoint={receiver.url}/;LiveEndpoint={receiver.url}/"
    report = _child(
        "azure",
        {
            "APPLICATIONINSIGHTS_CONNECTION_STRING": f"{key};{endpoints}",
            "APPLICATIONINSIGHTS_AUTHENTICATION_STRING": f"ClientId={client_id};Authorization=AAD",
            "APPLICATIONINSIGHTS_STATSBEAT_DISABLED_ALL": "true",  # statsbeat reports to a fixed Microsoft endpoint
            "OTEL_EXPERIMENTAL_RESOURCE_DETECTORS": "otel",  # the Azure VM detector would probe IMDS
        },
    )
    assert "AzureMonitorTraceExporter" in report["span_exporters"]
    assert "AzureMonitorMetricExporter" in report["metric_exporters"]
    assert report["credential"] == "ManagedIdentityCredential"
    assert report["client_id"] == client_id
    assert report["instrumentation"] is True
    assert receiver.requests == []


# --- the run loop's spans, against the echo model ------------------------------------------------------------


@pytest.mark.parametrize("stream", [False, True], ids=["run", "stream"])
async def test_a_tool_calling_run_is_traced(telemetry: Telemetry, client: Any, stream: bool) -> None:
    from agent_core import Agent, tool

    @tool
    def lookup(query: str) -> str:
        """Look something up."""
        return f"found {query}"

    agent = Agent(client, name="shopper", description="shops", tools=[lookup])
    session = agent.create_session()
    if stream:
        response = await agent.run("lookup(socks)", session=session, stream=True).get_final_response()
    else:
        response = await agent.run("lookup(socks)", session=session)
    spans = telemetry.finished()
    assert [s.name for s in spans] == ["chat echo-1", "execute_tool lookup", "chat echo-1", "invoke_agent shopper"]
    agent_span = spans[-1]
    for child in spans[:-1]:
        assert child.parent is not None
        assert child.parent.span_id == agent_span.context.span_id
        assert (child.attributes or {})["gen_ai.conversation.id"] == session.session_id
    attributes = dict(agent_span.attributes or {})
    assert attributes["gen_ai.conversation.id"] == session.session_id
    assert attributes["gen_ai.agent.name"] == "shopper"
    assert attributes["gen_ai.request.model"] == "echo-1"
    assert attributes["gen_ai.response.id"] == response.response_id
    assert attributes["gen_ai.usage.input_tokens"] == response.usage.input_token_count
    assert attributes["gen_ai.usage.output_tokens"] == response.usage.output_token_count
    chats: list[dict[str, Any]] = [dict(s.attributes or {}) for s in spans if s.name.startswith("chat")]
    assert sum(c["gen_ai.usage.input_tokens"] for c in chats) == response.usage.input_token_count
    assert chats[0]["server.address"] == "127.0.0.1"
    assert not {k for s in spans for k in (s.attributes or {})} & SENSITIVE_KEYS
    assert "socks" not in json.dumps([dict(s.attributes or {}) for s in spans])


async def test_a_failed_model_call_is_traced(telemetry: Telemetry, client: Any, model: Any) -> None:
    from agent_core import Agent

    model.fail_next(429, message="slow down")
    with pytest.raises(ModelRateLimitError):
        await Agent(client, name="shopper").run("hi")
    chat, agent_span = telemetry.finished()
    for span in (chat, agent_span):
        assert span.status.status_code == StatusCode.ERROR
        assert (span.attributes or {})["error.type"] == "agent_core.exceptions.ModelRateLimitError"


async def test_sub_agent_spans_nest_under_the_tool_call(telemetry: Telemetry, client: Any) -> None:
    from agent_core import Agent

    expert = Agent(client, name="expert")
    await Agent(client, name="boss", tools=[expert.as_tool()]).run("expert(hello)")
    spans = telemetry.by_name()
    tool_span, inner = spans["execute_tool expert"], spans["invoke_agent expert"]
    assert inner.parent is not None
    assert inner.parent.span_id == tool_span.context.span_id
