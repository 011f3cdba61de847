"""The example domains on real stores: orders, upcast bank deposits, audit trail."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import msgspec
import pytest

from chronik import NewEvent
from chronik.examples import registry
from chronik.examples.bank import (
    AccountOpened,
    BankAccount,
    InsufficientFunds,
    MoneyDeposited,
    MoneyWithdrawn,
    audit_trail,
)
from chronik.examples.orders import (
    AddItem,
    CreateOrder,
    OrderCreated,
    OrderError,
    OrderItemAdded,
    OrderSubmitted,
    SubmitOrder,
    order_decider,
)

from ._support import App


@pytest.fixture
def app(open_app: Callable[[Any], App]) -> App:
    return open_app(registry)


def test_an_order_from_creation_to_submission(app: App) -> None:
    orders = app.handler(order_decider)
    orders.handle("order-7", CreateOrder("ada"), metadata={"user": "ada"})
    orders.handle("order-7", AddItem("book", 2, 1250))
    result = orders.handle("order-7", SubmitOrder())
    assert result.events == (OrderSubmitted(2500),)
    with pytest.raises(OrderError, match="submitted"):
        orders.handle("order-7", AddItem("pen", 1, 100))
    assert [e.data for e in app.store.read_stream("order-7")] == [
        OrderCreated("ada"),
        OrderItemAdded("book", 2, 1250),
        OrderSubmitted(2500),
    ]
    assert orders.load("order-7").state.status == "submitted"


def _old_account(app: App) -> None:
    """An account written over the years: deposits of all three schema versions."""
    app.store.append(
        "account-ada",
        [
            AccountOpened("ada", overdraft_limit=1_000),
            NewEvent("MoneyDeposited", {"amount": 12}, schema_version=1),
            NewEvent("MoneyDeposited", {"amount": 3, "currency": "EUR"}, schema_version=2),
            MoneyDeposited(250, "EUR", "coffee refund"),
        ],
    )


def test_deposits_of_three_schema_versions_in_one_stream_are_read_as_version_3(app: App) -> None:
    _old_account(app)
    events = app.store.read_stream("account-ada")
    assert [e.schema_version for e in events] == [1, 1, 2, 3]
    assert [msgspec.json.decode(e.raw_data) for e in events[1:]] == [
        {"amount": 12},
        {"amount": 3, "currency": "EUR"},
        {"amount_cents": 250, "currency": "EUR", "reference": "coffee refund"},
    ]
    assert [e.data for e in events[1:]] == [
        MoneyDeposited(1200, "EUR", ""),
        MoneyDeposited(300, "EUR", ""),
        MoneyDeposited(250, "EUR", "coffee refund"),
    ]


def test_an_aggregate_that_only_knows_version_3_runs_on_the_old_stream(app: App) -> None:
    _old_account(app)
    accounts = app.handler(BankAccount)
    assert accounts.load("account-ada").state.balance == 1750
    result = accounts.handle("account-ada", lambda a: a.withdraw(2_750, "rent"))
    assert (result.state.balance, result.version) == (-1_000, 5)
    with pytest.raises(InsufficientFunds):
        accounts.handle("account-ada", lambda a: a.withdraw(1))


def test_the_audit_trail_shows_every_change_who_asked_and_why(app: App) -> None:
    _old_account(app)
    accounts = app.handler(BankAccount)
    accounts.handle(
        "account-ada", lambda a: a.withdraw(500, "rent"), command_id="req-1", metadata={"user": "ada"}
    )
    trail = audit_trail(app.store, "account-ada")
    assert [(e.version, e.type, e.schema_version, e.change, e.balance) for e in trail] == [
        (1, "AccountOpened", 1, 0, 0),
        (2, "MoneyDeposited", 1, 1200, 1200),
        (3, "MoneyDeposited", 2, 300, 1500),
        (4, "MoneyDeposited", 3, 250, 1750),
        (5, "MoneyWithdrawn", 1, -500, 1250),
    ]
    last = trail[-1]
    assert (last.user, last.correlation_id, last.causation_id, last.reference) == (
        "ada",
        "req-1",
        "req-1",
        "rent",
    )
    assert [e.recorded_at for e in trail] == [e.recorded_at for e in app.store.read_stream("account-ada")]
    assert app.store.read_stream("account-ada")[-1].data == MoneyWithdrawn(500, "rent")
