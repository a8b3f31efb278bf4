"""The service's telemetry: where spans and metrics go (Azure Monitor, OTLP, console) and the service's metrics.

Export is chosen from the environment, once per process:
- `APPLICATIONINSIGHTS_CONNECTION_STRING`: Azure Monitor through `azure-monitor-opentelemetry`. Infra disables
  Application Insights' local (key) authentication, so when `APPLICATIONINSIGHTS_AUTHENTICATION_STRING` is
  `ClientId=<id>;Authorization=AAD` (infra sets it) the exporter authenticates with that managed identity.
- `OTEL_EXPORTER_OTLP_ENDPOINT`: OTLP over HTTP/protobuf to a collector (also alongside Azure Monitor).
- `AGENT_TELEMETRY_CONSOLE=true`: spans printed to stdout (the dev server's `--telemetry-console`).
With none of them nothing is configured and agent_core's instrumentation stays off (no cost per turn).
`ENABLE_SENSITIVE_DATA=true` also records message content; leave it off in production.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import os
from collections.abc import Awaitable, Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, ParamSpec, TypeVar

from agent_core import observability
from agent_core.exceptions import ConfigurationError

from .settings import AppSettings

if TYPE_CHECKING:
    from azure.core.credentials import TokenCredential
    from opentelemetry.metrics import Meter
    from opentelemetry.sdk.metrics.export import MetricReader
    from opentelemetry.sdk.trace import SpanProcessor

logger = logging.getLogger(__name__)

SERVICE_NAME = "agent-core-functions"
METER_NAME = "agent_core.service"
TRACER_NAME = "agent_core.service"

AUTHENTICATION_STRING = "APPLICATIONINSIGHTS_AUTHENTICATION_STRING"


def aad_client_id(authentication_string: str) -> str | None:
    """The managed identity's client id from `ClientId=<id>;Authorization=AAD` ("" = system-assigned).

    Returns None when the string does not ask for Entra ID; a malformed string is a configuration error.
    """
    try:
        parts = dict(p.split("=", 1) for p in authentication_string.split(";") if p.strip())
    except ValueError:
        raise ConfigurationError(
            f"{AUTHENTICATION_STRING} must look like ClientId=<id>;Authorization=AAD, got {authentication_string!r}"
        ) from None
    lowered = {k.strip().lower(): v.strip() for k, v in parts.items()}
    if lowered.get("authorization", "").upper() != "AAD":
        return None
    return lowered.get("clientid", "")


@dataclass(frozen=True)
class TelemetryConfig:
    """Which exporters to set up, read from app settings."""

    connection_string: str | None = None
    aad_client_id: str | None = None  # None: no Entra ID; "": system-assigned identity
    otlp_endpoint: str | None = None
    console: bool = False
    sensitive_data: bool = False

    @classmethod
    def from_settings(cls, settings: AppSettings) -> TelemetryConfig:
        auth = settings.applicationinsights_authentication_string
        return cls(
            connection_string=settings.applicationinsights_connection_string,
            aad_client_id=aad_client_id(auth) if auth else None,
            otlp_endpoint=settings.otlp_endpoint,
            console=settings.telemetry_console,
            sensitive_data=settings.enable_sensitive_data,
        )

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> TelemetryConfig:
        """From app settings in `env` (default: the process environment); bad values raise ConfigurationError."""
        return cls.from_settings(AppSettings.from_env(env))

    @property
    def enabled(self) -> bool:
        return bool(self.connection_string or self.otlp_endpoint or self.console)


def managed_identity_credential(client_id: str) -> TokenCredential:
    """The (sync) credential the Azure Monitor exporter uses; its export runs on a background thread."""
    from azure.identity import ManagedIdentityCredential

    return ManagedIdentityCredential(client_id=client_id) if client_id else ManagedIdentityCredential()


def _extra_processors(config: TelemetryConfig) -> tuple[list[SpanProcessor], list[MetricReader]]:
    """OTLP and console exporters, to add next to Azure Monitor's or to providers of our own."""
    from opentelemetry.sdk.metrics.export import PeriodicExportingMetricReader
    from opentelemetry.sdk.trace.export import BatchSpanProcessor, ConsoleSpanExporter, SimpleSpanProcessor

    processors: list[SpanProcessor] = []
    readers: list[MetricReader] = []
    if config.otlp_endpoint:
        spans, metrics = observability.otlp_http_exporters(config.otlp_endpoint)
        processors.append(BatchSpanProcessor(spans))
        readers.append(PeriodicExportingMetricReader(metrics))
    if config.console:
        processors.append(SimpleSpanProcessor(ConsoleSpanExporter()))
    return processors, readers


