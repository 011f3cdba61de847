"""The order projection: orders by id with totals and status, and a customer → orders index.

A SQL read model in the event store's own SQLite file, kept by a
:class:`~chronik.projections.ProjectionRunner` with its checkpoint in the same
transaction as its writes. Each version has tables of its own (``orders_v2``,
``customer_orders_v2``); queries read the views ``orders`` and
``customer_orders``, which the active version points at. So a new version builds
beside the old one and the switch is one transaction (blue/green).

Version 1 keeps the total; version 2 also counts the items. Handlers are
idempotent by position: each row remembers the position of the last event applied
to it, so a replayed event changes nothing.
"""

from __future__ import annotations

from typing import Any, Protocol

from chronik.events import RecordedEvent
from chronik.examples import registry
from chronik.examples.orders import OrderCreated, OrderItemAdded, OrderSubmitted
from chronik.examples.saga import OrderCancelled, OrderConfirmed
from chronik.projections import EventHandlers, Projection

__all__ = ["LATEST_VERSION", "Executor", "customer_orders", "order_projection", "order_summary"]

LATEST_VERSION = 2
_STATUS = {OrderSubmitted: "submitted", OrderConfirmed: "confirmed", OrderCancelled: "cancelled"}


class Executor(Protocol):
    """Anything that runs SQL: a store transaction, a ``sqlite3.Connection``."""

    def execute(self, statement: str, parameters: Any = ()) -> Any: ...


def order_projection(version: int = LATEST_VERSION) -> Projection[Executor]:
    """The order projection at ``version`` (1 or 2)."""
    if version not in (1, 2):
        raise ValueError(f"the order projection has versions 1 and 2, not {version!r}")
    orders, index = f"orders_v{version}", f"customer_orders_v{version}"
    items_column = ", items INTEGER NOT NULL DEFAULT 0" if version >= 2 else ""
    count_items = ", items = items + ?" if version >= 2 else ""

    def setup(db: Executor) -> None:
        db.execute(
            f"CREATE TABLE IF NOT EXISTS {orders} (order_id TEXT PRIMARY KEY, customer TEXT NOT NULL, "
            f"status TEXT NOT NULL, total INTEGER NOT NULL{items_column}, last_position INTEGER NOT NULL)"
        )
        db.execute(
            f"CREATE TABLE IF NOT EXISTS {index} (customer TEXT NOT NULL, order_id TEXT NOT NULL, "
            "PRIMARY KEY (customer, order_id)) WITHOUT ROWID"
        )

    def teardown(db: Executor) -> None:
        db.execute(f"DROP TABLE IF EXISTS {orders}")
        db.execute(f"DROP TABLE IF EXISTS {index}")

    def activate(db: Executor) -> None:
        # Views are re-pointed in the same transaction that records the switch.
        db.execute("DROP VIEW IF EXISTS orders")
        db.execute(f"CREATE VIEW orders AS SELECT * FROM {orders}")
        db.execute("DROP VIEW IF EXISTS customer_orders")
        db.execute(f"CREATE VIEW customer_orders AS SELECT * FROM {index}")

    # Registered by class, so each handler sees its event's type (``event.data``).
    handlers = EventHandlers[Executor](registry)

    @handlers.on(OrderCreated)
    def created(event: RecordedEvent[OrderCreated], db: Executor) -> None:
        data = event.data
        order_id = event.stream_id.partition("-")[2]
        db.execute(
            f"INSERT OR IGNORE INTO {orders} (order_id, customer, status, total, last_position) "
            "VALUES (?, ?, 'open', 0, ?)",
            (order_id, data.customer, event.position),
        )
        db.execute(f"INSERT OR IGNORE INTO {index} VALUES (?, ?)", (data.customer, order_id))

    @handlers.on(OrderItemAdded)
    def item_added(event: RecordedEvent[OrderItemAdded], db: Executor) -> None:
        data = event.data
        params: tuple[int, ...] = (data.quantity * data.unit_price,)
        if version >= 2:
            params += (data.quantity,)
        db.execute(
            f"UPDATE {orders} SET total = total + ?{count_items}, last_position = ? "
            "WHERE order_id = ? AND last_position < ?",
            (*params, event.position, event.stream_id.partition("-")[2], event.position),
        )

    @handlers.on(OrderSubmitted, OrderConfirmed, OrderCancelled)
    def status(event: RecordedEvent[OrderSubmitted | OrderConfirmed | OrderCancelled], db: Executor) -> None:
        data = event.data
        order_id = (
            data.order_id if not isinstance(data, OrderSubmitted) else event.stream_id.partition("-")[2]
        )
        db.execute(
            f"UPDATE {orders} SET status = ?, last_position = ? WHERE order_id = ? AND last_position < ?",
            (_STATUS[type(data)], event.position, order_id, event.position),
        )

    return Projection(
        "orders",
        handlers,
        version=version,
        setup=setup,
        teardown=teardown,
        activate=activate,
        description="orders by id with totals and status; customer -> orders",
    )


def order_summary(db: Executor, order_id: str) -> dict[str, Any] | None:
    """One order as the active version of the projection has it."""
    cursor = db.execute("SELECT * FROM orders WHERE order_id = ?", (order_id,))
    row = cursor.fetchone()
    if row is None:
        return None
    names = [d[0] for d in cursor.description]
    return {k: v for k, v in zip(names, row, strict=True) if k != "last_position"}


def customer_orders(db: Executor, customer: str) -> list[str]:
    """The ids of a customer's orders, in id order."""
    rows = db.execute(
        "SELECT order_id FROM customer_orders WHERE customer = ? ORDER BY order_id", (customer,)
    )
    return [r[0] for r in rows]
