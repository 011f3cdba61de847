"""Orders, written as a decider.

The rules: an order is created once; items can be added to it until it is
submitted; an empty order cannot be submitted. Submitting twice changes nothing.

Use it with a store::

    orders = CommandHandler(store, order_decider)
    orders.handle("order-42", CreateOrder(customer="ada"))
    orders.handle("order-42", AddItem(sku="book", quantity=2, unit_price=1250))
    orders.handle("order-42", SubmitOrder())
"""

from __future__ import annotations

from typing import Literal, assert_never

import msgspec

from chronik.decider import Decider
from chronik.examples import registry

__all__ = [
    "AddItem",
    "CreateOrder",
    "Order",
    "OrderCommand",
    "OrderCreated",
    "OrderError",
    "OrderEvent",
    "OrderItemAdded",
    "OrderLine",
    "OrderSubmitted",
    "SubmitOrder",
    "decide",
    "evolve",
    "order_decider",
]


# -- events: what happened, named in the past tense, registered under stable names --


@registry.event("OrderCreated")
class OrderCreated(msgspec.Struct, frozen=True):
    customer: str


@registry.event("OrderItemAdded")
class OrderItemAdded(msgspec.Struct, frozen=True):
    sku: str
    quantity: int
    unit_price: int  # in cents


@registry.event("OrderSubmitted")
class OrderSubmitted(msgspec.Struct, frozen=True):
    total: int  # in cents


OrderEvent = OrderCreated | OrderItemAdded | OrderSubmitted


# -- commands: what someone asks for; they may be refused ----------------------------


class CreateOrder(msgspec.Struct, frozen=True):
    customer: str


class AddItem(msgspec.Struct, frozen=True):
    sku: str
    quantity: int
    unit_price: int  # in cents


class SubmitOrder(msgspec.Struct, frozen=True):
    pass


OrderCommand = CreateOrder | AddItem | SubmitOrder


# -- state: only what the rules need ---------------------------------------------------


class OrderLine(msgspec.Struct, frozen=True):
    sku: str
    quantity: int
    unit_price: int


class Order(msgspec.Struct, frozen=True):
    status: Literal["none", "open", "submitted"] = "none"
    customer: str = ""
    lines: tuple[OrderLine, ...] = ()

    @property
    def total(self) -> int:
        return sum(line.quantity * line.unit_price for line in self.lines)


class OrderError(Exception):
    """A command that the rules of orders refuse."""


def decide(command: OrderCommand, order: Order) -> list[OrderEvent]:
    """The events ``command`` causes on ``order``, or :class:`OrderError`."""
    match command:
        case CreateOrder():
            if order.status != "none":
                raise OrderError("this order exists already: an order is created once")
            return [OrderCreated(command.customer)]
        case AddItem():
            if order.status == "none":
                raise OrderError("there is no such order: create it first")
            if order.status == "submitted":
                raise OrderError("this order was submitted: no more items can be added to it")
            if command.quantity < 1:
                raise OrderError(f"the quantity must be at least 1, not {command.quantity}")
            return [OrderItemAdded(command.sku, command.quantity, command.unit_price)]
        case SubmitOrder():
            if order.status == "none":
                raise OrderError("there is no such order: create it first")
            if order.status == "submitted":
                return []  # submitted already: nothing new happens
            if not order.lines:
                raise OrderError("an empty order cannot be submitted: add an item first")
            return [OrderSubmitted(order.total)]
    assert_never(command)


def evolve(order: Order, event: OrderEvent) -> Order:
    """The order after ``event``."""
    match event:
        case OrderCreated():
            return Order(status="open", customer=event.customer)
        case OrderItemAdded():
            line = OrderLine(event.sku, event.quantity, event.unit_price)
            return msgspec.structs.replace(order, lines=(*order.lines, line))
        case OrderSubmitted():
            return msgspec.structs.replace(order, status="submitted")
    assert_never(event)


order_decider = Decider(decide=decide, evolve=evolve, initial_state=Order(), category="order")
"""Orders live in streams ``order-<id>``."""
