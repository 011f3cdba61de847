"""The orders example, specified with given/when/then."""

from chronik.examples import registry
from chronik.examples.orders import (
    AddItem,
    CreateOrder,
    Order,
    OrderCreated,
    OrderError,
    OrderItemAdded,
    OrderLine,
    OrderSubmitted,
    SubmitOrder,
    order_decider,
)
from chronik.testing.specs import Specification

given = Specification(order_decider, registry=registry).given


def test_an_order_is_created() -> None:
    order = given().when(CreateOrder("ada")).then(OrderCreated("ada"))
    assert order == Order(status="open", customer="ada")


def test_an_order_cannot_be_created_twice() -> None:
    given(OrderCreated("ada")).when(CreateOrder("ada")).then_raises(OrderError, match="exists already")


def test_items_are_added_to_an_open_order() -> None:
    order = (
        given(OrderCreated("ada"), OrderItemAdded("book", 1, 1200))
        .when(AddItem("pen", 3, 150))
        .then(OrderItemAdded("pen", 3, 150))
    )
    assert order.lines == (OrderLine("book", 1, 1200), OrderLine("pen", 3, 150))
    assert order.total == 1650


def test_no_items_can_be_added_to_a_submitted_order() -> None:
    (
        given(OrderCreated("ada"), OrderItemAdded("book", 1, 1200), OrderSubmitted(1200))
        .when(AddItem("pen", 1, 150))
        .then_raises(OrderError, match="was submitted")
    )


def test_no_items_can_be_added_to_an_order_that_does_not_exist() -> None:
    given().when(AddItem("pen", 1, 150)).then_raises(OrderError, match="no such order")


def test_a_quantity_must_be_positive() -> None:
    given(OrderCreated("ada")).when(AddItem("pen", 0, 150)).then_raises(OrderError, match="at least 1")


def test_an_order_is_submitted_with_its_total() -> None:
    (
        given(OrderCreated("ada"), OrderItemAdded("book", 2, 1200), OrderItemAdded("pen", 1, 150))
        .when(SubmitOrder())
        .then(OrderSubmitted(2550))
    )


def test_an_empty_order_cannot_be_submitted() -> None:
    given(OrderCreated("ada")).when(SubmitOrder()).then_raises(OrderError, match="empty order")


def test_submitting_twice_changes_nothing() -> None:
    given(OrderCreated("ada"), OrderItemAdded("book", 1, 1200), OrderSubmitted(1200)).when(
        SubmitOrder()
    ).then_nothing()
