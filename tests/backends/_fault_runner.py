"""A projection runner in a process of its own, for the fault tests to SIGKILL.

    python -m tests.backends._fault_runner URL follow|catch-up

It keeps ``killed_seen`` (one row per ``order`` event, the position as primary key,
so a double would fail) in the store's schema, committed with its checkpoint.
``follow`` runs until killed and prints ``running`` once it has started;
``catch-up`` runs to the head and prints how many events it handled.
"""

from __future__ import annotations

import sys

import chronik
from chronik import RecordedEvent
from chronik.projections import FailurePolicy, Projection, ProjectionRunner
from chronik.store import StoreTransaction

POLICY = FailurePolicy(backoff=0.01, max_backoff=0.5)


def projection() -> Projection[StoreTransaction]:
    def placed(event: RecordedEvent, tx: StoreTransaction) -> None:
        tx.execute("INSERT INTO killed_seen VALUES (%s, %s)", (event.position, event.stream_id))

    def setup(tx: StoreTransaction) -> None:
        tx.execute("CREATE TABLE killed_seen (position bigint PRIMARY KEY, stream_id text NOT NULL)")

    return Projection("killed", {"Placed": placed}, setup=setup, categories=("order",))


def main(url: str, mode: str) -> None:
    store = chronik.connect(url)
    runner = ProjectionRunner(store, projection(), policy=POLICY, batch_size=20, warn_unknown_types=False)
    if mode == "catch-up":
        print(runner.run_until_caught_up(), flush=True)
        store.close()
        return
    print("running", flush=True)
    runner.run()


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
