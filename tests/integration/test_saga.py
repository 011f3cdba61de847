"""The checkout saga as a process manager, on the memory store and on SQLite."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

import chronik
from chronik import RecordedEvent
from chronik.examples import registry
from chronik.examples.orders import AddItem, CreateOrder, SubmitOrder, order_decider
from chronik.examples.saga import WAREHOUSE, AddStock, checkout_saga, warehouse_decider
from chronik.handling import CommandHandler
from chronik.process_managers import ProcessContext, ProcessManager, process_manager_runner
from chronik.projections import FailurePolicy
from chronik.store import EventStore


@pytest.fixture(params=["memory", "sqlite"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[EventStore]:
    url = "memory://" if request.param == "memory" else f"sqlite:///{tmp_path}/shop.db"
    store = chronik.connect(url, registry=registry)
    yield store
    store.close()


def _order(store: EventStore, n: int, customer: str, sku: str, quantity: int, price: int) -> None:
    orders = CommandHandler(store, order_decider)
    meta = {"correlation_id": f"checkout-{n}"}
    orders.handle(f"order-{n}", CreateOrder(customer), metadata=meta)
    orders.handle(f"order-{n}", AddItem(sku, quantity, price), metadata=meta)
    orders.handle(f"order-{n}", SubmitOrder(), metadata=meta)


def _stock(store: EventStore) -> dict[str, int]:
    return dict(warehouse_decider.fold(e.data for e in store.read_stream(WAREHOUSE)).on_hand)


def _by_correlation(store: EventStore, correlation_id: str) -> list[RecordedEvent]:
    return [e for e in store.read_all() if e.metadata.get("correlation_id") == correlation_id]


def test_checkout_confirms_cancels_and_compensates(store: EventStore) -> None:
    stock = CommandHandler(store, warehouse_decider)
    stock.handle(WAREHOUSE, AddStock("book", 10))
    stock.handle(WAREHOUSE, AddStock("pen", 2))
    _order(store, 1, "ada", "book", 2, 1250)  # fine: confirmed
    _order(store, 2, "grace", "lamp", 1, 4200)  # nothing in stock: cancelled
    _order(store, 3, "linus", "book", 1, 600_00)  # over the credit limit: declined, stock given back
    runner = process_manager_runner(store, checkout_saga)
    runner.run_until_caught_up()

    outcome = {s: [e.type for e in store.read_stream(s)] for s in ("checkout-1", "checkout-2", "checkout-3")}
    assert outcome == {
        "checkout-1": ["OrderConfirmed"],
        "checkout-2": ["OrderCancelled"],
        "checkout-3": ["OrderCancelled"],
    }
    assert store.read_stream("checkout-2")[0].data.reason == "out of stock: lamp"
    assert "payment declined" in store.read_stream("checkout-3")[0].data.reason
    assert _stock(store) == {"book": 8, "pen": 2}  # order 3's book was released again
    assert [e.type for e in store.read_stream("payment-3")] == ["PaymentDeclined"]

    # Correlation flows through every step; causation points at the event reacted to.
    chain = _by_correlation(store, "checkout-3")
    assert [e.type for e in chain] == [
        "OrderCreated",
        "OrderItemAdded",
        "OrderSubmitted",
        "StockReserved",
        "PaymentDeclined",
        "StockReleased",
        "OrderCancelled",
    ]
    ids = {str(e.event_id): e.type for e in chain}
    causes = {e.type: ids.get(e.metadata["causation_id"]) for e in chain[3:]}
    assert causes == {
        "StockReserved": "OrderSubmitted",
        "PaymentDeclined": "StockReserved",
        "StockReleased": "PaymentDeclined",
        "OrderCancelled": "PaymentDeclined",
    }

    # Running again changes nothing: every reaction happened exactly once.
    before = [e.event_id for e in store.read_all()]
    assert process_manager_runner(store, checkout_saga).run_until_caught_up() == 0
    assert [e.event_id for e in store.read_all()] == before


def test_a_reaction_that_fails_halfway_is_applied_once(store: EventStore) -> None:
    # The handler appends, then fails on its first try. On SQLite the append rolls
    # back with the transaction; on the memory store it stays, and the retry
    # re-sends the same event ids, which the store writes once.
    store.append("signup-1", [chronik.NewEvent("SignedUp", {"name": "ada"})])
    attempts: list[int] = []

    def welcome(event: RecordedEvent, ctx: ProcessContext) -> None:
        ctx.append("mail-1", [chronik.NewEvent("WelcomeMailQueued", {"to": event.data["name"]})])
        ctx.append("crm-1", [chronik.NewEvent("LeadCreated", {"name": event.data["name"]})])
        attempts.append(1)
        if len(attempts) == 1:
            raise ConnectionError("the CRM hiccuped")

    manager = ProcessManager("welcome", {"SignedUp": welcome})
    runner = process_manager_runner(store, manager, policy=FailurePolicy(retries=2, backoff=0.0))
    runner.run_until_caught_up()
    assert len(attempts) == 2
    assert [e.type for e in store.read_stream("mail-1")] == ["WelcomeMailQueued"]
    assert [e.type for e in store.read_stream("crm-1")] == ["LeadCreated"]
    meta: dict[str, Any] = store.read_stream("mail-1")[0].metadata
    trigger = store.read_stream("signup-1")[0]
    assert meta == {"correlation_id": str(trigger.event_id), "causation_id": str(trigger.event_id)}