def configure_telemetry(config: TelemetryConfig, *, credential: TokenCredential | None = None) -> bool:
    """Install the process's tracer and meter providers per `config` and enable agent_core's instrumentation.

    Azure Monitor's distro (`configure_azure_monitor`) owns the providers when a connection string is set;
    OTLP and console exporters are added to it. Otherwise we build plain SDK providers. Returns whether
    anything was configured. Call once per process (OpenTelemetry's global providers are set once).
    """
    if not config.enabled:
        return False
    from opentelemetry.sdk.resources import Resource

    processors, readers = _extra_processors(config)
    resource = Resource.create({"service.name": os.environ.get("OTEL_SERVICE_NAME") or SERVICE_NAME})
    if config.connection_string:
        from azure.monitor.opentelemetry import configure_azure_monitor

        if credential is None and config.aad_client_id is not None:
            credential = managed_identity_credential(config.aad_client_id)
        options: dict[str, Any] = {
            "connection_string": config.connection_string,
            "resource": resource,
            "span_processors": processors,
            "metric_readers": readers,
        }
        if credential is not None:
            options["credential"] = credential
        configure_azure_monitor(**options)
    else:
        from opentelemetry import metrics, trace
        from opentelemetry.sdk.metrics import MeterProvider
        from opentelemetry.sdk.trace import TracerProvider

        tracer_provider = TracerProvider(resource=resource)
        for processor in processors:
            tracer_provider.add_span_processor(processor)
        trace.set_tracer_provider(tracer_provider)
        metrics.set_meter_provider(MeterProvider(resource=resource, metric_readers=readers))
    observability.enable_instrumentation(enable_sensitive_data=config.sensitive_data)
    logger.info(
        "telemetry: azure_monitor=%s otlp=%s console=%s sensitive=%s",
        bool(config.connection_string),
        bool(config.otlp_endpoint),
        config.console,
        config.sensitive_data,
    )
    return True


_configured: TelemetryConfig | None = None


async def ensure_configured(settings: AppSettings) -> bool:
    """Configure telemetry from the app settings on the first call of the process (the runtime's first build).

    Building the exporters does blocking work (imports, Azure Monitor's setup), so it runs in a thread.
    Later calls return whether telemetry is on; a different configuration then is refused, not ignored.
    """
    global _configured
    config = TelemetryConfig.from_settings(settings)
    if _configured is None:
        if config.enabled:
            await asyncio.to_thread(configure_telemetry, config)
        _configured = config
    elif config != _configured and config.enabled:
        raise ConfigurationError("telemetry is configured once per process; restart to change its settings")
    return _configured.enabled


@dataclass
class ServiceMetrics:
    """The service's instruments (meter `agent_core.service`); no-ops until a meter provider is installed.

    `agent.sessions.active` is an up-down counter: +1 per created session, -1 per deleted or expired one
    (expiries come from the sweep). Each process reports its own running sum; the backend adds the
    processes up. No storage scan is involved, so it costs nothing per turn.
    """

    meter: Meter
    turns: Any = field(init=False)
    conflicts: Any = field(init=False)
    compactions: Any = field(init=False)
    session_bytes: Any = field(init=False)
    sweep_sessions: Any = field(init=False)
    sweep_duration: Any = field(init=False)
    active_sessions: Any = field(init=False)

    def __post_init__(self) -> None:
        m = self.meter
        self.turns = m.create_counter("agent.turns", unit="{turn}", description="Turns run, by agent and outcome")
        self.conflicts = m.create_counter(
            "agent.conflicts", unit="{conflict}", description="Requests answered 409 Conflict, by agent and reason"
        )
        self.compactions = m.create_counter(
            "agent.compactions", unit="{compaction}", description="History compactions, by agent"
        )
        self.session_bytes = m.create_histogram(
            "agent.session.size",
            unit="By",
            description="Stored size of a session after a turn, history included",
            explicit_bucket_boundaries_advisory=[float(4**i * 1024) for i in range(8)],
        )
        self.sweep_sessions = m.create_counter(
            "agent.sweep.sessions",
            unit="{session}",
            description="Sessions the expiry sweep handled, by result (expired, refiled, orphans, skipped)",
        )
        self.sweep_duration = m.create_histogram(
            "agent.sweep.duration", unit="s", description="Duration of one expiry sweep"
        )
        self.active_sessions = m.create_up_down_counter(
            "agent.sessions.active",
            unit="{session}",
            description="Sessions created minus sessions deleted or expired",
        )

    @classmethod
    def create(cls) -> ServiceMetrics:
        from opentelemetry import metrics

        return cls(metrics.get_meter(METER_NAME))

    def turn(self, agent: str, outcome: str) -> None:
        self.turns.add(1, {"agent": agent, "outcome": outcome})

    def conflict(self, agent: str, reason: str) -> None:
        self.conflicts.add(1, {"agent": agent, "reason": reason})

    def compaction(self, agent: str) -> None:
        self.compactions.add(1, {"agent": agent})

    def session_size(self, agent: str, size_bytes: int) -> None:
        self.session_bytes.record(size_bytes, {"agent": agent})

    def session_created(self) -> None:
        self.active_sessions.add(1)

    def session_deleted(self) -> None:
        self.active_sessions.add(-1)

    def sweep(self, *, expired: int, refiled: int, orphans: int, skipped: int, duration_seconds: float) -> None:
        for result, count in (("expired", expired), ("refiled", refiled), ("orphans", orphans), ("skipped", skipped)):
            if count:
                self.sweep_sessions.add(count, {"result": result})
        if expired:
            self.active_sessions.add(-expired)
        self.sweep_duration.record(duration_seconds)


