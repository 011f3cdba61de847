"""The command handler on real stores: decide, append, retry, metadata, idempotency, bad input."""

from __future__ import annotations

import pickle
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import msgspec
import pytest

import chronik
from chronik import (
    Aggregate,
    AsyncCommandHandler,
    CommandHandler,
    ConfigurationError,
    Decider,
    EventRegistry,
    InvalidInputError,
    NewEvent,
    RetriesExhaustedError,
    SnapshotPolicy,
    StreamNotFoundError,
    WrongExpectedVersionError,
    applies,
)
from chronik.errors import NotAnEventError, UnhandledEventError, WrongCategoryError
from chronik.stores.sqlite import SQLiteEventStore

from ._support import App

registry = EventRegistry()


@registry.event("Incremented")
class Incremented(msgspec.Struct, frozen=True):
    by: int


@registry.event("Reset")
class Reset(msgspec.Struct, frozen=True):
    pass


class NotRegistered(msgspec.Struct, frozen=True):
    pass


class Increment(msgspec.Struct, frozen=True):
    by: int


class Decide(msgspec.Struct, frozen=True):
    """Decide whatever ``returns`` holds, as it is."""

    returns: Any


def decide(command: Increment | Decide, total: int) -> list[object]:
    if isinstance(command, Decide):
        result: list[object] = command.returns
        return result
    return [Incremented(command.by)] if command.by else []


def evolve(total: int, event: object) -> int:
    return 0 if isinstance(event, Reset) else total + getattr(event, "by", 0)


counter = Decider(decide=decide, evolve=evolve, initial_state=0, category="counter")


@dataclass
class Counter(Aggregate):
    category = "counter"
    total: int = 0

    def increment(self, by: int) -> None:
        if by:
            self.record(Incremented(by))

    @applies(Incremented)
    def _incremented(self, event: Incremented) -> None:
        self.total += event.by


Open = Callable[[EventRegistry], App]


@pytest.fixture
def app(open_app: Open) -> App:
    return open_app(registry)


def _total(state: Any) -> int:
    return state.total if isinstance(state, Counter) else int(state)


MODELS: list[tuple[str, Any, Callable[[int], Any]]] = [
    ("decider", counter, lambda by: Increment(by)),
    ("aggregate", Counter, lambda by: lambda c: c.increment(by)),
]


@pytest.fixture(params=MODELS, ids=[m[0] for m in MODELS])
def model(request: pytest.FixtureRequest) -> tuple[Any, Callable[[int], Any]]:
    return request.param[1], request.param[2]


def test_a_command_appends_what_it_decides(app: App, model: tuple[Any, Callable[[int], Any]]) -> None:
    definition, increment = model
    handler = app.handler(definition)
    first = handler.handle("counter-1", increment(2))
    second = handler.handle("counter-1", increment(3))
    assert (first.version, first.events, first.attempts, first.appended) == (1, (Incremented(2),), 1, True)
    assert (second.version, _total(second.state)) == (2, 5)
    assert second.position is not None and second.checkpoint is not None
    assert [e.data for e in app.store.read_stream("counter-1")] == [Incremented(2), Incremented(3)]
    if isinstance(second.state, Counter):
        assert (second.state.version, second.state.pending_events) == (2, [])
    assert _total(handler.load("counter-1").state) == 5


def test_a_command_that_decides_nothing_appends_nothing(app: App, model: tuple[Any, Any]) -> None:
    definition, increment = model
    handler = app.handler(definition)
    handler.handle("counter-1", increment(2))
    result = handler.handle("counter-1", increment(0))
    assert (result.version, result.events, result.appended, result.position) == (1, (), False, None)
    assert app.store.stream_info("counter-1").version == 1
    nothing = handler.handle("counter-2", increment(0))
    assert nothing.version == 0
    assert not app.store.stream_info("counter-2").exists


