"""ProcessManagerSpec: given a history, when events arrive, then the events a process manager appends."""

from __future__ import annotations

import pytest

import chronik
from chronik import NewEvent, RecordedEvent
from chronik.examples import registry
from chronik.examples.orders import OrderCreated, OrderItemAdded, OrderSubmitted
from chronik.examples.saga import (
    WAREHOUSE,
    PaymentCharged,
    PaymentDeclined,
    StockAdded,
    StockReleased,
    StockReserved,
    checkout_saga,
)
from chronik.process_managers import AsyncProcessContext, ProcessContext, ProcessManager
from chronik.testing import ProcessManagerSpec

spec = ProcessManagerSpec(checkout_saga, registry=registry)
ORDER = [("order-1", OrderCreated("ada")), ("order-1", OrderItemAdded("book", 2, 1250))]


def test_then_checks_what_it_appends_on_which_streams() -> None:
    appended = (
        spec.given(("stock-warehouse", StockAdded("book", 10)), *ORDER)
        .when(("order-1", OrderSubmitted(2500)))
        .then((WAREHOUSE, StockReserved("1", {"book": 2})))
    )
    # What it appended is returned, with the reacting event's correlation and causation.
    [reserved] = appended
    assert reserved.metadata["causation_id"] == reserved.metadata["correlation_id"]


def test_it_reacts_only_to_the_events_that_arrive_not_to_its_own() -> None:
    # StockReserved would lead on to a payment; given as history, it is not reacted to.
    spec.given(
        ("stock-warehouse", StockAdded("book", 10)),
        *ORDER,
        ("order-1", OrderSubmitted(2500)),
        ("stock-warehouse", StockReserved("1", {"book": 2})),
    ).when(("payment-1", PaymentDeclined("1", "ada", 2500, "no"))).then(
        [
            (WAREHOUSE, StockReleased("1", {"book": 2})),
            ("checkout-1", NewEvent("OrderCancelled", {"order_id": "1", "reason": "payment declined: no"})),
        ]
    )


def test_then_nothing_and_several_events_arriving() -> None:
    spec.given(*ORDER).when(
        ("payment-1", PaymentCharged("1", "ada", 2500)), ("order-9", OrderCreated("x"))
    ).then(("checkout-1", NewEvent("OrderConfirmed", {"order_id": "1"})))
    spec.given().when(("order-9", OrderCreated("grace"))).then_nothing()


def test_a_mismatch_shows_expected_and_appended_side_by_side() -> None:
    when = spec.given(*ORDER).when(("order-1", OrderSubmitted(2500)))
    with pytest.raises(AssertionError) as caught:
        when.then((WAREHOUSE, StockReserved("1", {"book": 3})))
    message = str(caught.value)
    assert message.startswith("the process manager appended other events than expected")
    assert "when  'order-1': OrderSubmitted(total=2500)" in message
    assert "StockReservationRejected" in message and "<- differs" in message
    with pytest.raises(
        AssertionError, match="expected the process manager to append nothing, but it appended"
    ):
        when.then_nothing()


def _refusing(event: RecordedEvent, ctx: ProcessContext) -> None:
    if event.data["amount"] > 100:
        raise ValueError(f"{event.data['amount']} is too much")
    ctx.append("mail-1", [NewEvent("Noted", {"amount": event.data["amount"]})])


def test_then_raises_returns_the_handlers_error() -> None:
    refusing = ProcessManagerSpec(ProcessManager("refusing", {"Asked": _refusing}))
    error = (
        refusing.given()
        .when(("ask-1", NewEvent("Asked", {"amount": 500})))
        .then_raises(ValueError, match="too much")
    )
    assert str(error) == "500 is too much"
    with pytest.raises(
        AssertionError, match="expected the process manager to raise ValueError, but it appended"
    ):
        refusing.given().when(("ask-1", NewEvent("Asked", {"amount": 5}))).then_raises(ValueError)
    with pytest.raises(AssertionError, match="to append 1 event, but it raised ValueError: 500 is too much"):
        refusing.given().when(("ask-1", NewEvent("Asked", {"amount": 500}))).then(("mail-1", {"amount": 500}))


def test_a_process_manager_that_reacts_twice_to_one_event_fails_its_spec() -> None:
    def note(event: RecordedEvent, ctx: ProcessContext) -> None:
        ctx.append("mail-1", [NewEvent("Noted", {}, event_id=chronik.uuid7())])  # a new id every time

    careless = ProcessManager("careless", {"Asked": note})
    when = ProcessManagerSpec(careless).given().when(("ask-1", NewEvent("Asked", {})))
    with pytest.raises(AssertionError, match="handling the same events again .* appended more"):
        when.then(("mail-1", NewEvent("Noted", {})))
    # Where it only ever runs in a transaction with its checkpoint, that is its business.
    ProcessManagerSpec(careless, idempotent=False).given().when(("ask-1", NewEvent("Asked", {}))).then(
        ("mail-1", NewEvent("Noted", {}))
    )


def test_an_asyncio_process_manager() -> None:
    async def note(event: RecordedEvent, ctx: AsyncProcessContext) -> None:
        seen = await ctx.read_stream("ask-1")
        await ctx.append("mail-1", [NewEvent("Noted", {"asked": len(seen)})])

    ProcessManagerSpec(ProcessManager("notes", {"Asked": note})).given(("ask-1", NewEvent("Asked", {}))).when(
        ("ask-1", NewEvent("Asked", {}))
    ).then(("mail-1", NewEvent("Noted", {"asked": 2})))


def test_bad_arguments_are_refused() -> None:
    with pytest.raises(TypeError, match=r"given\(\) takes \(stream_id, event\) pairs"):
        spec.given(OrderCreated("ada"))  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="when.. needs at least one"):
        spec.given().when()
