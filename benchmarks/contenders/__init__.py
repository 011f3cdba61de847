"""The contenders: chronik, eventsourcing and the raw drivers, behind one Protocol.

Each implements the account aggregate with its own idiom (see ``docs/benchmarks.md``)
and the few operations the workloads need. A contender's module is imported only in
the worker process that runs it, so one library never loads into another's process.
"""

from __future__ import annotations

import dataclasses
import importlib
from collections.abc import Callable, Sequence
from typing import Any, Protocol, TypeVar

from benchmarks.databases import Location
from benchmarks.domain import CATEGORY

__all__ = [
    "MODULES",
    "NOT_APPLICABLE",
    "NOT_APPLICABLE_JOBS",
    "Contender",
    "Options",
    "category_name",
    "open_contender",
]

H = TypeVar("H")

# contender name -> (module, backends it supports)
MODULES: dict[str, dict[str, str]] = {
    "chronik": {
        "sqlite": "benchmarks.contenders.chronik",
        "postgres": "benchmarks.contenders.chronik",
        "nats": "benchmarks.contenders.chronik",
    },
    "chronik-normal": {"sqlite": "benchmarks.contenders.chronik"},
    "eventsourcing-fast": {
        "sqlite": "benchmarks.contenders.eventsourcing",
        "postgres": "benchmarks.contenders.eventsourcing",
    },
    "eventsourcing": {
        "sqlite": "benchmarks.contenders.eventsourcing",
        "postgres": "benchmarks.contenders.eventsourcing",
    },
    "raw": {
        "sqlite": "benchmarks.contenders.raw_sqlite",
        "postgres": "benchmarks.contenders.raw_postgres",
        "nats": "benchmarks.contenders.raw_nats",
    },
}
# Why a contender has no module for a backend (shown in the table's notes).
MISSING: dict[tuple[str, str], str] = {
    ("eventsourcing", "nats"): "eventsourcing has no NATS store",
}
# Workloads a contender has nothing for on a backend: (contender, backend, workload)
# -> why. Their cells say n/a, and the reason is printed under the table.
NOT_APPLICABLE: dict[tuple[str, str, str], str] = {
    ("eventsourcing", "sqlite", "d"): "eventsourcing's SQLite recorder has no subscriptions",
    ("eventsourcing", "sqlite", "e"): "eventsourcing's projection runner needs a subscription, "
    "which its SQLite recorder does not have",
    ("eventsourcing", "sqlite", "i"): "eventsourcing has no asyncio API",
    ("eventsourcing", "postgres", "i"): "eventsourcing has no asyncio API",
}
# Jobs of a workload that a contender cannot finish: (contender, backend, job) -> why.
NOT_APPLICABLE_JOBS: dict[tuple[str, str, str], str] = {
    ("eventsourcing", "postgres", "h-write"): "eventsourcing.postgres stalls saving one aggregate's "
    "100,000 new events (its one pipelined executemany never finished above about 30,000 rows here)",
}


@dataclasses.dataclass(frozen=True)
class Options:
    """How a contender is opened for one job."""

    # Look for a snapshot when loading (and allow taking one).
    snapshots: bool = False
    # Save a snapshot whenever a save crosses a multiple of this version.
    snapshot_every: int | None = None
    # SQLite synchronous mode for chronik ("FULL" everywhere unless labelled).
    synchronous: str = "FULL"
    # eventsourcing only: persist through chronik.compat.eventsourcing (issue 20)
    # instead of the library's own module for the backend.
    on_chronik: bool = False
    # eventsourcing only: its fastest documented settings (issue 19).
    fast: bool = False
    # How many writers (threads, or processes on one SQLite file) share the store:
    # connection pools are sized for them, and raw SQLite takes the write lock up
    # front (BEGIN IMMEDIATE) when other processes write the same file.
    writers: int = 1
    processes: bool = False
    # raw only: wake subscribers of the log (workload d), as chronik always does.
    notify: bool = False


