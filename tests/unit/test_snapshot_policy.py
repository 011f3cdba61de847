"""Snapshot policies and the snapshot codec (no I/O)."""

from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from chronik import Aggregate, ConfigurationError, Decider, SnapshotPolicy
from chronik.errors import SnapshotDecodeError
from chronik.events import Snapshot
from chronik.examples.bank import AccountOpened, BankAccount, MoneyDeposited, MoneyWithdrawn
from chronik.examples.conference import (
    ConferenceScheduled,
    ReservationCancelled,
    SeatsReserved,
    conference_decider,
)
from chronik.handling import as_model
from chronik.snapshots import Snapshotter


def test_every_n_events_since_the_last_snapshot() -> None:
    policy = SnapshotPolicy(every=3)
    assert not policy.due(version=2, last_snapshot_version=0, state=None, new_events=[1])
    assert policy.due(version=3, last_snapshot_version=0, state=None, new_events=[1])
    assert not policy.due(version=5, last_snapshot_version=3, state=None, new_events=[1])
    assert policy.due(version=7, last_snapshot_version=3, state=None, new_events=[1, 2])


def test_a_predicate_sees_the_state_and_the_new_events() -> None:
    seen: list[tuple[Any, list[Any]]] = []

    def when(state: Any, events: Any) -> bool:
        seen.append((state, list(events)))
        return "closed" in events

    policy = SnapshotPolicy(when=when)
    assert not policy.due(version=9, last_snapshot_version=0, state="s", new_events=["x"])
    assert policy.due(version=10, last_snapshot_version=0, state="s", new_events=["closed"])
    assert not policy.due(version=10, last_snapshot_version=0, state="s", new_events=[])
    assert seen == [("s", ["x"]), ("s", ["closed"])]  # not asked when nothing was appended


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({}, "needs every=N, when=predicate, or both"),
        ({"every": 0}, "every must be an int >= 1"),
        ({"every": True}, "every must be an int >= 1"),
        ({"when": 3}, "when must be a function"),
        ({"every": 1, "schema_version": 0}, "schema_version must be an int >= 1"),
        ({"every": 1, "name": ""}, "name must be a non-empty str"),
    ],
)
def test_bad_policies_are_refused(options: dict[str, Any], message: str) -> None:
    with pytest.raises(ConfigurationError, match=message):
        SnapshotPolicy(**options)


def test_a_snapshot_carries_the_model_name_and_the_state_schema_version() -> None:
    snapshotter = Snapshotter(SnapshotPolicy(every=1, schema_version=4), as_model(BankAccount))
    snapshot = snapshotter.encode("account-1", 7, BankAccount(owner="ada", balance=5, is_open=True))
    assert (snapshot.stream_id, snapshot.version, snapshot.type, snapshot.schema_version) == (
        "account-1",
        7,
        "BankAccount",
        4,
    )
    assert snapshotter.matches(snapshot)
    assert snapshotter.restore(snapshot) == BankAccount(owner="ada", balance=5, is_open=True)


def test_a_snapshot_of_another_schema_version_or_type_does_not_match() -> None:
    current = Snapshotter(SnapshotPolicy(every=1, schema_version=2), as_model(BankAccount))
    assert not current.matches(Snapshot("account-1", 3, "BankAccount", 1, b"{}"))
    assert not current.matches(Snapshot("account-1", 3, "Other", 2, b"{}"))


def test_a_matching_snapshot_that_does_not_decode_names_stream_version_and_type() -> None:
    snapshotter = Snapshotter(SnapshotPolicy(every=1), as_model(BankAccount))
    with pytest.raises(SnapshotDecodeError) as info:
        snapshotter.restore(Snapshot("account-1", 3, "BankAccount", 1, b'{"balance": "lots"}'))
    assert (info.value.stream_id, info.value.version, info.value.type) == ("account-1", 3, "BankAccount")
    assert "snapshot of stream 'account-1' at version 3 (type 'BankAccount', schema version 1)" in str(
        info.value
    )
    with pytest.raises(SnapshotDecodeError, match="no longer decodes"):
        snapshotter.restore(Snapshot("account-1", 3, "BankAccount", 1, b"\x00garbage"))
    with pytest.raises(SnapshotDecodeError, match="version must be >= 1"):
        snapshotter.restore(Snapshot("account-1", 0, "BankAccount", 1, b"{}"))


def test_the_state_type_must_be_known() -> None:
    untyped = Decider(decide=_decide_nothing, evolve=_evolve_nothing, initial_state=None)
    with pytest.raises(ConfigurationError, match="pass SnapshotPolicy\\(state_type=...\\)"):
        Snapshotter(SnapshotPolicy(every=1), as_model(untyped))
    Snapshotter(SnapshotPolicy(every=1, state_type=dict[str, int]), as_model(untyped))

    class Plain(Aggregate):
        pass

    with pytest.raises(ConfigurationError, match="aggregates must be dataclasses"):
        Snapshotter(SnapshotPolicy(every=1), as_model(Plain))


def _decide_nothing(command: object, state: dict[str, int] | None) -> list[object]:
    return []


def _evolve_nothing(state: dict[str, int] | None, event: object) -> dict[str, int] | None:
    return state


# -- the property: snapshot + later events == full replay ----------------------------------

amounts = st.integers(min_value=1, max_value=10_000)
bank_events = st.lists(
    st.one_of(
        st.builds(AccountOpened, st.text(max_size=5), amounts),
        st.builds(MoneyDeposited, amounts, st.just("EUR"), st.text(max_size=5)),
        st.builds(MoneyWithdrawn, amounts, st.text(max_size=5)),
    ),
    max_size=30,
)
conference_events = st.lists(
    st.one_of(
        st.builds(ConferenceScheduled, st.text(max_size=5), st.integers(1, 100)),
        st.builds(SeatsReserved, st.sampled_from("abcde"), st.text(max_size=3), st.integers(1, 5)),
        st.builds(ReservationCancelled, st.sampled_from("abcde"), st.integers(1, 5)),
    ),
    max_size=30,
)


def _replay_with_snapshot(model: Any, events: list[Any], cut: int) -> Any:
    snapshotter = Snapshotter(SnapshotPolicy(every=1), model)
    before = model.initial()
    for event in events[:cut]:
        before = model.evolve(before, event)
    restored = snapshotter.restore(snapshotter.encode("s-1", max(cut, 1), before))
    for event in events[cut:]:
        restored = model.evolve(restored, event)
    return restored


def _replay(model: Any, events: list[Any]) -> Any:
    state = model.initial()
    for event in events:
        state = model.evolve(state, event)
    return state


@given(bank_events, st.data())
def test_an_aggregate_snapshot_then_later_events_equals_a_full_replay(events: list[Any], data: Any) -> None:
    cut = data.draw(st.integers(0, len(events)))
    model = as_model(BankAccount)
    assert _replay_with_snapshot(model, events, cut) == _replay(model, events)


@given(conference_events, st.data())
def test_a_decider_snapshot_then_later_events_equals_a_full_replay(events: list[Any], data: Any) -> None:
    cut = data.draw(st.integers(0, len(events)))
    model = as_model(conference_decider)
    assert _replay_with_snapshot(model, events, cut) == _replay(model, events)
