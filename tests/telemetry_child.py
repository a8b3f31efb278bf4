"""Run in a child process by tests/test_observability.py: OpenTelemetry's global providers can be set only
once per process, so each way of configuring export gets a fresh interpreter.

`python -m tests.telemetry_child MODE` configures telemetry from the environment, records one agent run's
operations through agent_core.observability, and prints a JSON report on stdout.
"""

from __future__ import annotations

import json
import os
import sys
from typing import Any

from agent_core import observability
from service.telemetry import ServiceMetrics, TelemetryConfig, configure_telemetry


def record_run() -> None:
    """One run's worth of operations: invoke_agent > chat, execute_tool; plus a service metric."""
    with observability.agent_operation(agent_name="shopping", conversation_id="sess-1", model="echo-1") as run:
        with observability.chat_operation(model="echo-1", conversation_id="sess-1", parent=run) as chat:
            chat.set_response(response_id="resp_1", input_tokens=12, output_tokens=5)
        with observability.tool_operation(tool_name="search_products", call_id="call_1", parent=run):
            pass
    ServiceMetrics.create().turn("shopping", "completed")


def _flush() -> None:
    from opentelemetry import metrics, trace

    for provider in (trace.get_tracer_provider(), metrics.get_meter_provider()):
        flush = getattr(provider, "force_flush", None)
        if flush is not None:
            flush()


def _azure_report() -> dict[str, Any]:
    """What configure_azure_monitor built: exporters and the credential they authenticate with."""
    from opentelemetry import metrics, trace

    tracer_provider: Any = trace.get_tracer_provider()
    processors = tracer_provider._active_span_processor._span_processors
    exporters = [p.span_exporter for p in processors if hasattr(p, "span_exporter")]
    span_exporters = [type(e).__name__ for e in exporters]
    meter_provider: Any = metrics.get_meter_provider()
    readers = meter_provider._metric_readers
    metric_exporters = [type(getattr(r, "_exporter", r)).__name__ for r in readers]
    azure = next(e for e in exporters if type(e).__name__ == "AzureMonitorTraceExporter")
    credential = azure._credential
    return {
        "span_exporters": span_exporters,
        "metric_exporters": metric_exporters,
        "credential": type(credential).__name__,
        "client_id": credential._credential._settings.get("client_id"),
        "instrumentation": observability.OBSERVABILITY_SETTINGS.enable_instrumentation,
    }


def main(mode: str) -> None:
    if mode == "library":
        observability.configure_otel_providers(service_name="telemetry-child")
    else:
        assert configure_telemetry(TelemetryConfig.from_env())
    if mode == "azure":
        report = _azure_report()
        print(json.dumps(report), flush=True)
        os._exit(0)  # no shutdown flush: nothing is sent, and the managed identity is never asked for a token
    record_run()
    _flush()
    print(json.dumps({"instrumentation": observability.OBSERVABILITY_SETTINGS.enable_instrumentation}), flush=True)


if __name__ == "__main__":
    main(sys.argv[1])
