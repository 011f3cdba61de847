"""The checkout saga: order submitted → reserve stock → charge payment → confirm.

A process manager reacts to the events of three models and decides the next step
on the next one, with a compensating action when a step fails:

- ``OrderSubmitted`` (an :mod:`~chronik.examples.orders` stream) → reserve the
  order's items in the warehouse (``stock-warehouse``);
- ``StockReserved`` → charge the customer (``payment-<order id>``);
- ``PaymentCharged`` → confirm the order (``checkout-<order id>``);
- ``PaymentDeclined`` → release the stock (the compensation) and cancel;
- ``StockReservationRejected`` → cancel.

Every step runs in the process manager's transaction on SQL stores, together with
its checkpoint, and carries the order's correlation id, so the whole checkout of
one order can be read back by that id. Steps are commands on deciders
(``context.execute``), which also makes them safe to deliver twice: a command finds
the events it appended the first time and appends nothing more. Payments over :data:`CREDIT_LIMIT` are
declined, which is how the tests exercise the compensation.
"""

from __future__ import annotations

from typing import assert_never

import msgspec

from chronik.decider import Decider
from chronik.events import RecordedEvent
from chronik.examples import registry
from chronik.examples.orders import OrderSubmitted, order_decider
from chronik.process_managers import ProcessContext, ProcessManager
from chronik.projections import EventHandlers

__all__ = [
    "CREDIT_LIMIT",
    "WAREHOUSE",
    "AddStock",
    "ChargePayment",
    "OrderCancelled",
    "OrderConfirmed",
    "PaymentCharged",
    "PaymentDeclined",
    "ReleaseStock",
    "ReserveStock",
    "StockAdded",
    "StockReleased",
    "StockReservationRejected",
    "StockReserved",
    "checkout_saga",
    "payment_decider",
    "warehouse_decider",
]

WAREHOUSE = "stock-warehouse"
CREDIT_LIMIT = 500_00  # cents: larger payments are declined


# -- the warehouse: one stream, the consistency boundary for stock ---------------------


@registry.event("StockAdded")
class StockAdded(msgspec.Struct, frozen=True):
    sku: str
    quantity: int


@registry.event("StockReserved")
class StockReserved(msgspec.Struct, frozen=True):
    order_id: str
    items: dict[str, int]


@registry.event("StockReservationRejected")
class StockReservationRejected(msgspec.Struct, frozen=True):
    order_id: str
    reason: str


@registry.event("StockReleased")
class StockReleased(msgspec.Struct, frozen=True):
    order_id: str
    items: dict[str, int]


class AddStock(msgspec.Struct, frozen=True):
    sku: str
    quantity: int


class ReserveStock(msgspec.Struct, frozen=True):
    order_id: str
    items: dict[str, int]


class ReleaseStock(msgspec.Struct, frozen=True):
    order_id: str


class Warehouse(msgspec.Struct, frozen=True):
    on_hand: dict[str, int] = {}  # sku -> units not reserved
    reserved: dict[str, dict[str, int]] = {}  # order id -> sku -> units
    rejected: frozenset[str] = frozenset()


WarehouseEvent = StockAdded | StockReserved | StockReservationRejected | StockReleased
WarehouseCommand = AddStock | ReserveStock | ReleaseStock


def _decide_stock(command: WarehouseCommand, w: Warehouse) -> list[WarehouseEvent]:
    match command:
        case AddStock():
            return [StockAdded(command.sku, command.quantity)]
        case ReserveStock():
            if command.order_id in w.reserved or command.order_id in w.rejected:
                return []  # decided already for this order
            short = sorted(s for s, n in command.items.items() if w.on_hand.get(s, 0) < n)
            if short:
                return [StockReservationRejected(command.order_id, f"out of stock: {', '.join(short)}")]
            return [StockReserved(command.order_id, dict(command.items))]
        case ReleaseStock():
            items = w.reserved.get(command.order_id)
            return [] if items is None else [StockReleased(command.order_id, items)]
    assert_never(command)


def _evolve_stock(w: Warehouse, event: WarehouseEvent) -> Warehouse:
    match event:
        case StockAdded():
            on_hand = {**w.on_hand, event.sku: w.on_hand.get(event.sku, 0) + event.quantity}
            return msgspec.structs.replace(w, on_hand=on_hand)
        case StockReserved():
            on_hand = {s: n - event.items.get(s, 0) for s, n in w.on_hand.items()}
            return Warehouse(on_hand, {**w.reserved, event.order_id: event.items}, w.rejected)
        case StockReservationRejected():
            return msgspec.structs.replace(w, rejected=w.rejected | {event.order_id})
        case StockReleased():
            on_hand = {s: n + event.items.get(s, 0) for s, n in w.on_hand.items()}
            reserved = {o: i for o, i in w.reserved.items() if o != event.order_id}
            return Warehouse(on_hand, reserved, w.rejected)
    assert_never(event)


