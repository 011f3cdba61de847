"""The projection part of ``chronik demo``: build a projection, catch up, lag, rebuild.

:func:`projection_demo` narrates on a rich console and returns what it showed, so
the demo's test can check it without reading the console.
"""

from __future__ import annotations

import sqlite3
from typing import Any

from rich.console import Console
from rich.table import Table

from chronik.examples.order_projection import customer_orders, order_projection, order_summary
from chronik.examples.orders import AddItem, CreateOrder, SubmitOrder, order_decider
from chronik.handling import CommandHandler
from chronik.projections import ProjectionRunner, active_version, blue_green
from chronik.store import EventStore, Transactional

__all__ = ["projection_demo"]

_CUSTOMERS = ("ada", "grace", "linus")
_SKUS = (("book", 1250), ("pen", 300), ("lamp", 4200))


def _place_orders(store: EventStore, first: int, count: int) -> None:
    orders = CommandHandler(store, order_decider)
    for n in range(first, first + count):
        stream = f"order-{n:03d}"
        orders.handle(stream, CreateOrder(_CUSTOMERS[n % len(_CUSTOMERS)]))
        sku, price = _SKUS[n % len(_SKUS)]
        orders.handle(stream, AddItem(sku, 1 + n % 3, price))
        orders.handle(stream, SubmitOrder())


def _path(store: EventStore) -> str:
    path = getattr(store, "path", None)
    if not isinstance(path, str):
        raise TypeError(f"the projection demo needs a SQLite store, got {store!r}")
    return path


def projection_demo(store: EventStore, console: Console | None = None, *, orders: int = 60) -> dict[str, Any]:
    """Narrate a projection's life on ``store`` (a SQLite store with the examples' registry).

    Places ``orders`` orders, builds the order projection (v1) batch by batch, shows
    its lag after more orders arrive, catches up, then rebuilds it as v2 beside v1
    and switches (blue/green). Returns the figures it showed.
    """
    console = console or Console()
    if not isinstance(store, Transactional):
        raise TypeError("the projection demo needs a store with transactions (SQLite)")
    shown: dict[str, Any] = {}
    _place_orders(store, 1, orders)
    events = sum(1 for _ in store.read_all())
    console.print(f"1. {orders} orders placed: {events} events in the log.")

    v1 = order_projection(1)
    batches: list[int] = []
    runner = ProjectionRunner(store, v1, batch_size=50, on_progress=lambda r: batches.append(r.handled))
    runner.run_until_caught_up()
    console.print(
        f"2. Projection [bold]{v1.name}[/bold] v{v1.version} caught up in {len(batches)} batches "
        f"({', '.join(map(str, batches))} events handled); checkpoint {runner.checkpoint}."
    )
    shown["catch_up_batches"] = list(batches)

    _place_orders(store, orders + 1, 5)
    lag = runner.lag()
    console.print(
        f"3. Five more orders arrive: the projection is {lag.events} events and {lag.seconds:.3f} s behind."
    )
    shown["lag_events"] = lag.events
    runner.run_until_caught_up()
    lag = runner.lag()
    console.print(f"   After catching up: {lag.events} events behind.")
    shown["lag_after"] = lag.events

    db = sqlite3.connect(_path(store))
    try:
        table = Table(title="orders (v1), read through the 'orders' view")
        for column in ("order", "customer", "status", "total"):
            table.add_column(column)
        for order_id in customer_orders(db, "ada")[:4]:
            row = order_summary(db, order_id)
            assert row is not None
            table.add_row(order_id, row["customer"], row["status"], str(row["total"]))
        console.print(table)
        shown["ada_orders"] = len(customer_orders(db, "ada"))

        v2 = order_projection(2)
        console.print(
            "4. Version 2 also counts items. It builds beside v1 from the start of the log "
            "while v1 keeps serving, then one transaction switches the views to it:"
        )
        new_runner = blue_green(store, v1, v2, batch_size=200)
        active = active_version(store, v2.name)
        first = order_summary(db, "001")
        console.print(f"   active version: v{active}; order 001 now reads {first}")
        shown["active_version"] = active
        shown["order_001"] = first
        shown["v1_table_left"] = db.execute(
            "SELECT count(*) FROM sqlite_master WHERE name = 'orders_v1'"
        ).fetchone()[0]
        shown["handled_by_v2"] = new_runner.handled
    finally:
        db.close()
    return shown
