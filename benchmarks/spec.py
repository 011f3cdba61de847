"""What is measured: sizes, figures and the targets of issue 6. No I/O here.

Ratios are *speed ratios*, so that above 1 always means chronik is faster: for a
rate (events/s) it is chronik's figure divided by the other's; for a time (ms) it
is the other's figure divided by chronik's. A target such as "within 2.5 x of the
raw fetch" is therefore a speed ratio of at least 1 / 2.5 = 0.4.
"""

from __future__ import annotations

import dataclasses
from typing import Final, Literal

__all__ = [
    "BACKENDS",
    "BACKEND_WORKLOADS",
    "CONTENDERS",
    "FIGURES",
    "FULL",
    "QUICK",
    "TARGETS",
    "WORKLOADS",
    "Figure",
    "Sizes",
    "Target",
    "sizes_for",
    "speed_ratio",
]

Backend = Literal["sqlite", "postgres", "nats"]
BACKENDS: Final[tuple[Backend, ...]] = ("sqlite", "postgres", "nats")
# The columns of the table, in order. "chronik-normal" is chronik on SQLite with
# synchronous=NORMAL: a separate, labelled row, never mixed into chronik's figures.
CONTENDERS: Final = ("chronik", "eventsourcing", "raw")
NORMAL: Final = "chronik-normal"
# Workloads that also run chronik-normal (the commit-bound ones), SQLite only.
NORMAL_WORKLOADS: Final = (1, 2, 6)
# "eventsourcing-on-chronik" is the eventsourcing contender's application code with
# PERSISTENCE_MODULE=chronik.compat.eventsourcing (issue 20): a separate, labelled row
# under eventsourcing's own figure, on PostgreSQL, for the write workloads.
ON_CHRONIK: Final = "eventsourcing-on-chronik"
ON_CHRONIK_WORKLOADS: Final = (1, 2)
# The column of the table a labelled variant's figure stands in.
VARIANT_COLUMN: Final[dict[str, str]] = {NORMAL: "chronik", ON_CHRONIK: "eventsourcing"}

WORKLOADS: Final[dict[int, str]] = {
    1: "single-event commands, a new aggregate each, one transaction each",
    2: "one aggregate, events saved 10 at a time (and with snapshots)",
    3: "aggregates x events saved in one call, one transaction",
    4: "load an aggregate, without and with a snapshot at its last version",
    5: "read the whole global log in pages, undecoded and decoded",
    6: "threads writing new single-event aggregates to one shared store",
    7: "scaling: load a small aggregate from a small and a large store; RSS reading the large log",
}
# The workloads each backend runs. NATS (chronik on JetStream against raw nats-py; no
# NATS store in eventsourcing) runs the writes and the log read of issue 13.
BACKEND_WORKLOADS: Final[dict[str, tuple[int, ...]]] = {
    "sqlite": tuple(WORKLOADS),
    "postgres": tuple(WORKLOADS),
    "nats": (1, 2, 3, 5, 6),
}


@dataclasses.dataclass(frozen=True)
class Sizes:
    """Every count the workloads use; ``FULL`` is the issue's, ``QUICK`` runs in seconds."""

    w1_commands: int = 5_000
    w2_events: int = 10_000
    w2_batch: int = 10
    w2_snapshot_every: int = 100
    w3_aggregates: int = 100
    w3_events_per_aggregate: int = 100
    w4_small: int = 1_000
    w4_large: int = 10_000
    w4_loads: int = 10
    w5_events: int = 100_000
    w5_events_per_stream: int = 100
    page_size: int = 1_000
    w6_threads: int = 4
    w6_per_thread: int = 1_000
    w7_small: int = 10_000
    w7_large: int = 1_000_000
    w7_aggregate_events: int = 100
    w7_loads: int = 50
    bulk_chunk: int = 10_000

    def scaled(self, factor: float) -> Sizes:
        """Every event count times ``factor`` (batch, page and thread counts kept)."""

        def s(n: int, minimum: int = 1) -> int:
            return max(minimum, round(n * factor))

        return dataclasses.replace(
            self,
            w1_commands=s(self.w1_commands, 10),
            w2_events=s(self.w2_events, self.w2_batch * 2),
            w3_aggregates=s(self.w3_aggregates, 2),
            w4_small=s(self.w4_small, 10),
            w4_large=s(self.w4_large, 20),
            w5_events=s(self.w5_events, self.w5_events_per_stream),
            w6_per_thread=s(self.w6_per_thread, 5),
            w7_small=s(self.w7_small, self.w7_aggregate_events),
            w7_large=s(self.w7_large, self.w7_aggregate_events * 2),
        )


