"""The read-side examples: order projection, seat availability, the demo's projection part."""

from __future__ import annotations

import io
import random
import sqlite3
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from rich.console import Console

import chronik
from chronik.examples import registry
from chronik.examples.conference import (
    BookingError,
    CancelReservation,
    ConferenceScheduled,
    ReservationCancelled,
    ReserveSeats,
    ScheduleConference,
    SeatsReserved,
    conference_decider,
)
from chronik.examples.order_projection import Executor, customer_orders, order_projection, order_summary
from chronik.examples.orders import (
    AddItem,
    CreateOrder,
    OrderCreated,
    OrderItemAdded,
    OrderSubmitted,
    SubmitOrder,
)
from chronik.examples.orders import order_decider as orders
from chronik.examples.projection_demo import projection_demo
from chronik.examples.saga import OrderConfirmed
from chronik.examples.seat_availability import seat_availability, seats_available, seats_table
from chronik.handling import CommandHandler
from chronik.projections import ProjectionRunner, active_version
from chronik.stores.sqlite import SQLiteEventStore
from chronik.testing.projections import ProjectionSpec


@pytest.fixture
def store(tmp_path: Path) -> Iterator[SQLiteEventStore]:
    store = chronik.connect(f"sqlite:///{tmp_path}/shop.db", registry=registry)
    assert isinstance(store, SQLiteEventStore)
    yield store
    store.close()


def _read_orders(tx: Executor) -> dict[str, Any]:
    return {r: order_summary(tx, r) for r in ("1", "2")} | {"ada": customer_orders(tx, "ada")}


order_spec = ProjectionSpec(order_projection(2), _read_orders, registry=registry)


def test_order_projection_spec() -> None:
    order_spec.given(
        ("order-1", OrderCreated("ada")),
        ("order-1", OrderItemAdded("book", 2, 1250)),
        ("order-2", OrderCreated("ada")),
        ("order-1", OrderItemAdded("pen", 1, 300)),
        ("order-1", OrderSubmitted(2800)),
        ("checkout-1", OrderConfirmed("1")),
    ).then(
        {
            "1": {"order_id": "1", "customer": "ada", "status": "confirmed", "total": 2800, "items": 3},
            "2": {"order_id": "2", "customer": "ada", "status": "open", "total": 0, "items": 0},
            "ada": ["1", "2"],
        }
    )


def test_seat_availability_spec() -> None:
    ProjectionSpec(seat_availability, seats_table, registry=registry).given(
        ("conference-pycon", ConferenceScheduled("PyCon", 100)),
        ("conference-pycon", SeatsReserved("b1", "ada", 3)),
        ("conference-pycon", SeatsReserved("b2", "grace", 2)),
        ("conference-pycon", ReservationCancelled("b1", 3)),
    ).then({"pycon": (100, 2)})


def test_orders_by_id_and_by_customer_blue_green(store: SQLiteEventStore) -> None:
    handler = CommandHandler(store, orders)
    for n, customer in enumerate(["ada", "grace", "ada"], 1):
        handler.handle(f"order-{n}", CreateOrder(customer))
        handler.handle(f"order-{n}", AddItem("book", n, 1000))
    handler.handle("order-1", SubmitOrder())
    v1, v2 = order_projection(1), order_projection(2)
    ProjectionRunner(store, v1).run_until_caught_up()
    db = sqlite3.connect(store.path)
    try:
        assert order_summary(db, "1") == {
            "order_id": "1",
            "customer": "ada",
            "status": "submitted",
            "total": 1000,
        }
        assert customer_orders(db, "ada") == ["1", "3"]
        handler.handle("order-3", SubmitOrder())
        new = ProjectionRunner(store, v2)
        new.run_until_caught_up()
        # v2 is built but v1 still serves: the view has no items column yet.
        assert active_version(store, "orders") == 1
        assert "items" not in (order_summary(db, "3") or {})
        new.activate(retire=v1)
        assert active_version(store, "orders") == 2
        assert order_summary(db, "3") == {
            "order_id": "3",
            "customer": "ada",
            "status": "submitted",
            "total": 3000,
            "items": 3,
        }
        tables = {r[0] for r in db.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
        assert "orders_v1" not in tables and "orders_v2" in tables
    finally:
        db.close()


def test_seat_availability_matches_the_write_side_under_concurrent_bookings(store: SQLiteEventStore) -> None:
    conferences = {"pycon": 40, "euro": 25}
    handler = CommandHandler(store, conference_decider, retries=50)
    for name, capacity in conferences.items():
        handler.handle(f"conference-{name}", ScheduleConference(name, capacity))
    runner = ProjectionRunner(store, seat_availability).run_in_background()
    refused: list[str] = []
    lock = threading.Lock()

    def book(worker: int) -> None:
        rng = random.Random(worker)
        for k in range(25):
            conference = rng.choice(list(conferences))
            booking = f"w{worker}-{k}"
            try:
                handler.handle(
                    f"conference-{conference}", ReserveSeats(booking, f"a{worker}", rng.randint(1, 3))
                )
                if rng.random() < 0.2:
                    handler.handle(f"conference-{conference}", CancelReservation(booking))
            except BookingError:
                with lock:
                    refused.append(booking)

    threads = [threading.Thread(target=book, args=(i,)) for i in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    try:
        assert runner.wait_for(store.head(), timeout=120)
    finally:
        runner.stop(timeout=60)
    assert runner.error is None
    assert refused, "the conferences were meant to fill up"
    db = sqlite3.connect(store.path)
    try:
        for name, capacity in conferences.items():
            state = handler.load(f"conference-{name}").state
            assert 0 <= state.seats_left <= capacity  # never oversold
            assert seats_available(db, name) == state.seats_left
    finally:
        db.close()


def test_projection_demo(store: SQLiteEventStore) -> None:
    out = io.StringIO()
    shown = projection_demo(store, Console(file=out, width=100), orders=30)
    assert "15 events" in out.getvalue()
    assert shown["lag_events"] == 15
    assert shown["lag_after"] == 0
    assert shown["active_version"] == 2
    assert shown["v1_table_left"] == 0
    assert shown["catch_up_batches"][-1] == 90
    assert shown["order_001"]["items"] == 2
