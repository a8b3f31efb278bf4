"""OpenTelemetry for agent_core, following the GenAI semantic conventions; off until enabled.

Spans: `invoke_agent {agent}` around a run, `chat {model}` per model call, `execute_tool {tool}` per tool
call, with `gen_ai.operation.name`, `gen_ai.conversation.id` (the session id), `gen_ai.agent.name`,
`gen_ai.request.model`, `gen_ai.response.id`, `gen_ai.usage.input_tokens` / `output_tokens`, and `error.type`
on failures. Metrics: `gen_ai.client.operation.duration` (s) and `gen_ai.client.token.usage` ({token}),
histograms with the conventions' bucket boundaries. Message content, instructions and tool arguments/results
are sensitive: they are recorded only after `enable_instrumentation(enable_sensitive_data=True)`.

Entry points match Microsoft Agent Framework's `agent_framework.observability`:
- `enable_instrumentation()` when the process already has OpenTelemetry providers (Azure Monitor's
  `configure_azure_monitor()`, an OpenTelemetry distro, or your own); spans go to the global providers, or
  to the `tracer_provider=` / `meter_provider=` given.
- `configure_otel_providers()` to build SDK providers with OTLP/HTTP (the standard `OTEL_EXPORTER_OTLP_*`
  settings), console or given exporters, install them globally and enable instrumentation.

While disabled every hook is a flag check returning a shared no-op, and nothing of OpenTelemetry is imported:
`import agent_core` stays as fast as it was. The API is imported on enabling, the SDK and exporters only by
`configure_otel_providers()`.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from .exceptions import ConfigurationError
from .messages import Content, Message

if TYPE_CHECKING:
    from opentelemetry.context import Context
    from opentelemetry.metrics import Histogram, Meter, MeterProvider
    from opentelemetry.sdk.metrics.export import MetricExporter, MetricReader
    from opentelemetry.sdk.metrics.view import View
    from opentelemetry.sdk.trace.export import SpanExporter
    from opentelemetry.trace import Span, SpanKind, Tracer, TracerProvider

__all__ = [
    "OBSERVABILITY_SETTINGS",
    "OPERATION_DURATION_BUCKETS",
    "TOKEN_USAGE_BUCKETS",
    "ObservabilitySettings",
    "Operation",
    "OtelAttr",
    "active_meter",
    "active_tracer",
    "agent_operation",
    "chat_operation",
    "configure_otel_providers",
    "disable_instrumentation",
    "enable_instrumentation",
    "enable_sensitive_telemetry",
    "get_meter",
    "get_tracer",
    "tool_operation",
]

INSTRUMENTATION_NAME = "agent_core"
INSTRUMENTATION_VERSION = "0.1.0"

# The GenAI conventions' advisory bucket boundaries (gen-ai-metrics.md).
OPERATION_DURATION_BUCKETS = (0.01, 0.02, 0.04, 0.08, 0.16, 0.32, 0.64, 1.28, 2.56, 5.12, 10.24, 20.48, 40.96, 81.92)
TOKEN_USAGE_BUCKETS = (
    1,
    4,
    16,
    64,
    256,
    1024,
    4096,
    16384,
    65536,
    262144,
    1048576,
    4194304,
    16777216,
    67108864,
)


class OtelAttr:
    """The GenAI semantic-convention names agent_core records (a subset of MAF's `OtelAttr`, as plain strings)."""

    OPERATION = "gen_ai.operation.name"
    PROVIDER_NAME = "gen_ai.provider.name"
    SYSTEM = "gen_ai.system"
    """The older name of `gen_ai.provider.name`, still set on `chat` spans: Azure Monitor's exporter types a
    dependency as "GenAI | <system>" only from this one."""
    ERROR_TYPE = "error.type"
    ADDRESS = "server.address"
    PORT = "server.port"
    AGENT_NAME = "gen_ai.agent.name"
    AGENT_ID = "gen_ai.agent.id"
    AGENT_DESCRIPTION = "gen_ai.agent.description"
    CONVERSATION_ID = "gen_ai.conversation.id"
    REQUEST_MODEL = "gen_ai.request.model"
    REQUEST_MAX_TOKENS = "gen_ai.request.max_tokens"
    REQUEST_TEMPERATURE = "gen_ai.request.temperature"
    REQUEST_TOP_P = "gen_ai.request.top_p"
    RESPONSE_ID = "gen_ai.response.id"
    RESPONSE_MODEL = "gen_ai.response.model"
    FINISH_REASONS = "gen_ai.response.finish_reasons"
    INPUT_TOKENS = "gen_ai.usage.input_tokens"
    OUTPUT_TOKENS = "gen_ai.usage.output_tokens"
    TOOL_NAME = "gen_ai.tool.name"
    TOOL_CALL_ID = "gen_ai.tool.call.id"
    TOOL_DESCRIPTION = "gen_ai.tool.description"
    TOOL_TYPE = "gen_ai.tool.type"
    TOOL_ARGUMENTS = "gen_ai.tool.call.arguments"
    TOOL_RESULT = "gen_ai.tool.call.result"
    INPUT_MESSAGES = "gen_ai.input.messages"
    OUTPUT_MESSAGES = "gen_ai.output.messages"
    SYSTEM_INSTRUCTIONS = "gen_ai.system_instructions"
    TOKEN_TYPE = "gen_ai.token.type"
    OPERATION_DURATION = "gen_ai.client.operation.duration"
    TOKEN_USAGE = "gen_ai.client.token.usage"
    CHAT_OPERATION = "chat"
    AGENT_INVOKE_OPERATION = "invoke_agent"
    TOOL_EXECUTION_OPERATION = "execute_tool"


# The attributes of metric points (low-cardinality ones only: no ids), in the order of `_metric_key`'s values.
_METRIC_ATTRIBUTES = (
    OtelAttr.OPERATION,
    OtelAttr.PROVIDER_NAME,
    OtelAttr.REQUEST_MODEL,
    OtelAttr.ADDRESS,
    OtelAttr.PORT,
    OtelAttr.AGENT_NAME,
)
MetricKey = tuple[str, str | None, str | None, str | None, int | None, str | None]
MetricAttributes = tuple[dict[str, Any], dict[str, Any], dict[str, Any]]  # duration, input tokens, output tokens
_metric_attributes: dict[MetricKey, MetricAttributes] = {}
"""Metric attribute sets by their values, built once: an agent's operations all record with the same few."""


def _metrics_for(key: MetricKey) -> MetricAttributes:
    cached = _metric_attributes.get(key)
    if cached is None:
        base = {name: value for name, value in zip(_METRIC_ATTRIBUTES, key, strict=True) if value is not None}
        cached = (base, {**base, OtelAttr.TOKEN_TYPE: "input"}, {**base, OtelAttr.TOKEN_TYPE: "output"})
        if len(_metric_attributes) >= 256:  # bounded: many models or agents only cost a rebuild
            _metric_attributes.clear()
        _metric_attributes[key] = cached
    return cached


@dataclass
class ObservabilitySettings:
    """What is recorded: nothing until `enable_instrumentation`; content only with `enable_sensitive_data`."""

    enable_instrumentation: bool = False
    enable_sensitive_data: bool = False


OBSERVABILITY_SETTINGS = ObservabilitySettings()


@dataclass
class _Instruments:
    tracer: Tracer
    duration: Histogram
    token_usage: Histogram
    meter_provider: MeterProvider | None  # None: the global one
    tracer_provider: TracerProvider | None
    kinds: dict[str, SpanKind]  # SpanKind by name, resolved once (the API is imported only on enabling)


def active_tracer(name: str = INSTRUMENTATION_NAME) -> Tracer | None:
    """A tracer on the providers instrumentation was enabled with, or None while it is off (for code around
    agent_core, e.g. the service's request spans, to record into the same place)."""
    instruments = _instruments
    if instruments is None:
        return None
    return instruments.tracer if name == INSTRUMENTATION_NAME else get_tracer(instruments.tracer_provider, name)


def active_meter(name: str) -> Meter | None:
    """A meter named `name` on the provider instrumentation was enabled with, or None while it is off."""
    instruments = _instruments
    return None if instruments is None else get_meter(instruments.meter_provider, name)


_instruments: _Instruments | None = None


def _env_flag(name: str) -> bool:
    return os.environ.get(name, "").strip().lower() in ("1", "true", "yes", "on")


def get_tracer(tracer_provider: TracerProvider | None = None, name: str = INSTRUMENTATION_NAME) -> Tracer:
    """agent_core's tracer (or `name`'s), from `tracer_provider` or the global provider."""
    from opentelemetry import trace

    return trace.get_tracer(name, INSTRUMENTATION_VERSION, tracer_provider=tracer_provider)


def get_meter(meter_provider: MeterProvider | None = None, name: str = INSTRUMENTATION_NAME) -> Meter:
    """agent_core's meter (or `name`'s), from `meter_provider` or the global provider."""
    from opentelemetry import metrics

    return metrics.get_meter(name, INSTRUMENTATION_VERSION, meter_provider=meter_provider)


def enable_instrumentation(
    *,
    enable_sensitive_data: bool | None = None,
    tracer_provider: TracerProvider | None = None,
    meter_provider: MeterProvider | None = None,
) -> None:
    """Start recording spans and metrics (to the global providers unless providers are given).

    `enable_sensitive_data`: record message content, instructions and tool arguments/results; `None` reads
    the `ENABLE_SENSITIVE_DATA` environment variable (off unless set to true), as MAF does.
    """
    global _instruments
    from opentelemetry.trace import SpanKind

    meter = get_meter(meter_provider)
    _metric_attributes.clear()
    _instruments = _Instruments(
        tracer=get_tracer(tracer_provider),
        duration=meter.create_histogram(
            OtelAttr.OPERATION_DURATION,
            unit="s",
            description="GenAI operation duration",
            explicit_bucket_boundaries_advisory=list(OPERATION_DURATION_BUCKETS),
        ),
        token_usage=meter.create_histogram(
            OtelAttr.TOKEN_USAGE,
            unit="{token}",
            description="Number of input and output tokens used",
            explicit_bucket_boundaries_advisory=[float(b) for b in TOKEN_USAGE_BUCKETS],
        ),
        meter_provider=meter_provider,
        tracer_provider=tracer_provider,
        kinds={kind.name: kind for kind in SpanKind},
    )
    OBSERVABILITY_SETTINGS.enable_sensitive_data = (
        _env_flag("ENABLE_SENSITIVE_DATA") if enable_sensitive_data is None else enable_sensitive_data
    )
    OBSERVABILITY_SETTINGS.enable_instrumentation = True


def enable_sensitive_telemetry() -> None:
    """Also record message content, instructions and tool arguments/results (enables instrumentation)."""
    if not OBSERVABILITY_SETTINGS.enable_instrumentation:
        enable_instrumentation(enable_sensitive_data=True)
    OBSERVABILITY_SETTINGS.enable_sensitive_data = True


def disable_instrumentation() -> None:
    """Stop recording; providers and exporters already configured are left as they are."""
    global _instruments
    OBSERVABILITY_SETTINGS.enable_instrumentation = False
    OBSERVABILITY_SETTINGS.enable_sensitive_data = False
    _instruments = None


def configure_otel_providers(
    *,
    service_name: str | None = None,
    service_version: str | None = None,
    resource_attributes: Mapping[str, str] | None = None,
    otlp_endpoint: str | None = None,
    otlp_headers: Mapping[str, str] | None = None,
    exporters: Sequence[SpanExporter | MetricExporter] | None = None,
    metric_readers: Sequence[MetricReader] | None = None,
    views: Sequence[View] | None = None,
    enable_console_exporters: bool | None = None,
    enable_sensitive_data: bool | None = None,
) -> tuple[TracerProvider, MeterProvider]:
    """Build SDK tracer and meter providers, install them globally, and enable instrumentation.

    Exporters: OTLP over HTTP/protobuf when `otlp_endpoint` or `OTEL_EXPORTER_OTLP_ENDPOINT` is set (headers,
    timeout and the per-signal endpoints from the standard `OTEL_EXPORTER_OTLP_*` variables); console output
    when `enable_console_exporters` (or `ENABLE_CONSOLE_EXPORTERS`); and any `exporters` / `metric_readers`
    given. Needs `opentelemetry-sdk` (and `opentelemetry-exporter-otlp-proto-http` for OTLP). Call once at
    startup: OpenTelemetry allows one global provider per signal. Returns the providers (to flush or shut down).
    """
    try:
        from opentelemetry import metrics, trace
        from opentelemetry.sdk.metrics import MeterProvider as SdkMeterProvider
        from opentelemetry.sdk.metrics.export import MetricExporter, PeriodicExportingMetricReader
        from opentelemetry.sdk.resources import Resource
        from opentelemetry.sdk.trace import TracerProvider as SdkTracerProvider
        from opentelemetry.sdk.trace.export import BatchSpanProcessor, SimpleSpanProcessor, SpanExporter
    except ImportError as exc:
        raise ConfigurationError(f"configure_otel_providers() needs opentelemetry-sdk installed: {exc}") from exc

    attributes: dict[str, str] = dict(resource_attributes or {})
    if service_name:
        attributes["service.name"] = service_name
    if service_version:
        attributes["service.version"] = service_version
    resource = Resource.create(attributes)  # merges OTEL_SERVICE_NAME and OTEL_RESOURCE_ATTRIBUTES

    span_exporters: list[SpanExporter] = []
    readers: list[MetricReader] = list(metric_readers or [])
    for exporter in exporters or []:
        if isinstance(exporter, SpanExporter):
            span_exporters.append(exporter)
        elif isinstance(exporter, MetricExporter):
            readers.append(PeriodicExportingMetricReader(exporter))
        else:
            raise ConfigurationError(f"exporters must be span or metric exporters, got {type(exporter).__name__}")
    endpoint = otlp_endpoint or os.environ.get("OTEL_EXPORTER_OTLP_ENDPOINT")
    if endpoint:
        otlp_spans, otlp_metrics = otlp_http_exporters(endpoint, headers=otlp_headers)
        span_exporters.append(otlp_spans)
        readers.append(PeriodicExportingMetricReader(otlp_metrics))
    console = _env_flag("ENABLE_CONSOLE_EXPORTERS") if enable_console_exporters is None else enable_console_exporters
    tracer_provider = SdkTracerProvider(resource=resource)
    if console:
        from opentelemetry.sdk.trace.export import ConsoleSpanExporter

        tracer_provider.add_span_processor(SimpleSpanProcessor(ConsoleSpanExporter()))
    for span_exporter in span_exporters:
        tracer_provider.add_span_processor(BatchSpanProcessor(span_exporter))
    meter_provider = SdkMeterProvider(resource=resource, metric_readers=readers, views=list(views or []))
    trace.set_tracer_provider(tracer_provider)
    metrics.set_meter_provider(meter_provider)
    enable_instrumentation(enable_sensitive_data=enable_sensitive_data)
    return tracer_provider, meter_provider


def otlp_http_exporters(
    endpoint: str, *, headers: Mapping[str, str] | None = None
) -> tuple[SpanExporter, MetricExporter]:
    """OTLP/HTTP span and metric exporters for a base endpoint (`/v1/traces` and `/v1/metrics` are appended).

    Only HTTP/protobuf is shipped: `OTEL_EXPORTER_OTLP_PROTOCOL=grpc` is refused rather than ignored.
    """
    protocol = os.environ.get("OTEL_EXPORTER_OTLP_PROTOCOL", "http/protobuf").strip()
    if protocol != "http/protobuf":
        raise ConfigurationError(
            f"OTEL_EXPORTER_OTLP_PROTOCOL={protocol!r} is not supported; agent_core exports OTLP over http/protobuf"
        )
    try:
        from opentelemetry.exporter.otlp.proto.http.metric_exporter import OTLPMetricExporter
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
    except ImportError as exc:
        raise ConfigurationError(f"OTLP export needs opentelemetry-exporter-otlp-proto-http installed: {exc}") from exc
    base = endpoint.rstrip("/")
    spans = OTLPSpanExporter(endpoint=f"{base}/v1/traces", headers=dict(headers) if headers else None)
    metric = OTLPMetricExporter(endpoint=f"{base}/v1/metrics", headers=dict(headers) if headers else None)
    return spans, metric


# --- operations (the hooks the run loop calls) ---------------------------------------------------------


class Operation:
    """One traced GenAI operation: a span, plus its start time and the attributes of its metric points.

    Use as a context manager: an exception leaving the block is recorded (`error.type`, span status) and
    re-raised; the span ends and the duration is recorded when the block exits. While instrumentation is
    off the hooks return `NO_OP`, whose methods do nothing.
    """

    __slots__ = ("_extra", "_instruments", "_metrics", "_operation", "_start", "_usage", "span")

    def __init__(self, instruments: _Instruments, span: Span, operation: str, metrics: MetricAttributes) -> None:
        self._instruments = instruments
        self.span = span
        self._operation = operation
        self._metrics = metrics  # shared, never changed: what an operation adds goes in `_extra`
        self._extra: dict[str, Any] | None = None
        self._start = time.perf_counter()
        self._usage: tuple[int, int] | None = None

    @property
    def recording(self) -> bool:
        return True

    def __enter__(self) -> Operation:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: object) -> None:
        self.end(exc)

    def context(self) -> Context | None:
        """An OpenTelemetry context with this span current: the parent for child operations."""
        from opentelemetry import trace

        return trace.set_span_in_context(self.span)

    @contextmanager
    def activate(self) -> Iterator[None]:
        """Make this span current for the block (which must not cross a `yield`), e.g. around a tool call."""
        from opentelemetry import trace

        with trace.use_span(self.span, end_on_exit=False, record_exception=False, set_status_on_exception=False):
            yield

    def _add_metric_attribute(self, name: str, value: Any) -> None:
        if self._extra is None:
            self._extra = {}
        self._extra[name] = value

    def set_response(
        self,
        *,
        response_id: str | None = None,
        model: str | None = None,
        conversation_id: str | None = None,
        input_tokens: int | None = None,
        output_tokens: int | None = None,
        finish_reasons: Sequence[str] | None = None,
    ) -> None:
        """Record what came back (in one update of the span); token counts also feed `gen_ai.client.token.usage`
        (chat operations)."""
        attributes: dict[str, Any] = {}
        if response_id:
            attributes[OtelAttr.RESPONSE_ID] = response_id
        if model:
            attributes[OtelAttr.RESPONSE_MODEL] = model
            self._add_metric_attribute(OtelAttr.RESPONSE_MODEL, model)
        if conversation_id:
            attributes[OtelAttr.CONVERSATION_ID] = conversation_id
        if finish_reasons:
            attributes[OtelAttr.FINISH_REASONS] = tuple(finish_reasons)
        if input_tokens is not None and output_tokens is not None:
            attributes[OtelAttr.INPUT_TOKENS] = input_tokens
            attributes[OtelAttr.OUTPUT_TOKENS] = output_tokens
            self._usage = (input_tokens, output_tokens)
        if attributes:
            self.span.set_attributes(attributes)

    def record_error(self, exc: BaseException) -> None:
        """Mark the operation failed (also for failures that are handled, such as a tool error result)."""
        from opentelemetry.trace import Status, StatusCode

        error_type = _error_type(exc)
        self.span.set_attribute(OtelAttr.ERROR_TYPE, error_type)
        self.span.set_status(Status(StatusCode.ERROR, str(exc) or error_type))
        self.span.record_exception(exc)
        self._add_metric_attribute(OtelAttr.ERROR_TYPE, error_type)

    def capture_input(self, messages: Sequence[Message], instructions: str | None = None) -> None:
        """`gen_ai.input.messages` and `gen_ai.system_instructions`, only with sensitive data enabled."""
        if not OBSERVABILITY_SETTINGS.enable_sensitive_data:
            return
        self.span.set_attribute(OtelAttr.INPUT_MESSAGES, _messages_json(messages))
        if instructions:
            self.span.set_attribute(
                OtelAttr.SYSTEM_INSTRUCTIONS, json.dumps([{"type": "text", "content": instructions}])
            )

    def capture_output(self, messages: Sequence[Message]) -> None:
        """`gen_ai.output.messages`, only with sensitive data enabled."""
        if OBSERVABILITY_SETTINGS.enable_sensitive_data:
            self.span.set_attribute(OtelAttr.OUTPUT_MESSAGES, _messages_json(messages))

    def capture_tool_call(self, arguments: str | None, result: str | None) -> None:
        """`gen_ai.tool.call.arguments` / `.result`, only with sensitive data enabled."""
        if not OBSERVABILITY_SETTINGS.enable_sensitive_data:
            return
        if arguments is not None:
            self.span.set_attribute(OtelAttr.TOOL_ARGUMENTS, arguments)
        if result is not None:
            self.span.set_attribute(OtelAttr.TOOL_RESULT, result)

    def end(self, exc: BaseException | None = None) -> None:
        """End the span and record the metrics; `exc`, if given, is recorded as the failure."""
        extra = self._extra
        if exc is not None and (extra is None or OtelAttr.ERROR_TYPE not in extra):
            self.record_error(exc)
            extra = self._extra
        instruments = self._instruments
        duration_attributes, input_attributes, output_attributes = self._metrics
        if extra:
            duration_attributes = {**duration_attributes, **extra}
        operation = self._operation
        if operation != OtelAttr.TOOL_EXECUTION_OPERATION:  # the client-operation metric covers model and agent calls
            instruments.duration.record(time.perf_counter() - self._start, duration_attributes)
        if self._usage is not None and operation == OtelAttr.CHAT_OPERATION:
            if extra:
                input_attributes, output_attributes = {**input_attributes, **extra}, {**output_attributes, **extra}
            inputs, outputs = self._usage
            instruments.token_usage.record(inputs, input_attributes)
            instruments.token_usage.record(outputs, output_attributes)
        self.span.end()


