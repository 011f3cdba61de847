"""Property: whatever the commands and the snapshot policy, loading from a snapshot gives
the state a full replay gives."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

import chronik
from chronik import CommandHandler, SnapshotPolicy
from chronik.examples import registry
from chronik.examples.bank import AccountError, BankAccount
from chronik.examples.conference import (
    BookingError,
    CancelReservation,
    ReserveSeats,
    ScheduleConference,
    conference_decider,
)

account_commands = st.lists(
    st.one_of(
        st.builds(lambda n: ("deposit", n), st.integers(1, 5_000)),
        st.builds(lambda n: ("withdraw", n), st.integers(1, 5_000)),
    ),
    max_size=25,
)
booking_commands = st.lists(
    st.one_of(
        st.builds(ReserveSeats, st.sampled_from("abcdefgh"), st.just("x"), st.integers(1, 4)),
        st.builds(CancelReservation, st.sampled_from("abcdefgh")),
    ),
    max_size=25,
)


def _command(name: str, amount: int) -> Callable[[BankAccount], object]:
    def command(account: BankAccount) -> None:
        getattr(account, name)(amount)

    return command


@settings(max_examples=60, deadline=None)
@given(account_commands, st.integers(1, 6))
def test_bank_accounts(commands: list[tuple[str, int]], every: int) -> None:
    store = chronik.connect("memory://", registry=registry)
    snapshotted = CommandHandler(store, BankAccount, snapshots=SnapshotPolicy(every=every))
    snapshotted.handle("account-1", lambda a: a.open("ada", overdraft_limit=2_000))
    for name, amount in commands:
        try:
            snapshotted.handle("account-1", _command(name, amount))
        except AccountError:
            pass
    loaded = snapshotted.load("account-1")
    replayed = CommandHandler(store, BankAccount).load("account-1")
    assert loaded.version == replayed.version
    assert loaded.state == replayed.state
    assert loaded.snapshot_version is not None or loaded.version < every + 1


@settings(max_examples=60, deadline=None)
@given(booking_commands, st.integers(1, 6), st.data())
def test_conferences(commands: list[Any], every: int, data: st.DataObject) -> None:
    store = chronik.connect("memory://", registry=registry)
    snapshotted = CommandHandler(store, conference_decider, snapshots=SnapshotPolicy(every=every))
    snapshotted.handle("conference-1", ScheduleConference("PyCon", 10))
    for command in commands:
        try:
            snapshotted.handle("conference-1", command)
        except BookingError:
            pass
    replayed = CommandHandler(store, conference_decider)
    assert snapshotted.load("conference-1").state == replayed.load("conference-1").state
    version = data.draw(st.integers(0, store.stream_info("conference-1").version))
    assert (
        snapshotted.load("conference-1", version=version).state
        == replayed.load("conference-1", version=version).state
    )
