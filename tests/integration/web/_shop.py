"""A small application for the web tests: orders, a projection that parks negative
totals, and a decider whose state is an order's total."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import msgspec

import chronik
from chronik import Decider
from chronik.cli import App
from chronik.projections import FailurePolicy, Projection

registry = chronik.EventRegistry()


@registry.event("OrderPlaced")
class OrderPlaced(msgspec.Struct, frozen=True):
    customer: str
    total: int


class Order(msgspec.Struct, frozen=True):
    customer: str = ""
    total: int = 0
    placed: int = 0


def evolve(order: Order, event: OrderPlaced) -> Order:
    return Order(event.customer, order.total + event.total, order.placed + 1)


def decide(command: Any, order: Order) -> Iterable[OrderPlaced]:
    return [command]


def setup(tx: Any) -> None:
    tx.execute("CREATE TABLE IF NOT EXISTS spent (customer TEXT PRIMARY KEY, total INTEGER)")


def teardown(tx: Any) -> None:
    tx.execute("DROP TABLE IF EXISTS spent")


def placed(event: chronik.RecordedEvent, tx: Any) -> None:
    if event.data.total < 0:
        raise ValueError("a negative total")
    tx.execute(
        "INSERT INTO spent VALUES (?, ?) ON CONFLICT (customer) DO UPDATE SET total = total + excluded.total",
        (event.data.customer, event.data.total),
    )


order = Decider(decide=decide, evolve=evolve, initial_state=Order(), category="order")
projections = [Projection("spent", {"OrderPlaced": placed}, setup=setup, teardown=teardown)]
policies = {"spent": FailurePolicy(retries=0, on_failure="park")}
models = [order]
app = App(registry=registry, projections=projections, policies=policies, models=models)

TOKEN = "s3cret-token"
AUTH = {"Authorization": f"Bearer {TOKEN}"}