def _interfering(app: App, times: int) -> tuple[Decider[Any, Any, int], list[int]]:
    """A counter whose first ``times`` decisions each let another writer append first."""
    decisions: list[int] = []

    def decide_while_another_writer_appends(command: Increment, total: int) -> list[Incremented]:
        decisions.append(total)
        if len(decisions) <= times:
            app.store.append("counter-1", [Incremented(100)])
        return [Incremented(command.by)]

    return Decider(decide_while_another_writer_appends, evolve, 0, category="counter"), decisions


def test_a_conflict_reloads_and_decides_again(app: App) -> None:
    racy, decisions = _interfering(app, times=2)
    handler = app.handler(racy, retries=2)
    result = handler.handle("counter-1", Increment(1))
    assert result.attempts == 3
    assert decisions == [0, 100, 200]  # each attempt decided on what was there then
    assert (result.version, result.state) == (3, 201)
    assert [e.data.by for e in app.store.read_stream("counter-1")] == [100, 100, 1]


def test_retries_are_bounded(app: App) -> None:
    racy, decisions = _interfering(app, times=99)
    handler = app.handler(racy, retries=2)
    with pytest.raises(RetriesExhaustedError) as info:
        handler.handle("counter-1", Increment(1))
    err = info.value
    assert (err.stream_id, err.attempts, err.version, err.type) == ("counter-1", 3, 3, "decider 'counter'")
    assert isinstance(err.__cause__, WrongExpectedVersionError)
    assert "still conflicted with other writers after 3 attempts" in str(err)
    assert len(decisions) == 3
    assert [e.data.by for e in app.store.read_stream("counter-1")] == [100, 100, 100]  # none of ours


def test_with_no_retries_the_first_conflict_fails(app: App) -> None:
    racy, _ = _interfering(app, times=1)
    with pytest.raises(RetriesExhaustedError, match="after 1 attempt "):
        app.handler(racy, retries=0).handle("counter-1", Increment(1))


# -- metadata ------------------------------------------------------------------------------


def test_metadata_is_stamped_on_every_event_with_causation_and_correlation(app: App) -> None:
    handler = app.handler(counter)
    handler.handle(
        "counter-1",
        Decide([Incremented(1), Incremented(2)]),
        command_id="cmd-1",
        metadata={"user": "ada", "tenant": "acme"},
    )
    metas = [e.metadata for e in app.store.read_stream("counter-1")]
    assert (
        metas == [{"user": "ada", "tenant": "acme", "correlation_id": "cmd-1", "causation_id": "cmd-1"}] * 2
    )


def test_a_given_correlation_id_is_kept_and_a_command_gets_an_id_when_it_has_none(app: App) -> None:
    handler = app.handler(counter)
    handler.handle("counter-1", Increment(1), metadata={"correlation_id": "req-9"})
    handler.handle("counter-1", Increment(1))
    first, second = (e.metadata for e in app.store.read_stream("counter-1"))
    assert first["correlation_id"] == "req-9"
    assert first["causation_id"] not in ("req-9", second["causation_id"])
    assert second["correlation_id"] == second["causation_id"]


def test_a_reaction_carries_the_correlation_id_forward(app: App) -> None:
    handler = app.handler(counter)
    handler.handle("counter-1", Increment(1), metadata={"correlation_id": "req-1"})
    cause = app.store.read_stream("counter-1")[0]
    handler.handle("counter-2", Increment(5), caused_by=cause, metadata={"user": "process-manager"})
    reaction = app.store.read_stream("counter-2")[0].metadata
    assert reaction == {
        "user": "process-manager",
        "correlation_id": "req-1",
        "causation_id": str(cause.event_id),
    }