class _NoOperation(Operation):
    """What the hooks return while instrumentation is off: every method does nothing."""

    __slots__ = ()

    def __init__(self) -> None:  # no span, no instruments
        pass

    @property
    def recording(self) -> bool:
        return False

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: object) -> None:
        return None

    def context(self) -> Context | None:
        return None

    @contextmanager
    def activate(self) -> Iterator[None]:
        yield

    def set_response(self, **kwargs: Any) -> None:
        return None

    def record_error(self, exc: BaseException) -> None:
        return None

    def capture_input(self, messages: Sequence[Message], instructions: str | None = None) -> None:
        return None

    def capture_output(self, messages: Sequence[Message]) -> None:
        return None

    def capture_tool_call(self, arguments: str | None, result: str | None) -> None:
        return None

    def end(self, exc: BaseException | None = None) -> None:
        return None


NO_OP: Operation = _NoOperation()


def _start(
    name: str, operation: str, kind: str, attributes: dict[str, Any], metric_key: MetricKey, parent: Operation | None
) -> Operation:
    """Start a span with `attributes` (None values left out) and the operation recording into it."""
    instruments = _instruments
    assert instruments is not None
    span_attributes = {OtelAttr.OPERATION: operation}
    for key, value in attributes.items():
        if value is not None:
            span_attributes[key] = value
    span = instruments.tracer.start_span(
        name,
        context=parent.context() if parent is not None else None,
        kind=instruments.kinds[kind],
        attributes=span_attributes,
    )
    return Operation(instruments, span, operation, _metrics_for(metric_key))