_metrics: tuple[Meter, ServiceMetrics] | None = None


def metrics() -> ServiceMetrics | None:
    """The service's instruments on the provider instrumentation is enabled with; None while it is off."""
    global _metrics
    meter = observability.active_meter(METER_NAME)
    if meter is None:
        return None
    if _metrics is None or _metrics[0] is not meter:
        _metrics = (meter, ServiceMetrics(meter))
    return _metrics[1]


# --- spans ------------------------------------------------------------------------------------------------

P = ParamSpec("P")
R = TypeVar("R")


def traced(name: str) -> Callable[[Callable[P, Awaitable[R]]], Callable[P, Awaitable[R]]]:
    """Give an async function (a store call) a span of its own, a child of the current one; while
    instrumentation is off the call goes straight through."""

    def decorate(fn: Callable[P, Awaitable[R]]) -> Callable[P, Awaitable[R]]:
        @functools.wraps(fn)
        async def call(*args: P.args, **kwargs: P.kwargs) -> R:
            tracer = observability.active_tracer(TRACER_NAME)
            if tracer is None:
                return await fn(*args, **kwargs)
            with tracer.start_as_current_span(name):
                return await fn(*args, **kwargs)

        return call

    return decorate


def _route(path: str, params: Mapping[str, Any]) -> str:
    """The route template of a request path (`/api/agents/shopping/sessions/s1` -> `/api/agents/{agent}/...`)."""
    parts = path.split("/")
    names = {str(v): k for k, v in params.items()}
    return "/".join(f"{{{names[p]}}}" if p in names else p for p in parts)


@contextmanager
def request_span(method: str, path: str, params: Mapping[str, Any], headers: Mapping[str, str]) -> Iterator[Any]:
    """A SERVER span for one HTTP request, a child of the caller's trace (`traceparent`, which the Functions
    host passes on); current for the handler, so the turn's spans (and a streamed turn's task) are its
    children. Yields the span (None while instrumentation is off)."""
    tracer = observability.active_tracer(TRACER_NAME)
    if tracer is None:
        yield None
        return
    from opentelemetry import propagate
    from opentelemetry.trace import SpanKind

    route = _route(path, params)
    attributes: dict[str, Any] = {"http.request.method": method, "http.route": route, "url.path": path}
    if "session_id" in params:
        attributes[observability.OtelAttr.CONVERSATION_ID] = str(params["session_id"])
    if "agent" in params:
        attributes[observability.OtelAttr.AGENT_NAME] = str(params["agent"])
    parent = propagate.extract(dict(headers))
    with tracer.start_as_current_span(
        f"{method} {route}", context=parent, kind=SpanKind.SERVER, attributes=attributes
    ) as span:
        yield span


def record_response(span: Any, status: int, agent: str | None, error: Exception | None = None) -> None:
    """The response's status on the request span (5xx marks it failed; 4xx is the client's, per HTTP semconv),
    the error's type if one was answered, and a 409 in `agent.conflicts`."""
    if span is None:
        return
    from opentelemetry.trace import Status, StatusCode

    span.set_attribute("http.response.status_code", status)
    if error is not None:
        span.set_attribute(observability.OtelAttr.ERROR_TYPE, type(error).__name__)
        span.record_exception(error)
    if status >= 500:
        span.set_status(Status(StatusCode.ERROR))
    if status == 409 and (service_metrics := metrics()) is not None:
        service_metrics.conflict(agent or "", type(error).__name__ if error else "conflict")


@contextmanager
def operation_span(name: str) -> Iterator[Any]:
    """An INTERNAL span current for the block (the sweep); None while instrumentation is off."""
    tracer = observability.active_tracer(TRACER_NAME)
    if tracer is None:
        yield None
        return
    with tracer.start_as_current_span(name) as span:
        yield span


def record_sweep(span: Any, result: Any, duration_seconds: float) -> None:
    """A sweep's counts on its span and in the sweep metrics (`result`: an expiry.SweepResult)."""
    if span is None:
        return
    counts = {k: getattr(result, k) for k in ("expired", "refiled", "orphans", "skipped")}
    for key, value in counts.items():
        span.set_attribute(f"agent.sweep.{key}", value)
    if (service_metrics := metrics()) is not None:
        service_metrics.sweep(**counts, duration_seconds=duration_seconds)