def test_a_reaction_to_the_same_event_acts_once(app: App) -> None:
    handler = app.handler(counter)
    handler.handle("counter-1", Increment(1))
    cause = app.store.read_stream("counter-1")[0]
    handler.handle("counter-2", Increment(5), caused_by=cause)
    again = handler.handle("counter-2", Increment(5), caused_by=cause)
    assert again.already_handled
    assert app.store.stream_info("counter-2").version == 1


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"metadata": {"causation_id": "x"}}, "must not set causation_id"),
        ({"metadata": ["user"]}, "metadata must be a mapping"),
        ({"metadata": {1: "x"}}, "keys must be strings"),
        ({"command_id": ""}, "command_id must be a non-empty str or a UUID"),
        ({"caused_by": "event-1"}, "caused_by takes a RecordedEvent"),
    ],
)
def test_bad_command_options_are_refused_before_anything_is_written(
    app: App, options: dict[str, Any], message: str
) -> None:
    with pytest.raises(InvalidInputError, match=message):
        app.handler(counter).handle("counter-1", Increment(1), **options)
    assert not app.store.stream_info("counter-1").exists


# -- idempotent commands --------------------------------------------------------------------


def test_a_command_id_is_applied_once_per_stream(app: App, model: tuple[Any, Any]) -> None:
    definition, increment = model
    handler = app.handler(definition)
    first = handler.handle("counter-1", increment(2), command_id="req-1")
    again = handler.handle("counter-1", increment(2), command_id="req-1")
    assert (again.already_handled, again.appended, again.events, again.version) == (
        True,
        False,
        first.events,
        1,
    )
    assert _total(again.state) == 2
    other = handler.handle("counter-2", increment(2), command_id="req-1")  # another stream: applied
    assert other.appended
    assert app.store.stream_info("counter-1").version == 1


def test_a_command_id_handled_before_the_snapshot_is_still_applied_once(
    app: App, model: tuple[Any, Any]
) -> None:
    definition, increment = model
    handler = app.handler(definition, snapshots=SnapshotPolicy(every=1))
    handler.handle("counter-1", increment(2), command_id="req-1")
    handler.handle("counter-1", increment(3))
    assert handler.load("counter-1").snapshot_version == 2  # req-1's event is behind the snapshot
    again = handler.handle("counter-1", increment(2), command_id="req-1")
    assert (again.already_handled, again.version, _total(again.state)) == (True, 2, 5)
    assert app.store.stream_info("counter-1").version == 2


def test_start_creates_a_stream_without_reading_it(app: App, model: tuple[Any, Any]) -> None:
    definition, increment = model
    handler = app.handler(definition)
    started = handler.start("counter-1", increment(2), metadata={"user": "ada"})
    assert (started.version, started.events, started.appended, _total(started.state)) == (
        1,
        (Incremented(2),),
        True,
        2,
    )
    assert started.position is not None and started.checkpoint is not None
    [stored] = app.store.read_stream("counter-1")
    assert stored.data == Incremented(2)
    assert stored.metadata["user"] == "ada" and stored.metadata["causation_id"]
    if isinstance(started.state, Counter):
        assert (started.state.version, started.state.pending_events) == (1, [])
    later = handler.handle("counter-1", increment(3))  # an ordinary command goes on from it
    assert (later.version, _total(later.state)) == (2, 5)


def test_start_on_a_stream_that_exists_fails_and_appends_nothing(app: App, model: tuple[Any, Any]) -> None:
    definition, increment = model
    handler = app.handler(definition)
    handler.handle("counter-1", increment(2))
    with pytest.raises(WrongExpectedVersionError) as caught:
        handler.start("counter-1", increment(5))
    assert (caught.value.stream_id, caught.value.expected, caught.value.actual) == (
        "counter-1",
        chronik.NO_STREAM,
        1,
    )
    assert [e.data for e in app.store.read_stream("counter-1")] == [Incremented(2)]


def test_start_that_decides_nothing_writes_nothing(app: App, model: tuple[Any, Any]) -> None:
    definition, increment = model
    result = app.handler(definition).start("counter-1", increment(0))
    assert (result.version, result.events, result.appended, result.position) == (0, (), False, None)
    assert not app.store.stream_info("counter-1").exists


