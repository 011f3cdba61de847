"""What is measured: sizes, figures and the targets of issues 6 and 19. No I/O here.

Workloads are named by strings: ``"1"`` to ``"7"`` are issue 6's, ``"a"`` to ``"i"``
issue 19's (what users run: commands on existing aggregates, writers in several
processes, many writers, subscriber latency, projections, filtered reads, a hot
stream, peak memory, the asyncio API), in the order the tables show them.

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
    "FAST",
    "FIGURES",
    "FULL",
    "QUICK",
    "TARGETS",
    "VARIANTS",
    "WORKLOADS",
    "Figure",
    "Sizes",
    "Target",
    "Variant",
    "sizes_for",
    "speed_ratio",
]

Backend = Literal["sqlite", "postgres", "nats"]
BACKENDS: Final[tuple[Backend, ...]] = ("sqlite", "postgres", "nats")
# The columns of the table, in order.
CONTENDERS: Final = ("chronik", "eventsourcing", "raw")

WORKLOADS: Final[dict[str, str]] = {
    "1": "single-event commands, a new aggregate each, one transaction each",
    "2": "one aggregate, events saved 10 at a time (and with snapshots)",
    "3": "aggregates x events saved in one call, one transaction",
    "4": "load an aggregate, without and with a snapshot at its last version",
    "5": "read the whole global log in pages, undecoded and decoded",
    "6": "threads writing new single-event aggregates to one shared store",
    "7": "scaling: load a small aggregate from a small and a large store; RSS reading the large log",
    "a": "commands on existing small aggregates: load, decide, append",
    "b": "writers in several processes on one SQLite file",
    "c": "many concurrent writers on PostgreSQL",
    "d": "latency from an append to a subscriber's handler, in the same process and across processes",
    "e": "a projection into a SQL read model with durable checkpoints, end to end",
    "f": "a filtered read of the global log: one category among many",
    "g": "conflicting commands on one hot stream",
    "h": "peak memory loading a large aggregate and writing a large batch",
    "i": "the asyncio API: commands with AsyncCommandHandler",
}
# The workloads each backend runs. NATS (chronik on JetStream against raw nats-py; no
# NATS store in eventsourcing) runs the writes and the log read of issue 13.
BACKEND_WORKLOADS: Final[dict[str, tuple[str, ...]]] = {
    "sqlite": ("1", "2", "3", "4", "5", "6", "7", "a", "b", "d", "e", "f", "g", "h", "i"),
    "postgres": ("1", "2", "3", "4", "5", "6", "7", "a", "c", "d", "e", "f", "g", "h", "i"),
    "nats": ("1", "2", "3", "5", "6"),
}


@dataclasses.dataclass(frozen=True)
class Variant:
    """A labelled row: a contender's own module run with one option changed.

    Its figure stands in ``column``; ``against`` says what its ratio compares:
    ``"chronik"`` (chronik's speed over the variant, as for the column's contender)
    or ``"own"`` (the variant's speed over the column's contender).
    """

    name: str
    contender: str
    column: str
    label: str
    options: tuple[tuple[str, object], ...]
    backends: tuple[Backend, ...]
    workloads: tuple[str, ...]
    jobs: tuple[str, ...] | None = None  # None: every job of those workloads
    against: Literal["chronik", "own"] = "chronik"


# chronik on SQLite with synchronous=NORMAL: faster, may lose the last commits on
# power loss; shown for information, never counted against a target.
NORMAL: Final = "chronik-normal"
# The eventsourcing contender's application code with PERSISTENCE_MODULE=
# chronik.compat.eventsourcing (issue 20), on PostgreSQL, for the write workloads.
ON_CHRONIK: Final = "eventsourcing-on-chronik"
# eventsourcing on its fastest documented settings (issue 19): the orjson transcoder
# of its documentation's examples and, on PostgreSQL, POSTGRES_ENABLE_DB_FUNCTIONS.
FAST: Final = "eventsourcing-fast"
VARIANTS: Final[dict[str, Variant]] = {
    NORMAL: Variant(
        NORMAL,
        "chronik",
        "chronik",
        "chronik at synchronous=NORMAL",
        (("synchronous", "NORMAL"),),
        ("sqlite",),
        ("1", "2", "6"),
        jobs=("w1", "w2", "w6"),
    ),
    FAST: Variant(
        FAST,
        "eventsourcing",
        "eventsourcing",
        "eventsourcing on its fastest settings",
        (("fast", True),),
        ("sqlite", "postgres"),
        ("1", "2", "3", "4", "5", "6", "a"),
        jobs=("w1", "w2", "w2s", "w3", "w4", "w5", "w6", "a"),
    ),
    ON_CHRONIK: Variant(
        ON_CHRONIK,
        "eventsourcing",
        "eventsourcing",
        "eventsourcing on chronik's PostgreSQL store",
        (("on_chronik", True),),
        ("postgres",),
        ("1", "2"),
        against="own",
    ),
}
VARIANT_COLUMN: Final[dict[str, str]] = {v.name: v.column for v in VARIANTS.values()}


@dataclasses.dataclass(frozen=True)
class Sizes:
    """Every count the workloads use; ``FULL`` is the issues', ``QUICK`` runs in seconds."""

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
    # issue 19
    a_accounts: int = 500
    a_events: int = 10  # events of each existing aggregate
    a_commands: int = 2_000
    b_processes: int = 4
    b_per_process: int = 500
    c_writers_small: int = 16
    c_writers_large: int = 64
    c_per_writer: int = 100
    d_events: int = 200
    d_interval_ms: float = 4.0
    e_events: int = 20_000
    e_events_per_stream: int = 50
    f_categories: int = 10  # the log of workload 5, its streams spread over this many categories
    g_threads: int = 4
    g_commands: int = 100  # per thread
    h_events: int = 100_000
    i_commands: int = 1_000
    i_tasks: int = 8

    def scaled(self, factor: float) -> Sizes:
        """Every event count times ``factor`` (batch, page, thread and process counts kept)."""

        def s(n: int, minimum: int = 1) -> int:
            return max(minimum, round(n * factor))

        return dataclasses.replace(
            self,
            w1_commands=s(self.w1_commands, 10),
            w2_events=s(self.w2_events, self.w2_batch * 2),
            w3_aggregates=s(self.w3_aggregates, 2),
            w4_small=s(self.w4_small, 10),
            w4_large=s(self.w4_large, 20),
            w5_events=s(self.w5_events, self.w5_events_per_stream * self.f_categories),
            w6_per_thread=s(self.w6_per_thread, 5),
            w7_small=s(self.w7_small, self.w7_aggregate_events),
            w7_large=s(self.w7_large, self.w7_aggregate_events * 2),
            a_commands=s(self.a_commands, 10),
            b_per_process=s(self.b_per_process, 5),
            c_per_writer=s(self.c_per_writer, 5),
            d_events=s(self.d_events, 10),
            e_events=s(self.e_events, self.e_events_per_stream),
            g_commands=s(self.g_commands, 5),
            h_events=s(self.h_events, 100),
            i_commands=s(self.i_commands, 10),
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
    a_accounts=20,
    a_events=5,
    a_commands=40,
    b_processes=2,
    b_per_process=10,
    # The smoke test never opens 64 connections on the shared server.
    c_writers_small=4,
    c_writers_large=8,
    c_per_writer=5,
    d_events=20,
    d_interval_ms=2.0,
    e_events=1_000,
    e_events_per_stream=20,
    f_categories=5,
    g_threads=2,
    g_commands=10,
    h_events=2_000,
    i_commands=20,
    i_tasks=4,
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
    workload: str
    label: str  # formatted with the Sizes' fields
    unit: str
    better: Better
    compare: bool = True  # whether chronik/eventsourcing and chronik/raw make sense
    extra: bool = False  # beyond the figures: measured only with --extras

    def title(self, sizes: Sizes) -> str:
        return f"{self.workload}. " + self.label.format(**dataclasses.asdict(sizes))


def _f(key: str, label: str, unit: str, better: Better, **kw: bool) -> Figure:
    return Figure(key, key.split(".", 1)[0].removeprefix("w"), label, unit, better, **kw)


FIGURES: Final[tuple[Figure, ...]] = (
    _f("w1.events_per_s", "{w1_commands:,} single-event commands", "events/s", "higher"),
    _f("w1.p50_ms", "single-event command latency p50", "ms", "lower"),
    _f("w1.p99_ms", "single-event command latency p99", "ms", "lower"),
    _f(
        "w2.events_per_s",
        "1 aggregate, {w2_events:,} events saved {w2_batch} at a time",
        "events/s",
        "higher",
    ),
    _f(
        "w2.snapshot_events_per_s",
        "same, with a snapshot every {w2_snapshot_every} events",
        "events/s",
        "higher",
    ),
    _f(
        "w2.command_snapshot_events_per_s",
        "same as commands that load the aggregate first, snapshot every {w2_snapshot_every}",
        "events/s",
        "higher",
        extra=True,
    ),
    _f(
        "w3.events_per_s",
        "{w3_aggregates} aggregates x {w3_events_per_aggregate} events, one transaction",
        "events/s",
        "higher",
    ),
    _f("w4.load_small_ms", "load a {w4_small:,}-event aggregate", "ms", "lower"),
    _f("w4.load_large_ms", "load a {w4_large:,}-event aggregate", "ms", "lower"),
    _f("w4.load_small_snapshot_ms", "load {w4_small:,} events, snapshot at last version", "ms", "lower"),
    _f("w4.load_large_snapshot_ms", "load {w4_large:,} events, snapshot at last version", "ms", "lower"),
    _f("w5.undecoded_events_per_s", "read {w5_events:,}-event log, undecoded", "events/s", "higher"),
    _f("w5.decoded_events_per_s", "read {w5_events:,}-event log, decoded", "events/s", "higher"),
    _f("w5.undecoded_rss_mib", "peak RSS added reading undecoded", "MiB", "lower", compare=False),
    _f("w5.decoded_rss_mib", "peak RSS added reading decoded", "MiB", "lower", compare=False),
    _f(
        "w6.events_per_s",
        "{w6_threads} threads x {w6_per_thread:,} single-event aggregates",
        "events/s",
        "higher",
    ),
    _f(
        "w7.load_small_store_ms",
        "load a {w7_aggregate_events}-event aggregate, {w7_small:,}-event store",
        "ms",
        "lower",
    ),
    _f(
        "w7.load_large_store_ms",
        "load a {w7_aggregate_events}-event aggregate, {w7_large:,}-event store",
        "ms",
        "lower",
    ),
    _f("w7.load_ratio", "large-store load time / small-store load time", "x", "lower", compare=False),
    _f("w7.rss_mib", "peak RSS added reading the {w7_large:,}-event log", "MiB", "lower", compare=False),
    # -- issue 19 ----------------------------------------------------------------------
    _f(
        "a.commands_per_s",
        "{a_commands:,} commands on {a_accounts} existing {a_events}-event aggregates",
        "commands/s",
        "higher",
    ),
    _f("a.p50_ms", "command on an existing aggregate, latency p50", "ms", "lower"),
    _f("a.p99_ms", "command on an existing aggregate, latency p99", "ms", "lower"),
    _f(
        "b.events_per_s",
        "{b_processes} processes x {b_per_process:,} single-event commands, one file",
        "events/s",
        "higher",
    ),
    _f(
        "c.small_events_per_s",
        "{c_writers_small} writers x {c_per_writer} single-event commands",
        "events/s",
        "higher",
    ),
    _f(
        "c.large_events_per_s",
        "{c_writers_large} writers x {c_per_writer} single-event commands",
        "events/s",
        "higher",
    ),
    _f("d.local_p50_ms", "append to handler, same process, p50 ({d_events} events)", "ms", "lower"),
    _f("d.local_p99_ms", "append to handler, same process, p99", "ms", "lower"),
    _f("d.remote_p50_ms", "append to handler, writer in another process, p50", "ms", "lower"),
    _f("d.remote_p99_ms", "append to handler, writer in another process, p99", "ms", "lower"),
    _f(
        "e.events_per_s",
        "project a {e_events:,}-event log into a SQL read model, durable checkpoints",
        "events/s",
        "higher",
    ),
    _f(
        "f.decoded_events_per_s",
        "read 1 category of {f_categories} from the {w5_events:,}-event log, decoded",
        "events/s",
        "higher",
    ),
    _f(
        "g.commands_per_s",
        "{g_threads} threads x {g_commands} commands on one hot stream",
        "commands/s",
        "higher",
    ),
    _f("g.conflicts_per_command", "conflicts retried per command", "x", "lower", compare=False),
    _f(
        "h.load_rss_mib",
        "peak RSS added loading a {h_events:,}-event aggregate",
        "MiB",
        "lower",
        compare=False,
    ),
    _f("h.load_rss_x", "the same over the payloads' size", "x", "lower", compare=False),
    _f(
        "h.write_rss_mib",
        "peak RSS added writing {h_events:,} events in one append",
        "MiB",
        "lower",
        compare=False,
    ),
    _f("h.write_rss_x", "the same over the payloads' size", "x", "lower", compare=False),
    _f("i.events_per_s", "{i_commands:,} single-event commands, asyncio", "events/s", "higher"),
    _f(
        "i.commands_per_s",
        "{i_commands:,} commands on existing aggregates, {i_tasks} tasks, asyncio",
        "commands/s",
        "higher",
    ),
)
FIGURE_BY_KEY: Final = {f.key: f for f in FIGURES}


@dataclasses.dataclass(frozen=True)
class Target:
    """A goal from the issues for chronik's figure on one backend.

    ``against`` names the contender for a speed ratio (pass when the ratio is at
    least ``value``); ``None`` makes ``value`` a bound on chronik's own figure: an
    upper bound for a figure where lower is better, a lower bound otherwise.
    """

    backend: Backend
    key: str
    against: Literal["eventsourcing", "raw"] | None
    value: float
    note: str = ""

    def met(self, figure: float) -> bool:
        if self.against is not None or FIGURE_BY_KEY[self.key].better == "higher":
            return figure >= self.value
        return figure <= self.value

    def describe(self) -> str:
        if self.against is None:
            bound = "≥" if FIGURE_BY_KEY[self.key].better == "higher" else "≤"
            return f"{bound}{self.value:,g}"
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
    # issue 19
    Target("sqlite", "a.commands_per_s", "raw", 0.77, "within 1.3x"),
    Target("postgres", "a.commands_per_s", "raw", 0.77, "within 1.3x"),
    Target("postgres", "c.small_events_per_s", "raw", 0.7),
    Target("sqlite", "d.local_p99_ms", None, 5.0),
    Target("sqlite", "d.remote_p99_ms", None, 50.0),
    Target("postgres", "d.local_p99_ms", None, 5.0),
    Target("postgres", "d.remote_p99_ms", None, 50.0),
    Target("sqlite", "e.events_per_s", None, 50_000.0),
    Target("sqlite", "h.load_rss_x", None, 2.0),
    Target("sqlite", "h.write_rss_x", None, 2.0),
    Target("postgres", "h.load_rss_x", None, 2.0),
    Target("postgres", "h.write_rss_x", None, 2.0),
)


def speed_ratio(figure: Figure, chronik: float | None, other: float | None) -> float | None:
    """How many times as fast chronik is as ``other`` on ``figure`` (None if undefined)."""
    if not figure.compare or chronik is None or other is None or chronik <= 0 or other <= 0:
        return None
    return chronik / other if figure.better == "higher" else other / chronik
