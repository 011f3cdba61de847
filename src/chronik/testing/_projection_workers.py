"""A projection runner to kill: ``python -m chronik.testing._projection_workers PATH``.

Used by the crash test, which starts it, lets it run for a random while and kills
it with SIGKILL, again and again. Its read model is deliberately not idempotent
(counters incremented per event), and it records each position it applies under a
unique key, so an event applied twice either shows in the counts or fails the
worker outright; only a checkpoint committed with the writes keeps it exact.
"""

from __future__ import annotations

import sys
import time

import chronik
from chronik.events import RecordedEvent
from chronik.projections import Projection, ProjectionRunner
from chronik.store import StoreTransaction

__all__ = ["counter_projection", "main"]


def _setup(tx: StoreTransaction) -> None:
    tx.execute(
        "CREATE TABLE IF NOT EXISTS crash_totals (stream_id TEXT PRIMARY KEY, n INTEGER NOT NULL, "
        "total INTEGER NOT NULL)"
    )
    tx.execute("CREATE TABLE IF NOT EXISTS crash_applied (position INTEGER PRIMARY KEY)")


def _added(event: RecordedEvent, tx: StoreTransaction) -> None:
    tx.execute("INSERT INTO crash_applied (position) VALUES (?)", (event.position,))
    tx.execute(
        "INSERT INTO crash_totals VALUES (?, 1, ?) ON CONFLICT (stream_id) DO UPDATE SET n = n + 1, "
        "total = total + excluded.total",
        (event.stream_id, event.data["amount"]),
    )
    time.sleep(0.0002)  # widen the window in which a kill lands mid-batch


def counter_projection() -> Projection[StoreTransaction]:
    return Projection("crash_totals", {"Added": _added}, setup=_setup)


def main(path: str, batch_size: int) -> None:
    store = chronik.connect(f"sqlite:///{path}")
    runner = ProjectionRunner(store, counter_projection(), batch_size=batch_size, idle_timeout=0.1)
    print("ready", flush=True)
    runner.run()


if __name__ == "__main__":
    main(sys.argv[1], int(sys.argv[2]))