def test_start_re_sent_with_its_command_id_writes_once(app: App, model: tuple[Any, Any]) -> None:
    definition, increment = model
    handler = app.handler(definition)
    first = handler.start("counter-1", increment(2), command_id="open-1")
    again = handler.start("counter-1", increment(2), command_id="open-1")
    assert (again.version, again.position) == (first.version, first.position)
    assert app.store.stream_info("counter-1").version == 1
    with pytest.raises(WrongExpectedVersionError):
        handler.start("counter-1", increment(2), command_id="open-2")


def test_start_takes_a_snapshot_when_the_policy_says_so(app: App, model: tuple[Any, Any]) -> None:
    definition, increment = model
    handler = app.handler(definition, snapshots=SnapshotPolicy(every=1))
    assert handler.start("counter-1", increment(4)).snapshot_saved
    loaded = handler.load("counter-1")
    assert (loaded.snapshot_version, _total(loaded.state)) == (1, 4)


def test_start_refuses_bad_input_before_any_io(app: App, model: tuple[Any, Any]) -> None:
    definition, increment = model
    handler = app.handler(definition)
    with pytest.raises(WrongCategoryError):
        handler.start("other-1", increment(1))
    with pytest.raises(InvalidInputError):
        handler.start("counter-1", increment(1), metadata={"causation_id": "x"})
    assert list(app.store.read_all()) == []


def test_a_later_payload_that_no_longer_decodes_is_named_by_the_fold(tmp_path: Path) -> None:
    # The fold decodes events of a type it has seen by itself; a broken payload
    # after good ones of the same type must still be named, not passed over.
    store = SQLiteEventStore(str(tmp_path / "broken.db"), registry)
    try:
        handler = CommandHandler(store, counter)
        for by in (1, 2, 3):
            handler.handle("counter-1", Increment(by))
        store._conn().execute('UPDATE chronik_events SET data = \'{"by": "two"}\' WHERE version = 2')
        with pytest.raises(chronik.EventDecodeError, match="'Incremented' at 'counter-1' version 2"):
            handler.load("counter-1")
    finally:
        store.close()


# -- bad input ---------------------------------------------------------------------------------


def test_a_command_for_a_stream_of_another_category_is_refused_before_any_io(
    app: App, model: tuple[Any, Any]
) -> None:
    definition, increment = model
    handler = app.handler(definition)
    with pytest.raises(WrongCategoryError) as info:
        handler.handle("account-1", increment(1))
    assert (info.value.stream_id, info.value.category, info.value.expected) == (
        "account-1",
        "account",
        "counter",
    )
    assert "stream 'account-1' is in category 'account'" in str(info.value)
    with pytest.raises(WrongCategoryError):
        handler.load("account-1")
    assert app.store.head() is None


@pytest.mark.parametrize(
    ("returns", "message"),
    [
        (None, "must decide a list of events for stream 'counter-1' at version 1, not a NoneType"),
        (Incremented(1), r"wrap the event in a list: \[Incremented\(by=1\)\]"),
        ([Incremented(1), 42], "event 2 is 42, a int, which is not an event"),
        ([NotRegistered()], "of type NotRegistered, which is not registered"),
        ([NewEvent("Incremented", {"by": 1})], "event 1 is a NewEvent; return the event object itself"),
    ],
)
def test_a_decision_that_is_not_a_list_of_events_writes_nothing(app: App, returns: Any, message: str) -> None:
    handler = app.handler(counter)
    handler.handle("counter-1", Increment(1))
    with pytest.raises(NotAnEventError, match=message) as info:
        handler.handle("counter-1", Decide(returns))
    assert (info.value.stream_id, info.value.version) == ("counter-1", 1)
    assert app.store.stream_info("counter-1").version == 1


def test_an_aggregate_without_a_handler_for_a_stored_event_names_it(app: App) -> None:
    app.store.append("counter-1", [Incremented(1), Reset()])
    with pytest.raises(UnhandledEventError) as info:
        app.handler(Counter).handle("counter-1", lambda c: c.increment(1))
    err = info.value
    assert (err.stream_id, err.version, err.type) == ("counter-1", 2, "Reset")
    assert (
        "stream 'counter-1' version 2 holds an event of type 'Reset' (Reset) that aggregate Counter"
        in str(err)
    )
    assert app.store.stream_info("counter-1").version == 2