class Contender(Protocol[H]):
    """What a workload may ask of a contender. ``H`` is an aggregate the application holds."""

    #: Whether readers of the global log may see a commit later than it happened
    #: (chronik on PostgreSQL: see ``workloads._wait_until_readable``).
    log_lags_commits: bool

    def open_account(self) -> str:
        """One command that creates a new account (its ``Opened`` event), in its own transaction."""
        ...

    def deposit_command(self, account_id: str, amounts: Sequence[int]) -> None:
        """One command on a stored account: load it, deposit each amount, save (one transaction)."""
        ...

    def create(self) -> H:
        """A new account aggregate held in memory, its ``Opened`` event pending (not saved)."""
        ...

    def deposit(self, account: H, amount: int) -> None:
        """Record a pending ``Deposited(amount, MEMO)`` on a held aggregate."""
        ...

    def save(self, accounts: Sequence[H]) -> None:
        """Store every pending event of the held ``accounts`` in one transaction."""
        ...

    def account_id(self, account: H) -> str: ...

    def load(self, account_id: str) -> int:
        """Load the account from the store (from its snapshot when there is one): its version."""
        ...

    def take_snapshot(self, account_id: str) -> None:
        """Snapshot the stored aggregate at its last version."""
        ...

    def read_log(self, *, decode: bool, page_size: int) -> int:
        """Read the whole global log in pages; decode each event when asked. The count."""
        ...

    def bulk_build(self, streams: int, events_per_stream: int, chunk: int, categories: int = 1) -> list[str]:
        """Fill the store fast: ``streams`` accounts of ``events_per_stream`` events. Their ids.

        With ``categories`` above 1 the streams are spread over that many categories
        in turn (``category_name(i)``), the first being the accounts'."""
        ...

    def count_events(self) -> int:
        """How many events the store holds (a check, never timed)."""
        ...

    def audit_log(self) -> tuple[int, int]:
        """(events in the global log, distinct streams among them): a check, never timed."""
        ...

    def hot_command(self, account_id: str, amount: int) -> int:
        """One deposit on a stream other writers race for, decided again on each
        conflict until it commits: how many attempts it took."""
        ...

    def follow(self, on_deposit: Callable[[int], None]) -> Callable[[], None]:
        """Follow the global log live from its head, on a thread of its own, calling
        ``on_deposit(amount)`` for each ``Deposited``; the function that stops it."""
        ...

    def project(self) -> int:
        """Run the balances projection (a SQL read model in the store's database, its
        checkpoint in the same transactions) until it has caught up: events handled."""
        ...

    def balances(self) -> tuple[int, int]:
        """(accounts, sum of balances) in the read model ``project`` keeps: a check."""
        ...

    def read_category(self, category: str, *, page_size: int) -> int:
        """Read the events of one category from the global log, decoded: the count."""
        ...

    def run_async(self, job: str, count: int, tasks: int, account_ids: Sequence[str]) -> float:
        """Through the contender's asyncio API: ``count`` single-event commands
        (``job="start"``) or deposit commands on ``account_ids`` round robin
        (``"handle"``), by ``tasks`` concurrent tasks. The seconds they took."""
        ...

    def info(self) -> dict[str, Any]:
        """Versions and durability settings, as the contender's own connection reports them."""
        ...

    def close(self) -> None: ...


def category_name(index: int) -> str:
    """The ``index``-th category of a store built with several (0: the accounts')."""
    return CATEGORY if index == 0 else f"ledger{index}"


def open_contender(name: str, location: Location, options: Options) -> Contender[Any]:
    """Import the contender's module and open it on ``location``."""
    if location.backend not in MODULES[name]:
        raise RuntimeError(
            MISSING.get((name, location.backend), f"{name} does not run on {location.backend}")
        )
    module = importlib.import_module(MODULES[name][location.backend])
    contender: Contender[Any] = module.open_contender(location, options)
    return contender
