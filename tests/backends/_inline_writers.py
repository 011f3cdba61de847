"""An inline projection that checks itself, and writers that append under it.

Imported by ``test_postgres_projections.py`` and run as a writer process by it::

    python tests/backends/_inline_writers.py URL TAG BATCHES

The process opens the store at URL, installs :func:`tally` inline, appends BATCHES
batches with :func:`write` and prints what it committed as JSON.

The projection fails (and so fails the append it runs in) on any event it sees out
of step: a position applied twice breaks a primary key, and each stream's events
must arrive in version order with no gap. What it applied is in two tables, so a
test can compare it with the log afterwards.
"""

from __future__ import annotations

import json
import random
import sys
import threading
import time
from dataclasses import dataclass, field

import chronik
from chronik import ANY, ExpectedVersion, NewEvent, RecordedEvent, WrongExpectedVersionError
from chronik.projections import Projection, add_inline_projection
from chronik.store import EventStore, StoreTransaction, Transactional
from chronik.stores.postgres import PostgresEventStore

HOT = "tally-hot"


def tally(schema: str) -> Projection[StoreTransaction]:
    """The self-checking projection, with its tables in ``schema``."""

    def setup(tx: StoreTransaction) -> None:
        tx.execute(
            f"CREATE TABLE IF NOT EXISTS {schema}.tally_applied "
            "(position bigint PRIMARY KEY, stream_id text NOT NULL, version bigint NOT NULL)"
        )
        tx.execute(
            f"CREATE TABLE IF NOT EXISTS {schema}.tally_streams "
            "(stream_id text PRIMARY KEY, version bigint NOT NULL)"
        )

    def added(event: RecordedEvent, tx: StoreTransaction) -> None:
        tx.execute(
            f"INSERT INTO {schema}.tally_applied VALUES (%s, %s, %s)",
            (event.position, event.stream_id, event.version),
        )
        row = tx.execute(
            f"SELECT version FROM {schema}.tally_streams WHERE stream_id = %s", (event.stream_id,)
        ).fetchone()
        last = 0 if row is None else row[0]
        if event.version != last + 1:
            raise AssertionError(f"{event.stream_id}: version {event.version} handled after {last}")
        tx.execute(
            f"INSERT INTO {schema}.tally_streams VALUES (%s, %s) "
            "ON CONFLICT (stream_id) DO UPDATE SET version = excluded.version",
            (event.stream_id, event.version),
        )

    return Projection("tally", {"Added": added}, setup=setup)


@dataclass
class Outcome:
    """What one writer did: the ids it committed, and any error it met."""

    committed: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)


def write(
    store: EventStore,
    tag: str,
    *,
    batches: int,
    until: threading.Event | None = None,
    most: int = 0,
    linger: float = 0.0,
) -> Outcome:
    """Append ``batches`` batches of 1-3 events (or, given ``until``, go on until it is set,
    up to ``most``): about a third to the shared hot stream with exact expected versions,
    the rest to the writer's own stream.

    With ``linger``, each append runs in a transaction that stays open up to that many
    seconds after appending: a slow writer, whose events commit late."""
    rng = random.Random(tag)

    def append(stream_id: str, batch: list[NewEvent], expected: ExpectedVersion) -> None:
        if not linger:
            store.append(stream_id, batch, expected)
            return
        assert isinstance(store, Transactional)
        with store.transaction() as tx:
            tx.append(stream_id, batch, expected)
            time.sleep(rng.uniform(0, linger))

    outcome = Outcome()
    k = 0
    while k < batches or (until is not None and not until.is_set() and k < most):
        k += 1
        batch = [
            NewEvent("Added", {"writer": tag, "k": k}, event_id=chronik.uuid7())
            for _ in range(rng.randint(1, 3))
        ]
        try:
            if rng.random() < 0.3:
                while True:
                    version = store.stream_info(HOT).version
                    try:
                        append(HOT, batch, version)
                        break
                    except WrongExpectedVersionError:
                        continue
            else:
                append(f"tally-{tag}", batch, ANY)
        except Exception as err:
            outcome.errors.append(f"{type(err).__name__}: {err}")
            continue
        outcome.committed.extend(str(e.event_id) for e in batch)
    return outcome


def main(url: str, tag: str, batches: int) -> None:
    store = chronik.connect(url)
    try:
        assert isinstance(store, PostgresEventStore)
        add_inline_projection(store, tally(store.schema))
        outcome = write(store, tag, batches=batches)
    finally:
        store.close()
    print(json.dumps({"committed": outcome.committed, "errors": outcome.errors}))


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2], int(sys.argv[3]))