def agent_operation(
    *,
    agent_name: str | None,
    agent_id: str | None = None,
    description: str | None = None,
    conversation_id: str | None = None,
    model: str | None = None,
    provider_name: str | None = None,
    parent: Operation | None = None,
) -> Operation:
    """`invoke_agent {agent}` (INTERNAL: the agent runs in process) around one run."""
    if _instruments is None:
        return NO_OP
    operation = OtelAttr.AGENT_INVOKE_OPERATION
    name = f"{operation} {agent_name}" if agent_name else operation
    attributes: dict[str, Any] = {
        OtelAttr.AGENT_NAME: agent_name,
        OtelAttr.AGENT_ID: agent_id,
        OtelAttr.AGENT_DESCRIPTION: description,
        OtelAttr.CONVERSATION_ID: conversation_id,
        OtelAttr.REQUEST_MODEL: model,
        OtelAttr.PROVIDER_NAME: provider_name,
    }
    return _start(
        name, operation, "INTERNAL", attributes, (operation, provider_name, model, None, None, agent_name), parent
    )


def chat_operation(
    *,
    model: str | None,
    provider_name: str | None = None,
    conversation_id: str | None = None,
    agent_name: str | None = None,
    server_address: str | None = None,
    server_port: int | None = None,
    options: Mapping[str, Any] | None = None,
    parent: Operation | None = None,
) -> Operation:
    """`chat {model}` (CLIENT) around one model call; request parameters are taken from `options`.

    `agent_name` goes on the metric points only (the span's parent, `invoke_agent`, names the agent)."""
    if _instruments is None:
        return NO_OP
    operation = OtelAttr.CHAT_OPERATION
    attributes: dict[str, Any] = {
        OtelAttr.REQUEST_MODEL: model,
        OtelAttr.PROVIDER_NAME: provider_name,
        OtelAttr.SYSTEM: provider_name,
        OtelAttr.CONVERSATION_ID: conversation_id,
        OtelAttr.ADDRESS: server_address,
        OtelAttr.PORT: server_port,
    }
    if options:
        attributes[OtelAttr.REQUEST_MAX_TOKENS] = options.get("max_output_tokens")
        attributes[OtelAttr.REQUEST_TEMPERATURE] = options.get("temperature")
        attributes[OtelAttr.REQUEST_TOP_P] = options.get("top_p")
    name = f"{operation} {model}" if model else operation
    key = (operation, provider_name, model, server_address, server_port, agent_name)
    return _start(name, operation, "CLIENT", attributes, key, parent)