def test_a_stored_event_of_an_unregistered_type_names_it(app: App, model: tuple[Any, Any]) -> None:
    definition, increment = model
    app.store.append("counter-1", [Incremented(1), NewEvent("Exploded", {"how": "loudly"})])
    with pytest.raises(
        UnhandledEventError, match="version 2 holds an event of type 'Exploded'.*not registered"
    ):
        app.handler(definition).handle("counter-1", increment(1))


def test_an_aggregate_command_must_be_a_function_of_the_aggregate(app: App) -> None:
    with pytest.raises(InvalidInputError, match="a function that takes the aggregate"):
        app.handler(Counter).handle("counter-1", Increment(1))


def test_handlers_check_their_store_and_options(app: App) -> None:
    sync_store = chronik.connect("memory://", registry=registry)
    async_store = chronik.connect_async("memory://", registry=registry)
    with pytest.raises(ConfigurationError, match="use AsyncCommandHandler"):
        CommandHandler(async_store, counter)  # type: ignore[call-overload]
    with pytest.raises(ConfigurationError, match="needs an asyncio store"):
        AsyncCommandHandler(sync_store, counter)  # type: ignore[call-overload]
    with pytest.raises(ConfigurationError, match="retries must be an int >= 0"):
        CommandHandler(sync_store, counter, retries=-1)
    assert "decider 'counter'" in repr(CommandHandler(sync_store, counter))


def test_an_aggregate_recording_an_unregistered_event_writes_nothing(app: App) -> None:
    class Sloppy(Counter):
        @applies(NotRegistered)
        def _noted(self, event: NotRegistered) -> None:
            pass

    with pytest.raises(
        NotAnEventError, match="aggregate .*Sloppy recorded 1 event for stream 'counter-1' at"
    ):
        app.handler(Sloppy).handle("counter-1", lambda c: c.record(NotRegistered()))
    assert not app.store.stream_info("counter-1").exists


# -- commands that need their stream, or a version the caller saw ---------------------


def test_a_command_that_needs_its_stream_fails_on_none_and_appends_nothing(
    app: App, model: tuple[Any, Callable[[int], Any]]
) -> None:
    definition, increment = model
    handler = app.handler(definition)
    with pytest.raises(StreamNotFoundError, match="'counter-1' does not exist") as caught:
        handler.handle("counter-1", increment(2), expected_version=chronik.STREAM_EXISTS)
    assert isinstance(caught.value, WrongExpectedVersionError)
    assert (caught.value.stream_id, caught.value.expected, caught.value.actual) == (
        "counter-1",
        chronik.STREAM_EXISTS,
        0,
    )
    assert str(pickle.loads(pickle.dumps(caught.value))) == str(caught.value)
    assert not app.store.stream_info("counter-1").exists
    handler.handle("counter-1", increment(2))  # by default a new stream starts from scratch
    done = handler.handle("counter-1", increment(3), expected_version=chronik.STREAM_EXISTS)
    assert (done.version, _total(done.state)) == (2, 5)


def test_a_command_at_a_version_the_caller_saw_is_not_retried_when_it_moved(
    app: App, model: tuple[Any, Callable[[int], Any]]
) -> None:
    definition, increment = model
    handler = app.handler(definition)
    handler.handle("counter-1", increment(1))
    seen = handler.handle("counter-1", increment(1)).version  # what a client read: 2
    handler.handle("counter-1", increment(1))  # someone else moved it on to 3
    with pytest.raises(WrongExpectedVersionError) as caught:
        handler.handle("counter-1", increment(10), expected_version=seen)
    assert (caught.value.expected, caught.value.actual) == (2, 3)
    assert app.store.stream_info("counter-1").version == 3
    assert handler.handle("counter-1", increment(10), expected_version=3).version == 4
    with pytest.raises(InvalidInputError, match="expected version"):
        handler.handle("counter-1", increment(1), expected_version=-1)
