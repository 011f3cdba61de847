"""Temporal queries: a stream's state as of a version or a moment, with and without snapshots."""

from __future__ import annotations

import itertools
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

import chronik._paged_fold
from chronik import InvalidInputError, RecordedEvent, SnapshotPolicy
from chronik.examples import registry
from chronik.examples.bank import BankAccount

from ._support import App, Handler

DEPOSITS = [100, 200, 400, 800, 1600, 3200]


@pytest.fixture(autouse=True, params=[None, 2, 3], ids=["one-page", "pages-of-2", "pages-of-3"])
def page(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> None:
    """Loads read a stream a page at a time (READ_PAGE events): with small pages the
    same loads cross pages everywhere, the snapshot's own page and as_of cuts included."""
    if request.param is not None:
        monkeypatch.setattr(chronik._paged_fold, "READ_PAGE", request.param)


@pytest.fixture
def app(open_app: Callable[[Any], App]) -> App:
    return open_app(registry)


@pytest.fixture(params=[None, 4], ids=["no-snapshots", "snapshot-every-4"])
def accounts(request: pytest.FixtureRequest, app: App) -> Handler:
    """An account with 7 events, each appended on its own; maybe a snapshot at version 4."""
    every = request.param
    handler = app.handler(BankAccount, snapshots=SnapshotPolicy(every=every) if every else None)
    handler.handle("account-1", lambda a: a.open("ada"))
    for amount in DEPOSITS:
        handler.handle("account-1", lambda a, amount=amount: a.deposit(amount))
    return handler


def _balance_at(version: int) -> int:
    return sum(DEPOSITS[: max(version - 1, 0)])


def test_the_state_as_of_each_version(app: App, accounts: Handler) -> None:
    for version in range(8):
        loaded = accounts.load("account-1", version=version)
        assert (loaded.version, loaded.state.balance) == (version, _balance_at(version))
        assert loaded.state.version == version
        # A snapshot is used only when it is not newer than the version asked for.
        assert loaded.snapshot_version is None or loaded.snapshot_version <= version
    assert accounts.load("account-1", version=0).state == BankAccount()
    assert accounts.load("account-1", version=0).recorded_at is None


def test_a_snapshot_at_or_before_the_version_is_used(app: App) -> None:
    accounts = app.handler(BankAccount, snapshots=SnapshotPolicy(every=4))
    accounts.handle("account-1", lambda a: a.open("ada"))
    for amount in DEPOSITS:
        accounts.handle("account-1", lambda a, amount=amount: a.deposit(amount))
    assert accounts.load("account-1").snapshot_version == 4
    assert accounts.load("account-1", version=6).snapshot_version == 4
    assert accounts.load("account-1", version=4).snapshot_version == 4
    assert accounts.load("account-1", version=3).snapshot_version is None


def test_a_version_the_stream_has_not_reached_is_refused(accounts: Handler) -> None:
    with pytest.raises(InvalidInputError, match="stream 'account-1' is at version 7: it has no version 8"):
        accounts.load("account-1", version=8)
    with pytest.raises(InvalidInputError, match="is at version 0: it has no version 1"):
        accounts.load("account-2", version=1)


def _expected_as_of(events: list[RecordedEvent], moment: datetime) -> int:
    """The version of the last event recorded at or before ``moment``."""
    return len(list(itertools.takewhile(lambda e: e.recorded_at <= moment, events)))


def test_the_state_as_of_a_moment(app: App, accounts: Handler) -> None:
    events = app.store.read_stream("account-1")
    for event in events:
        loaded = accounts.load("account-1", as_of=event.recorded_at)
        expected = _expected_as_of(events, event.recorded_at)
        assert expected >= event.version
        assert (loaded.version, loaded.state.balance) == (expected, _balance_at(expected))
        assert loaded.recorded_at == events[expected - 1].recorded_at
        if loaded.snapshot_version is not None:  # never a snapshot newer than the moment
            assert events[loaded.snapshot_version - 1].recorded_at <= event.recorded_at


def test_before_the_first_event_and_after_the_last(app: App, accounts: Handler) -> None:
    first = app.store.read_stream("account-1")[0].recorded_at
    before = accounts.load("account-1", as_of=first - timedelta(microseconds=1))
    assert (before.version, before.state, before.recorded_at) == (0, BankAccount(), None)
    later = accounts.load("account-1", as_of=datetime.now(UTC) + timedelta(days=1))
    assert (later.version, later.state.balance) == (7, sum(DEPOSITS))


def test_a_moment_in_another_time_zone_means_the_same_instant(app: App, accounts: Handler) -> None:
    third = app.store.read_stream("account-1")[2].recorded_at
    elsewhere = third.astimezone(datetime.now().astimezone().tzinfo)
    assert accounts.load("account-1", as_of=elsewhere) == accounts.load("account-1", as_of=third)


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"as_of": datetime(2030, 1, 1)}, "as_of must be a timezone-aware datetime"),
        ({"as_of": "2030-01-01"}, "as_of must be a timezone-aware datetime"),
        ({"version": -1}, "version must be an int >= 0"),
        ({"version": 1, "as_of": datetime.now(UTC)}, "version= or as_of=, not both"),
    ],
)
def test_bad_temporal_queries_are_refused(accounts: Handler, options: dict[str, Any], message: str) -> None:
    with pytest.raises(InvalidInputError, match=message):
        accounts.load("account-1", **options)
