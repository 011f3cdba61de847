"""Snapshots on real stores: taken by policy, used on load, ignored when stale, never fatal."""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

import pytest

import chronik._paged_fold
from chronik import AsyncCommandHandler, CommandHandler, ConfigurationError, NewEvent, SnapshotPolicy
from chronik.errors import SnapshotDecodeError
from chronik.events import Snapshot
from chronik.examples import registry
from chronik.examples.bank import AccountOpened, BankAccount, MoneyDeposited, MoneyWithdrawn
from chronik.examples.orders import AddItem, CreateOrder, OrderSubmitted, SubmitOrder, order_decider
from chronik.store import SnapshotStore

from ._support import App, BlockingHandler


@pytest.fixture(autouse=True, params=[None, 2], ids=["one-page", "pages-of-2"])
def page(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> None:
    """Loads and refreshes read a stream a page at a time: small pages cross everywhere."""
    if request.param is not None:
        monkeypatch.setattr(chronik._paged_fold, "READ_PAGE", request.param)


@pytest.fixture
def app(open_app: Callable[[Any], App]) -> App:
    return open_app(registry)


def _snapshot(app: App, stream_id: str) -> Snapshot | None:
    assert isinstance(app.store, SnapshotStore)
    return app.store.load_snapshot(stream_id)


def _deposits(handler: Any, stream_id: str, n: int) -> list[bool]:
    return [handler.handle(stream_id, lambda a: a.deposit(100)).snapshot_saved for _ in range(n)]


def _open(app: App, stream_id: str = "account-1") -> None:
    app.store.append(stream_id, [AccountOpened("ada", 0)])


def test_a_snapshot_every_n_events(app: App) -> None:
    _open(app)
    accounts = app.handler(BankAccount, snapshots=SnapshotPolicy(every=3))
    assert _deposits(accounts, "account-1", 6) == [False, True, False, False, True, False]
    snapshot = _snapshot(app, "account-1")
    assert snapshot is not None
    assert (snapshot.version, snapshot.type, snapshot.schema_version) == (6, "BankAccount", 1)
    loaded = accounts.load("account-1")
    assert (loaded.version, loaded.snapshot_version, loaded.state.balance) == (7, 6, 600)
    assert loaded.state.version == 7


def test_a_snapshot_when_a_predicate_says_so(app: App) -> None:
    def submitted(order: Any, events: Any) -> bool:
        return any(isinstance(e, OrderSubmitted) for e in events)

    orders = app.handler(order_decider, snapshots=SnapshotPolicy(when=submitted))
    orders.handle("order-1", CreateOrder("ada"))
    orders.handle("order-1", AddItem("book", 1, 1200))
    assert _snapshot(app, "order-1") is None
    assert orders.handle("order-1", SubmitOrder()).snapshot_saved
    loaded = orders.load("order-1")
    assert (loaded.snapshot_version, loaded.state.status, loaded.state.total) == (3, "submitted", 1200)


def test_loading_uses_the_snapshot_and_only_the_events_after_it(app: App) -> None:
    _open(app)
    accounts = app.handler(BankAccount, snapshots=SnapshotPolicy(every=2))
    _deposits(accounts, "account-1", 3)
    # The snapshot says what it says: a different balance there proves it is used.
    assert isinstance(app.store, SnapshotStore)
    app.store.save_snapshot(Snapshot("account-1", 3, "BankAccount", 1, b'{"balance":5000,"is_open":true}'))
    assert accounts.load("account-1").state.balance == 5100
    plain = app.handler(BankAccount)  # no policy: snapshots are not even read
    assert plain.load("account-1").state.balance == 300


def test_a_snapshot_of_another_schema_version_is_ignored_and_replaced(app: App) -> None:
    _open(app)
    old = app.handler(BankAccount, snapshots=SnapshotPolicy(every=2, schema_version=1))
    _deposits(old, "account-1", 3)
    stale = _snapshot(app, "account-1")
    assert stale is not None and (stale.version, stale.schema_version) == (4, 1)
    new = app.handler(BankAccount, snapshots=SnapshotPolicy(every=100, schema_version=2))
    loaded = new.load("account-1")
    assert (loaded.snapshot_version, loaded.state.balance) == (None, 300)  # replayed in full
    result = new.handle("account-1", lambda a: a.withdraw(50))
    assert result.snapshot_saved  # replaced at once, although 100 events have not passed
    snapshot = _snapshot(app, "account-1")
    assert snapshot is not None and (snapshot.version, snapshot.schema_version) == (5, 2)
    assert new.load("account-1").snapshot_version == 5


def test_a_stale_snapshot_is_replaced_even_by_a_command_that_decides_nothing(app: App) -> None:
    orders = app.handler(order_decider, snapshots=SnapshotPolicy(every=2, schema_version=1))
    for command in (CreateOrder("ada"), AddItem("book", 1, 1200), SubmitOrder()):
        orders.handle("order-1", command)
    bumped = app.handler(order_decider, snapshots=SnapshotPolicy(every=2, schema_version=2))
    result = bumped.handle("order-1", SubmitOrder())
    assert (result.appended, result.snapshot_saved) == (False, True)
    snapshot = _snapshot(app, "order-1")
    assert snapshot is not None and (snapshot.version, snapshot.schema_version) == (3, 2)


class _FailingSnapshots:
    """A store whose snapshot writes fail (sync or asyncio, like the store it wraps)."""

    def __init__(self, store: Any) -> None:
        self._store = store
        self.codec = store.codec

    def __getattr__(self, name: str) -> Any:
        return getattr(self._store, name)

    def save_snapshot(self, snapshot: Snapshot) -> None:
        raise OSError("disk full")


class _FailingAsyncSnapshots(_FailingSnapshots):
    async def save_snapshot(self, snapshot: Snapshot) -> None:  # type: ignore[override]
        raise OSError("disk full")


def test_a_failed_snapshot_write_never_fails_the_command(app: App, caplog: pytest.LogCaptureFixture) -> None:
    _open(app)
    policy = SnapshotPolicy(every=1)
    accounts: Any
    if app.async_store is None:
        accounts = CommandHandler(_FailingSnapshots(app.store), BankAccount, snapshots=policy)
    else:
        failing = _FailingAsyncSnapshots(app.async_store)
        accounts = BlockingHandler(AsyncCommandHandler(failing, BankAccount, snapshots=policy))
    with caplog.at_level(logging.WARNING, logger="chronik.handling"):
        result = accounts.handle("account-1", lambda a: a.deposit(100))
    assert (result.appended, result.snapshot_saved, result.version) == (True, False, 2)
    assert "could not save a snapshot of stream 'account-1' at version 2" in caplog.text
    assert app.store.stream_info("account-1").version == 2
    assert _snapshot(app, "account-1") is None


def test_a_failing_snapshot_predicate_never_fails_the_command(app: App) -> None:
    def broken(state: Any, events: Any) -> bool:
        raise ZeroDivisionError

    _open(app)
    accounts = app.handler(BankAccount, snapshots=SnapshotPolicy(when=broken))
    result = accounts.handle("account-1", lambda a: a.deposit(100))
    assert (result.appended, result.snapshot_saved) == (True, False)


def test_a_corrupt_snapshot_names_stream_version_and_type(app: App) -> None:
    _open(app)
    accounts = app.handler(BankAccount, snapshots=SnapshotPolicy(every=1))
    _deposits(accounts, "account-1", 2)
    assert isinstance(app.store, SnapshotStore)
    app.store.save_snapshot(Snapshot("account-1", 3, "BankAccount", 1, b'{"balance": "a lot"'))
    with pytest.raises(SnapshotDecodeError) as info:
        accounts.handle("account-1", lambda a: a.deposit(100))
    assert (info.value.stream_id, info.value.version, info.value.type) == ("account-1", 3, "BankAccount")
    assert app.store.stream_info("account-1").version == 3  # nothing written
    refreshed = accounts.refresh_snapshot("account-1")
    assert (refreshed.version, refreshed.state.balance) == (3, 200)
    assert accounts.handle("account-1", lambda a: a.deposit(100)).state.balance == 300


def test_a_snapshot_beyond_the_end_of_its_stream_is_refused(app: App) -> None:
    _open(app)
    assert isinstance(app.store, SnapshotStore)
    app.store.save_snapshot(Snapshot("account-1", 9, "BankAccount", 1, b"{}"))
    accounts = app.handler(BankAccount, snapshots=SnapshotPolicy(every=1))
    with pytest.raises(SnapshotDecodeError, match="at version 9, but the stream has no event at that"):
        accounts.load("account-1")


def test_snapshots_need_a_store_that_keeps_them(app: App) -> None:
    with pytest.raises(ConfigurationError, match="refresh"):
        app.handler(BankAccount).refresh_snapshot("account-1")


def test_upcast_events_and_snapshots_together(app: App) -> None:
    app.store.append(
        "account-1",
        [
            AccountOpened("ada", 0),
            NewEvent("MoneyDeposited", {"amount": 1}, schema_version=1),
            NewEvent("MoneyDeposited", {"amount": 2, "currency": "EUR"}, schema_version=2),
            MoneyDeposited(300, "EUR"),
            MoneyWithdrawn(50),
        ],
    )
    accounts = app.handler(BankAccount, snapshots=SnapshotPolicy(every=2))
    result = accounts.handle("account-1", lambda a: a.deposit(5))
    assert (result.snapshot_saved, result.state.balance) == (True, 100 + 200 + 300 - 50 + 5)
    assert accounts.load("account-1").state == result.state