FULL: Final = Sizes()
QUICK: Final = Sizes(
    w1_commands=40,
    w2_events=200,
    w3_aggregates=5,
    w3_events_per_aggregate=20,
    w4_small=50,
    w4_large=200,
    w4_loads=3,
    w5_events=2_500,
    w5_events_per_stream=50,
    w6_per_thread=10,
    w7_small=1_000,
    w7_large=5_000,
    w7_loads=5,
    bulk_chunk=1_000,
)


def sizes_for(backend: str, sizes: Sizes) -> Sizes:
    """The sizes a backend runs at. NATS runs at a fifth of the others' event counts
    (its round trips are the slowest), which keeps the whole run within its time."""
    return sizes.scaled(0.2) if backend == "nats" and sizes != QUICK else sizes


Better = Literal["higher", "lower"]


@dataclasses.dataclass(frozen=True)
class Figure:
    """One row of the table: a number every contender reports for a workload."""

    key: str
    workload: int
    label: str  # formatted with the Sizes' fields
    unit: str
    better: Better
    compare: bool = True  # whether chronik/eventsourcing and chronik/raw make sense
    extra: bool = False  # beyond the figures: measured only with --extras

    def title(self, sizes: Sizes) -> str:
        return f"{self.workload}. " + self.label.format(**dataclasses.asdict(sizes))


FIGURES: Final[tuple[Figure, ...]] = (
    Figure("w1.events_per_s", 1, "{w1_commands:,} single-event commands", "events/s", "higher"),
    Figure("w1.p50_ms", 1, "single-event command latency p50", "ms", "lower"),
    Figure("w1.p99_ms", 1, "single-event command latency p99", "ms", "lower"),
    Figure(
        "w2.events_per_s",
        2,
        "1 aggregate, {w2_events:,} events saved {w2_batch} at a time",
        "events/s",
        "higher",
    ),
    Figure(
        "w2.snapshot_events_per_s",
        2,
        "same, with a snapshot every {w2_snapshot_every} events",
        "events/s",
        "higher",
    ),
    Figure(
        "w2.command_snapshot_events_per_s",
        2,
        "same as commands that load the aggregate first, snapshot every {w2_snapshot_every}",
        "events/s",
        "higher",
        extra=True,
    ),
    Figure(
        "w3.events_per_s",
        3,
        "{w3_aggregates} aggregates x {w3_events_per_aggregate} events, one transaction",
        "events/s",
        "higher",
    ),
    Figure("w4.load_small_ms", 4, "load a {w4_small:,}-event aggregate", "ms", "lower"),
    Figure("w4.load_large_ms", 4, "load a {w4_large:,}-event aggregate", "ms", "lower"),
    Figure(
        "w4.load_small_snapshot_ms", 4, "load {w4_small:,} events, snapshot at last version", "ms", "lower"
    ),
    Figure(
        "w4.load_large_snapshot_ms", 4, "load {w4_large:,} events, snapshot at last version", "ms", "lower"
    ),
    Figure("w5.undecoded_events_per_s", 5, "read {w5_events:,}-event log, undecoded", "events/s", "higher"),
    Figure("w5.decoded_events_per_s", 5, "read {w5_events:,}-event log, decoded", "events/s", "higher"),
    Figure("w5.undecoded_rss_mib", 5, "peak RSS added reading undecoded", "MiB", "lower", compare=False),
    Figure("w5.decoded_rss_mib", 5, "peak RSS added reading decoded", "MiB", "lower", compare=False),
    Figure(
        "w6.events_per_s",
        6,
        "{w6_threads} threads x {w6_per_thread:,} single-event aggregates",
        "events/s",
        "higher",
    ),
    Figure(
        "w7.load_small_store_ms",
        7,
        "load a {w7_aggregate_events}-event aggregate, {w7_small:,}-event store",
        "ms",
        "lower",
    ),
    Figure(
        "w7.load_large_store_ms",
        7,
        "load a {w7_aggregate_events}-event aggregate, {w7_large:,}-event store",
        "ms",
        "lower",
    ),
    Figure("w7.load_ratio", 7, "large-store load time / small-store load time", "x", "lower", compare=False),
    Figure(
        "w7.rss_mib", 7, "peak RSS added reading the {w7_large:,}-event log", "MiB", "lower", compare=False
    ),
)
FIGURE_BY_KEY: Final = {f.key: f for f in FIGURES}


