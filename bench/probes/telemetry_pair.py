"""Child process: measure #11, telemetry on and off alternating in one interpreter.

`python -m bench.probes.telemetry_pair BASE_URL TURNS CONVERSATIONS` runs one warm-up conversation each way, then
CONVERSATIONS pairs of TURNS-turn conversations against the echo model (agent_core, history in memory, as #4),
one with instrumentation off and one with it on, alternating which goes first. Printed as JSON: the CPU time
(time.process_time: every thread of this process) per turn of each, summed over its conversations.

On: SDK tracer and meter providers; spans go through a BatchSpanProcessor to an exporter that encodes them to
OTLP protobuf and drops the bytes (the CPU of an export, without the network), flushed at the end of each
conversation inside its timed region; metrics aggregate in an InMemoryMetricReader. Off: instrumentation
disabled, the library's default. Alternating in one process pairs the two sides under the same machine load,
memory layout and warm caches, which separate processes do not (their spread is larger than the effect).
"""

from __future__ import annotations

import asyncio
import gc
import json
import re
import sys
import time
from typing import Any

from .cpu_turns import agent_core_side


def main() -> None:
    base_url, turns, conversations = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
    print(json.dumps(asyncio.run(measure(base_url, turns, conversations))), flush=True)


async def measure(base_url: str, turns: int, conversations: int) -> dict[str, Any]:
    from opentelemetry.exporter.otlp.proto.common.trace_encoder import encode_spans
    from opentelemetry.sdk.metrics import MeterProvider
    from opentelemetry.sdk.metrics.export import InMemoryMetricReader
    from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor, SpanExporter, SpanExportResult

    from agent_core import observability

    class EncodeAndDrop(SpanExporter):
        spans = 0

        def export(self, spans: Any) -> SpanExportResult:
            batch: list[ReadableSpan] = list(spans)
            encode_spans(batch).SerializeToString()
            EncodeAndDrop.spans += len(batch)
            return SpanExportResult.SUCCESS

    tracer_provider = TracerProvider()
    tracer_provider.add_span_processor(BatchSpanProcessor(EncodeAndDrop()))
    meter_provider = MeterProvider(metric_readers=[InMemoryMetricReader()])
    conversation = agent_core_side(base_url)

    async def one(on: bool) -> tuple[float, str]:
        if on:  # switching is not timed: a process enables telemetry once
            observability.enable_instrumentation(tracer_provider=tracer_provider, meter_provider=meter_provider)
        started = time.process_time()
        reply = await conversation(turns)
        if on:
            tracer_provider.force_flush()  # every span of the conversation is encoded inside its timed region
        used = time.process_time() - started
        observability.disable_instrumentation()
        return used, reply

    await one(True)
    await one(False)
    gc.collect()
    EncodeAndDrop.spans = 0
    cpu = {"off": 0.0, "on": 0.0}
    replies: list[str] = []
    for n in range(conversations):
        for side in ("off", "on") if n % 2 == 0 else ("on", "off"):
            used, reply = await one(side == "on")
            cpu[side] += used
            replies.append(reply)
    seen = [re.search(r"I have seen (\d+) user message", r) for r in replies]
    count = turns * conversations
    return {
        "turns_per_side": count,
        "cpu_per_turn_s": {side: used / count for side, used in cpu.items()},
        "spans_per_turn": EncodeAndDrop.spans / count,
        "users_seen_at_last_turn": sorted({int(m.group(1)) if m else -1 for m in seen}),
    }


if __name__ == "__main__":
    main()