warehouse_decider = Decider(
    decide=_decide_stock, evolve=_evolve_stock, initial_state=Warehouse(), category="stock"
)


# -- payments: one stream per order ------------------------------------------------------


@registry.event("PaymentCharged")
class PaymentCharged(msgspec.Struct, frozen=True):
    order_id: str
    customer: str
    amount: int


@registry.event("PaymentDeclined")
class PaymentDeclined(msgspec.Struct, frozen=True):
    order_id: str
    customer: str
    amount: int
    reason: str


class ChargePayment(msgspec.Struct, frozen=True):
    order_id: str
    customer: str
    amount: int


PaymentEvent = PaymentCharged | PaymentDeclined


def _decide_payment(command: ChargePayment, settled: bool) -> list[PaymentEvent]:
    if settled:
        return []
    if command.amount > CREDIT_LIMIT:
        reason = f"{command.amount} is over the credit limit of {CREDIT_LIMIT}"
        return [PaymentDeclined(command.order_id, command.customer, command.amount, reason)]
    return [PaymentCharged(command.order_id, command.customer, command.amount)]


def _evolve_payment(settled: bool, event: PaymentEvent) -> bool:
    return True


payment_decider = Decider(
    decide=_decide_payment, evolve=_evolve_payment, initial_state=False, category="payment"
)


# -- the outcome of a checkout ------------------------------------------------------------


@registry.event("OrderConfirmed")
class OrderConfirmed(msgspec.Struct, frozen=True):
    order_id: str


@registry.event("OrderCancelled")
class OrderCancelled(msgspec.Struct, frozen=True):
    order_id: str
    reason: str


# -- the process manager -------------------------------------------------------------------


def _order_id(stream_id: str) -> str:
    return stream_id.partition("-")[2]


def _order(ctx: ProcessContext, order_id: str) -> tuple[str, dict[str, int], int]:
    """The customer, items and total of an order, from its stream."""
    order = ctx.load(order_decider, f"order-{order_id}").state
    items: dict[str, int] = {}
    for line in order.lines:
        items[line.sku] = items.get(line.sku, 0) + line.quantity
    return order.customer, items, order.total


# Registered by class, so each handler sees its event's type (``event.data``).
_handlers = EventHandlers[ProcessContext](registry)


@_handlers.on(OrderSubmitted)
def _on_submitted(event: RecordedEvent[OrderSubmitted], ctx: ProcessContext) -> None:
    order_id = _order_id(event.stream_id)
    _, items, _ = _order(ctx, order_id)
    ctx.execute(warehouse_decider, WAREHOUSE, ReserveStock(order_id, items))


@_handlers.on(StockReserved)
def _on_reserved(event: RecordedEvent[StockReserved], ctx: ProcessContext) -> None:
    order_id = event.data.order_id
    customer, _, total = _order(ctx, order_id)
    ctx.execute(payment_decider, f"payment-{order_id}", ChargePayment(order_id, customer, total))


@_handlers.on(StockReservationRejected)
def _on_rejected(event: RecordedEvent[StockReservationRejected], ctx: ProcessContext) -> None:
    data = event.data
    ctx.append(f"checkout-{data.order_id}", [OrderCancelled(data.order_id, data.reason)], 0)


@_handlers.on(PaymentCharged)
def _on_charged(event: RecordedEvent[PaymentCharged], ctx: ProcessContext) -> None:
    ctx.append(f"checkout-{event.data.order_id}", [OrderConfirmed(event.data.order_id)], 0)


@_handlers.on(PaymentDeclined)
def _on_declined(event: RecordedEvent[PaymentDeclined], ctx: ProcessContext) -> None:
    data = event.data
    # The compensation: give back what the order had reserved, then cancel it.
    ctx.execute(warehouse_decider, WAREHOUSE, ReleaseStock(data.order_id))
    ctx.append(
        f"checkout-{data.order_id}", [OrderCancelled(data.order_id, f"payment declined: {data.reason}")], 0
    )


checkout_saga = ProcessManager("checkout", _handlers)
"""The checkout process manager (see the module docstring)."""
