"""The contenders: chronik, eventsourcing and the raw drivers, behind one Protocol.

Each implements the account aggregate with its own idiom (see ``docs/benchmarks.md``)
and the few operations the workloads need. A contender's module is imported only in
the worker process that runs it, so one library never loads into another's process.
"""

from __future__ import annotations

import dataclasses
import importlib
from collections.abc import Sequence
from typing import Any, Protocol, TypeVar

from benchmarks.databases import Location

__all__ = ["MODULES", "Contender", "Options", "open_contender"]

H = TypeVar("H")

# contender name -> (module, backends it supports)
MODULES: dict[str, dict[str, str]] = {
    "chronik": {
        "sqlite": "benchmarks.contenders.chronik",
        "postgres": "benchmarks.contenders.chronik",
        "nats": "benchmarks.contenders.chronik",
    },
    "chronik-normal": {"sqlite": "benchmarks.contenders.chronik"},
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

    def bulk_build(self, streams: int, events_per_stream: int, chunk: int) -> list[str]:
        """Fill the store fast: ``streams`` accounts of ``events_per_stream`` events. Their ids."""
        ...

    def count_events(self) -> int:
        """How many events the store holds (a check, never timed)."""
        ...

    def info(self) -> dict[str, Any]:
        """Versions and durability settings, as the contender's own connection reports them."""
        ...

    def close(self) -> None: ...


def open_contender(name: str, location: Location, options: Options) -> Contender[Any]:
    """Import the contender's module and open it on ``location``."""
    if location.backend not in MODULES[name]:
        raise RuntimeError(
            MISSING.get((name, location.backend), f"{name} does not run on {location.backend}")
        )
    module = importlib.import_module(MODULES[name][location.backend])
    contender: Contender[Any] = module.open_contender(location, options)
    return contender
