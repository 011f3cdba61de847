"""A PostgreSQL outage that only this test sees: subscriptions (both faces) and a runner
ride it out, say so meanwhile, and carry on exactly where they were.

The outage is real and harms no one else on the shared server: the test's store
connects as a role of its own; its connection limit is set to 0 and its backends are
terminated, so every read and every new connection fails (SQLSTATE 57P01, then
53300 "too many connections for role") until the limit is lifted, as they would
while a server restarts, without restarting it.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Callable

import psycopg
import pytest
from psycopg import sql

import chronik
from chronik import NewEvent, RecordedEvent
from chronik.projections import FailurePolicy, Projection, ProjectionRunner
from chronik.store import StoreTransaction
from chronik.stores.postgres import PostgresEventStore
from tests.backends._outage import Outage

pytestmark = [pytest.mark.postgres, pytest.mark.slow]

POLICY = FailurePolicy(backoff=0.01, max_backoff=0.2)


def _eventually(check: Callable[[], bool], what: str) -> None:
    deadline = time.monotonic() + 120
    while not check():
        assert time.monotonic() < deadline, f"never happened: {what}"
        time.sleep(0.02)


def test_a_subscription_and_a_runner_ride_out_an_outage_and_say_so(outage: tuple[Outage, str]) -> None:
    switch, url = outage
    store = chronik.connect(url)
    for n in range(5):
        store.append(f"order-{n}", [NewEvent("Placed", {})])

    def placed(event: RecordedEvent, tx: StoreTransaction) -> None:
        tx.execute("INSERT INTO seen VALUES (%s)", (event.position,))

    projection = Projection(
        "seen",
        {"Placed": placed},
        setup=lambda tx: tx.execute("CREATE TABLE seen (position bigint PRIMARY KEY)"),
    )
    runner = ProjectionRunner(store, projection, policy=POLICY)
    runner.run_in_background()
    got: list[int] = []
    subscription = store.subscribe(batch_size=2)
    subscription.backoff = POLICY.pauses

    def read() -> None:
        for event in subscription:
            got.append(event.position)

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    _eventually(lambda: len(got) == 5 and runner.status(lag=False).state == "caught_up", "caught up")
    writer = chronik.connect(url.replace(url.split("@")[0], "postgresql://postgres"))  # not cut off
    switch.begin()
    try:
        for n in range(5, 8):
            writer.append(f"order-{n}", [NewEvent("Placed", {})])
        _eventually(
            lambda: (r := runner.status(lag=False).retrying) is not None and r.attempts >= 2,
            "the runner retrying",
        )
        _eventually(
            lambda: (r := subscription.retrying) is not None and r.attempts >= 2, "the subscription retrying"
        )
        status = runner.status()  # the lag cannot be measured: the store is out of reach
        assert status.state == "retrying" and status.lag is None and status.error is None
        assert status.retrying is not None and status.retrying.error
        assert len(got) == 5
    finally:
        switch.end()
    _eventually(lambda: len(got) == 8, "the subscription carried on")
    assert runner.wait_for(writer.head(), timeout=120), runner.status(lag=False)
    _eventually(lambda: runner.status(lag=False).state == "caught_up", "the runner caught up")
    assert subscription.retrying is None and runner.error is None
    assert got == [e.position for e in writer.read_all()]
    subscription.close()
    reader.join(60)
    runner.stop(timeout=60)
    assert isinstance(writer, PostgresEventStore)
    with psycopg.connect(writer.config.conninfo, autocommit=True) as conn:
        table = sql.Identifier(writer.config.schema, "seen")
        seen = [p for (p,) in conn.execute(sql.SQL("SELECT position FROM {} ORDER BY 1").format(table))]
    assert seen == got
    writer.close()
    store.close()


def test_an_asyncio_subscription_rides_out_an_outage(outage: tuple[Outage, str]) -> None:
    switch, url = outage

    async def main() -> None:
        store = chronik.connect_async(url)
        for n in range(3):
            await store.append(f"order-{n}", [NewEvent("Placed", {})])
        subscription = store.subscribe()
        subscription.backoff = POLICY.pauses
        got = [e.position for e in await subscription.next_batch(0)]
        switch.begin()
        reading = asyncio.ensure_future(subscription.next_batch(None))
        while (r := subscription.retrying) is None or r.attempts < 2:
            await asyncio.sleep(0.02)
        assert not reading.done()
        switch.end()
        writer = chronik.connect(url)
        writer.append("order-9", [NewEvent("Placed", {})])
        got += [e.position for e in await reading]
        assert got == [e.position for e in writer.read_all()]
        assert subscription.retrying is None
        writer.close()
        await subscription.close()
        await store.close()

    asyncio.run(main())