def tool_operation(
    *,
    tool_name: str,
    call_id: str | None = None,
    description: str | None = None,
    conversation_id: str | None = None,
    parent: Operation | None = None,
) -> Operation:
    """`execute_tool {tool}` (INTERNAL) around one tool call."""
    if _instruments is None:
        return NO_OP
    operation = OtelAttr.TOOL_EXECUTION_OPERATION
    attributes: dict[str, Any] = {
        OtelAttr.TOOL_NAME: tool_name,
        OtelAttr.TOOL_CALL_ID: call_id,
        OtelAttr.TOOL_DESCRIPTION: description or None,
        OtelAttr.TOOL_TYPE: "function",
        OtelAttr.CONVERSATION_ID: conversation_id,
    }
    key = (operation, None, None, None, None, None)
    return _start(f"{operation} {tool_name}", operation, "INTERNAL", attributes, key, parent)


# --- helpers -------------------------------------------------------------------------------------------


def _error_type(exc: BaseException) -> str:
    cls = type(exc)
    return cls.__qualname__ if cls.__module__ == "builtins" else f"{cls.__module__}.{cls.__qualname__}"


def _part(content: Content) -> dict[str, Any]:
    """A content as a GenAI-conventions message part."""
    if content.type == "text":
        return {"type": "text", "content": content.text or ""}
    if content.type == "function_call":
        return {"type": "tool_call", "id": content.call_id, "name": content.name, "arguments": content.arguments}
    if content.type == "function_result":
        return {"type": "tool_call_response", "id": content.call_id, "response": content.result}
    return {"type": content.type}


def _messages_json(messages: Sequence[Message]) -> str:
    return json.dumps(
        [{"role": m.role, "parts": [_part(c) for c in m.contents]} for m in messages], separators=(",", ":")
    )