@dataclasses.dataclass(frozen=True)
class Target:
    """A goal from the issue for chronik's figure on one backend.

    ``against`` names the contender for a speed ratio (pass when the ratio is at
    least ``value``); ``None`` makes ``value`` an upper bound on chronik's own figure.
    """

    backend: Backend
    key: str
    against: Literal["eventsourcing", "raw"] | None
    value: float
    note: str = ""

    def met(self, figure: float) -> bool:
        return figure >= self.value if self.against is not None else figure <= self.value

    def describe(self) -> str:
        if self.against is None:
            return f"≤{self.value:g}"
        return f"≥{self.value:g}x" + (f" ({self.note})" if self.note else "")


TARGETS: Final[tuple[Target, ...]] = (
    Target("sqlite", "w1.events_per_s", "raw", 0.85),
    Target("sqlite", "w1.events_per_s", "eventsourcing", 1.5),
    Target("sqlite", "w2.events_per_s", "eventsourcing", 3.0),
    Target("sqlite", "w2.snapshot_events_per_s", "eventsourcing", 3.0),
    Target("sqlite", "w3.events_per_s", "raw", 0.6),
    Target("sqlite", "w3.events_per_s", "eventsourcing", 3.0),
    Target("sqlite", "w4.load_large_ms", "eventsourcing", 6.0),
    Target("sqlite", "w4.load_large_ms", "raw", 0.4, "within 2.5x"),
    Target("sqlite", "w5.decoded_events_per_s", "eventsourcing", 4.0),
    Target("sqlite", "w5.undecoded_events_per_s", "raw", 0.5),
    Target("sqlite", "w6.events_per_s", "eventsourcing", 2.0),
    Target("postgres", "w1.events_per_s", "raw", 0.8),
    Target("postgres", "w1.events_per_s", "eventsourcing", 2.0),
    Target("postgres", "w3.events_per_s", "eventsourcing", 5.0),
    Target("postgres", "w5.decoded_events_per_s", "eventsourcing", 3.0),
    Target("postgres", "w6.events_per_s", "eventsourcing", 3.0),
    Target("sqlite", "w7.load_ratio", None, 1.2),
    Target("sqlite", "w7.rss_mib", None, 50.0),
    Target("postgres", "w7.load_ratio", None, 1.2),
    Target("postgres", "w7.rss_mib", None, 50.0),
)


def speed_ratio(figure: Figure, chronik: float | None, other: float | None) -> float | None:
    """How many times as fast chronik is as ``other`` on ``figure`` (None if undefined)."""
    if not figure.compare or chronik is None or other is None or chronik <= 0 or other <= 0:
        return None
    return chronik / other if figure.better == "higher" else other / chronik
