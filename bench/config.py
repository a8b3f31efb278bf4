"""Sizes of a bench run: the full run the README quotes, and `--quick`, a smoke configuration of seconds."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Sizes:
    history_lengths: tuple[int, ...]  # #1/#2/#3: turns of history before the measured turn
    service_lengths: tuple[int, ...]  # #1: service-mode turns
    turn_samples: int  # #3: measured turns per history length
    turn_samples_long: int  # #3: the same at 1,000 turns and more (each model call costs ~1 s of SDK CPU there)
    cpu_turns: int  # #4: turns per conversation
    cpu_conversations: int  # #4: timed conversations per process
    cpu_runs: int  # #4: processes per side (interleaved)
    expiry_expired: int  # #5
    expiry_live: tuple[int, int]  # #5: live sessions, small and large table
    expiry_runs: int
    cold_runs: int  # #6: cold starts
    import_runs: int  # #6: interleaved pairs of import probes
    clients: int  # #7 and #8: concurrent clients
    throughput_seconds: float  # #7: length of one timed window
    throughput_runs: int
    memory_sessions: int  # #8
    memory_turns: int
    compaction_turns: int  # #10: turns of one compacted conversation
    compaction_uncompacted: int  # #10: turns of the same conversation without compaction
    window_lengths: tuple[int, ...]  # #1: turns of history seeded before the measured turns
    window_turns: int  # #1: the compaction window the seeded sessions carry
    window_samples: int  # #1: measured turns (and pages) per length


FULL = Sizes(
    history_lengths=(1, 100, 1000),
    service_lengths=(1, 100, 1000),
    turn_samples=30,
    turn_samples_long=12,
    cpu_turns=20,
    cpu_conversations=10,
    cpu_runs=3,
    expiry_expired=500,
    expiry_live=(1000, 10_000),
    expiry_runs=3,
    cold_runs=5,
    import_runs=11,
    clients=32,
    throughput_seconds=8.0,
    throughput_runs=3,
    memory_sessions=1000,
    memory_turns=10_000,
    compaction_turns=300,
    compaction_uncompacted=40,
    window_lengths=(1, 10, 100, 1000, 10_000),
    window_turns=20,
    window_samples=12,
)

QUICK = Sizes(
    history_lengths=(1, 5),
    service_lengths=(1, 3),
    turn_samples=2,
    turn_samples_long=2,
    cpu_turns=3,
    cpu_conversations=1,
    cpu_runs=1,
    expiry_expired=5,
    expiry_live=(10, 50),
    expiry_runs=1,
    cold_runs=1,
    import_runs=1,
    clients=4,
    throughput_seconds=0.3,
    throughput_runs=1,
    memory_sessions=8,
    memory_turns=24,
    compaction_turns=12,
    compaction_uncompacted=6,
    window_lengths=(1, 10, 40),
    window_turns=5,
    window_samples=2,
)
