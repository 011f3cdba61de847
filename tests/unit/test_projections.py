"""Projections on the memory store: declaration, runner, failures, lag, rebuilds, inline."""

from __future__ import annotations

from typing import Any

import msgspec
import pytest

import chronik
from chronik import Checkpoint, EventRegistry, InvalidInputError, NewEvent, RecordedEvent
from chronik.errors import InvalidCheckpointError, is_transient
from chronik.projections import (
    CheckpointedTarget,
    DuplicateProjectionError,
    FailurePolicy,
    Projection,
    ProjectionConflictError,
    ProjectionFailedError,
    ProjectionRunner,
    Projections,
    ProjectionVersionError,
    ProjectionWarning,
    active_version,
    add_inline_projection,
    blue_green,
    projection_lag,
    remove_inline_projection,
)
from chronik.stores.memory import MemoryEventStore

Model = dict[str, Any]
FAST = FailurePolicy(retries=2, backoff=0.0)


def _store(registry: EventRegistry | None = None) -> MemoryEventStore:
    store = chronik.connect("memory://", registry=registry)
    assert isinstance(store, MemoryEventStore)
    return store


def _totals(version: int = 1) -> Projection[Model]:
    """Total per stream, idempotent by position."""

    def added(event: RecordedEvent, model: Model) -> None:
        key = f"v{version}:{event.stream_id}"
        last, total = model.get(key, (0, 0))
        if event.position > last:
            model[key] = (event.position, total + event.data["amount"])

    def setup(model: Model) -> None:
        model.setdefault("setups", 0)
        model["setups"] += 1

    def teardown(model: Model) -> None:
        for key in [k for k in model if k.startswith(f"v{version}:")]:
            del model[key]

    return Projection("totals", {"Added": added}, version=version, setup=setup, teardown=teardown)


def _view(model: Model, version: int = 1) -> dict[str, int]:
    prefix = f"v{version}:"
    return {k.removeprefix(prefix): v[1] for k, v in model.items() if k.startswith(prefix)}


def _add(store: MemoryEventStore, stream: str, *amounts: int) -> None:
    store.append(stream, [NewEvent("Added", {"amount": a}) for a in amounts])


# -- declaring projections -----------------------------------------------------------


def test_projection_is_a_validated_value() -> None:
    p = _totals()
    assert p.types == ("Added",)
    assert p.checkpoint_name == "projection:totals:v1"
    with pytest.raises(InvalidInputError):
        Projection("", {"A": lambda e, c: None})
    with pytest.raises(InvalidInputError):
        Projection("a:b", {"A": lambda e, c: None})
    with pytest.raises(InvalidInputError):
        Projection("x", {})
    with pytest.raises(InvalidInputError):
        Projection("x", {"A": lambda e, c: None}, version=0)
    with pytest.raises(InvalidInputError):
        Projection("x", {"A": 3})  # type: ignore[arg-type]
    with pytest.raises(InvalidInputError):
        Projection("x", {"A": lambda e, c: None}, categories="order")  # type: ignore[arg-type]


def test_duplicate_names_are_rejected() -> None:
    projections = Projections([_totals()])
    with pytest.raises(DuplicateProjectionError, match="'totals' is taken"):
        projections.add(_totals(version=2))
    with pytest.raises(DuplicateProjectionError):
        Projections([_totals(), _totals()])
    assert projections.names == ["totals"]
    assert "totals" in projections


# -- running -------------------------------------------------------------------------------


def test_catch_up_then_more_then_lag() -> None:
    store = _store()
    _add(store, "acc-1", 5, 7)
    _add(store, "acc-2", 1)
    model: Model = {}
    runner = ProjectionRunner(store, _totals(), CheckpointedTarget(model, store), batch_size=2)
    assert runner.run_until_caught_up() == 3
    assert _view(model) == {"acc-1": 12, "acc-2": 1}
    assert model["setups"] == 1
    assert runner.lag().events == 0
    state = runner.state()
    assert state is not None
    assert (state.status, state.active) == ("live", True)
    _add(store, "acc-2", 10, 20)
    lag = projection_lag(store, _totals(), CheckpointedTarget(model, store))
    assert (lag.events, lag.head) == (2, store.head())
    assert lag.seconds >= 0
    assert runner.run_until_caught_up() == 2
    assert _view(model) == {"acc-1": 12, "acc-2": 31}
    # A new runner resumes from the checkpoint: nothing twice, setup not again.
    assert ProjectionRunner(store, _totals(), CheckpointedTarget(model, store)).run_until_caught_up() == 0
    assert model["setups"] == 1


def test_filtered_events_move_the_checkpoint() -> None:
    store = _store()
    _add(store, "acc-1", 1)
    store.append("noise-1", [NewEvent("Other", {}) for _ in range(50)])
    model: Model = {}
    runner = ProjectionRunner(store, _totals(), CheckpointedTarget(model, store))
    runner.run_until_caught_up()
    assert runner.checkpoint == store.head()
    assert store.load_checkpoint("projection:totals:v1") == store.head()


def test_a_fallback_handles_every_type_without_a_handler_of_its_own() -> None:
    store = _store()
    _add(store, "acc-1", 1)
    store.append("acc-1", [NewEvent("Renamed", {"name": "x"})])
    store.append("noise-1", [NewEvent("Other", {})])
    seen: list[tuple[str, str]] = []

    def everything(event: RecordedEvent, model: Model) -> None:
        seen.append(("fallback", event.type))

    def added(event: RecordedEvent, model: Model) -> None:
        seen.append(("added", event.type))

    every = Projection("every", {"Added": added}, categories=("acc",), fallback=everything)
    assert (every.types, every.type_filter) == (("Added",), None)
    assert _totals().type_filter == ("Added",)
    ProjectionRunner(store, every, CheckpointedTarget({}, store)).run_until_caught_up()
    assert seen == [("added", "Added"), ("fallback", "Renamed")]  # noise-1 is another category
    only = Projection("only", {}, fallback=everything)
    seen.clear()
    ProjectionRunner(store, only, CheckpointedTarget({}, store)).run_until_caught_up()
    assert [t for _, t in seen] == ["Added", "Renamed", "Other"]
    with pytest.raises(InvalidInputError, match="fallback must be callable"):
        Projection("x", {}, fallback=3)  # type: ignore[arg-type]


def test_follow_live_on_a_thread() -> None:
    store = _store()
    _add(store, "acc-1", 1)
    model: Model = {}
    runner = ProjectionRunner(store, _totals(), CheckpointedTarget(model, store)).run_in_background()
    try:
        for i in range(20):
            _add(store, f"acc-{i % 3}", i)
        assert runner.wait_for(store.head(), timeout=60)
    finally:
        runner.stop(timeout=60)
    assert runner.error is None
    assert sum(_view(model).values()) == 1 + sum(range(20))


def test_handler_failure_stops_with_the_event_recorded(caplog: pytest.LogCaptureFixture) -> None:
    store = _store()
    _add(store, "acc-1", 1)
    _add(store, "acc-bad", 13)
    _add(store, "acc-2", 2)
    calls: list[int] = []

    def added(event: RecordedEvent, model: Model) -> None:
        calls.append(event.position)
        if event.data["amount"] == 13:
            raise ValueError("unlucky")
        model[event.stream_id] = event.data["amount"]

    model: Model = {}
    projection = Projection("fragile", {"Added": added})
    policy = FailurePolicy(retries=5, backoff=0.0)
    runner = ProjectionRunner(store, projection, CheckpointedTarget(model, store), policy=policy)
    with (
        caplog.at_level("WARNING", logger="chronik.projections"),
        pytest.raises(ProjectionFailedError) as caught,
    ):
        runner.run_until_caught_up()
    err = caught.value
    assert (err.stream_id, err.version, err.type, err.position, err.attempts) == ("acc-bad", 1, "Added", 2, 1)
    assert str(err).startswith("projection 'fragile' v1 stopped at stream 'acc-bad' version 1")
    assert "unlucky" in str(err)
    assert isinstance(err.__cause__, ValueError)
    # A bug fails the same way every time: tried once (in its batch), never waited for.
    assert calls.count(2) == 1
    assert not [r for r in caplog.records if "retrying" in r.getMessage()]
    # The checkpoint stays before the failing event; nothing after it was kept.
    assert store.load_checkpoint(projection.checkpoint_name) == Checkpoint("memory", (1,))
    state = runner.state()
    assert state is not None and state.status == "failed" and state.failure is not None
    assert (state.failure.stream_id, state.failure.version) == ("acc-bad", 1)
    # Fixed: the next run takes it from the failing event on.
    store.append("acc-bad", [NewEvent("Added", {"amount": 4})])
    fixed = Projection("fragile", {"Added": lambda e, m: m.__setitem__(e.stream_id, e.data["amount"])})
    ProjectionRunner(store, fixed, CheckpointedTarget(model, store)).run_until_caught_up()
    assert model == {"acc-1": 1, "acc-bad": 4, "acc-2": 2}
    state = store.projection_states("fragile")[0]
    assert (state.status, state.failure) == ("live", None)


@pytest.mark.parametrize(
    "error",
    [
        ConnectionError("connection reset"),
        TimeoutError("timed out"),
        chronik.OperationalError("the server is restarting", transient=True),
        chronik.RetriesExhaustedError("acc-1", 4, version=9, type="decider 'account'"),
    ],
    ids=lambda e: type(e).__name__,
)
def test_a_transient_failure_is_retried_and_then_succeeds(
    error: Exception, caplog: pytest.LogCaptureFixture
) -> None:
    store = _store()
    _add(store, "acc-1", 1)
    calls: list[int] = []

    def added(event: RecordedEvent, model: Model) -> None:
        calls.append(event.position)
        if len(calls) < 3:
            raise error
        model[event.stream_id] = event.data["amount"]

    model: Model = {}
    runner = ProjectionRunner(
        store, Projection("flaky", {"Added": added}), CheckpointedTarget(model, store), policy=FAST
    )
    with caplog.at_level("WARNING", logger="chronik.projections"):
        assert runner.run_until_caught_up() == 1
    assert model == {"acc-1": 1} and len(calls) == 3
    assert len([r for r in caplog.records if "retrying" in r.getMessage()]) == 2


@pytest.mark.parametrize(
    "error",
    [
        chronik.OperationalError('near "%": syntax error'),  # what SQLite calls an SQL error
        chronik.errors.EventDecodeError("no longer decodes", stream_id="acc-1", version=1, type="Added"),
        chronik.WrongExpectedVersionError("acc-1", 3, 4),
        KeyError("total"),
    ],
    ids=lambda e: type(e).__name__,
)
def test_an_error_retrying_cannot_fix_is_parked_after_one_attempt(error: Exception) -> None:
    store = _store()
    _add(store, "acc-1", 1)
    calls: list[int] = []

    def added(event: RecordedEvent, model: Model) -> None:
        calls.append(event.position)
        raise error

    policy = FailurePolicy(retries=5, backoff=0.0, on_failure="park")
    runner = ProjectionRunner(
        store, Projection("parked", {"Added": added}), CheckpointedTarget({}, store), policy=policy
    )
    runner.run_until_caught_up()
    [letter] = store.dead_letters("parked")
    assert letter.event.attempts == 1 and len(calls) == 1


def test_the_policy_says_which_errors_are_transient() -> None:
    store = _store()
    _add(store, "acc-1", 1)
    calls: list[int] = []

    class MailerDown(Exception):
        pass

    def added(event: RecordedEvent, model: Model) -> None:
        calls.append(event.position)
        if len(calls) == 1:
            raise MailerDown("503 from the mailer")
        # Raised from a transient error, an error of one's own is transient too.
        if len(calls) == 2:
            raise LookupError("no mailer") from ConnectionRefusedError("refused")

    policy = FailurePolicy(
        retries=2, backoff=0.0, transient=lambda e: isinstance(e, MailerDown) or is_transient(e)
    )
    runner = ProjectionRunner(
        store, Projection("mails", {"Added": added}), CheckpointedTarget({}, store), policy=policy
    )
    assert runner.run_until_caught_up() == 1
    assert len(calls) == 3
    with pytest.raises(InvalidInputError, match="transient must be a function"):
        FailurePolicy(transient=True)  # type: ignore[arg-type]


def test_park_policy_records_a_dead_letter_and_goes_on() -> None:
    store = _store()
    _add(store, "acc-1", 1)
    _add(store, "acc-bad", 13)
    _add(store, "acc-2", 2)

    def added(event: RecordedEvent, model: Model) -> None:
        if event.data["amount"] == 13:
            raise KeyError("no such account")
        model[event.stream_id] = event.data["amount"]

    model: Model = {}
    projection = Projection("parking", {"Added": added})
    policy = FailurePolicy(retries=1, backoff=0.0, on_failure="park")
    runner = ProjectionRunner(store, projection, CheckpointedTarget(model, store), policy=policy)
    runner.run_until_caught_up()
    assert model == {"acc-1": 1, "acc-2": 2}
    assert runner.parked == 1
    [letter] = store.dead_letters("parking")
    assert (letter.event.stream_id, letter.event.version, letter.event.type) == ("acc-bad", 1, "Added")
    assert letter.event.attempts == 1  # a KeyError is a bug: not retried
    assert "KeyError" in letter.event.error
    assert runner.checkpoint == store.head()


def test_an_event_that_no_longer_decodes_is_reported_not_skipped() -> None:
    registry = EventRegistry()
    store = _store(registry)
    # Stored before this code registered the type (writes are checked against the
    # registered type, so only an older writer can have stored this).
    store.append("acc-1", [NewEvent("Added", {"amount": "lots"})])

    @registry.event("Added")
    class Added(msgspec.Struct, frozen=True):
        amount: int

    projection = Projection("strict", {"Added": lambda e, m: m.update(total=e.data.amount)})
    runner = ProjectionRunner(
        store, projection, CheckpointedTarget({}, store), policy=FailurePolicy(retries=0)
    )
    with pytest.raises(ProjectionFailedError, match=r"stream 'acc-1' version 1 \(type 'Added'") as caught:
        runner.run_until_caught_up()
    assert isinstance(caught.value.__cause__, chronik.DecodeError)


def test_unknown_type_warns_at_start() -> None:
    store = _store()
    _add(store, "acc-1", 1)
    projection = Projection("typo", {"Added": lambda e, m: None, "Addded": lambda e, m: None})
    with pytest.warns(ProjectionWarning, match="'Addded'"):
        ProjectionRunner(store, projection, CheckpointedTarget({}, store)).run_until_caught_up()


def test_checkpoint_from_another_store_is_a_clear_error() -> None:
    store = _store()
    _add(store, "acc-1", 1)
    store.save_checkpoint("projection:totals:v1", Checkpoint("memory", (1,)))
    store._log.checkpoints["projection:totals:v1"] = Checkpoint("sqlite", (1,))
    runner = ProjectionRunner(store, _totals(), CheckpointedTarget({}, store))
    with pytest.raises(
        InvalidCheckpointError, match="projection 'totals' v1: its stored checkpoint sqlite:1"
    ):
        runner.run_until_caught_up()
    store._log.checkpoints["projection:totals:v1"] = Checkpoint("memory", (99,))
    with pytest.raises(InvalidCheckpointError, match="ahead of this store's head"):
        runner.run_until_caught_up()


def test_code_older_than_the_store_is_refused() -> None:
    store = _store()
    _add(store, "acc-1", 1)
    model: Model = {}
    v1, v2 = _totals(1), _totals(2)
    ProjectionRunner(store, v1, CheckpointedTarget(model, store)).run_until_caught_up()
    blue_green(store, v1, v2, CheckpointedTarget(model, store))
    assert active_version(store, "totals") == 2
    with pytest.raises(ProjectionVersionError, match="'totals' v1 was replaced by v2"):
        ProjectionRunner(store, v1, CheckpointedTarget(model, store)).run_until_caught_up()


def test_blue_green_builds_beside_the_old_version() -> None:
    store = _store()
    _add(store, "acc-1", 1, 2)
    model: Model = {}
    v1, v2 = _totals(1), _totals(2)
    old = ProjectionRunner(store, v1, CheckpointedTarget(model, store))
    old.run_until_caught_up()
    _add(store, "acc-2", 5)
    new = ProjectionRunner(store, v2, CheckpointedTarget(model, store))
    new.run_until_caught_up()
    # Built, but v1 still serves until the switch.
    states = {s.version: s for s in store.projection_states("totals")}
    assert (states[1].active, states[2].active, states[2].status) == (True, False, "live")
    assert _view(model, 2) == {"acc-1": 3, "acc-2": 5}
    new.activate(retire=v1)
    states = {s.version: s for s in store.projection_states("totals")}
    assert (states[1].active, states[1].status, states[2].active) == (False, "retired", True)
    assert _view(model, 1) == {}  # torn down
    assert store.load_checkpoint(v1.checkpoint_name) is None


def test_reset_and_rebuild_one_projection_only() -> None:
    store = _store()
    _add(store, "acc-1", 1, 2)
    model: Model = {}
    other: dict[int, int] = {}
    runner = ProjectionRunner(store, _totals(), CheckpointedTarget(model, store))
    runner.run_until_caught_up()
    bystander = Projection("count", {"Added": lambda e, m: m.__setitem__(e.position, 1)})
    ProjectionRunner(store, bystander, CheckpointedTarget(other, store)).run_until_caught_up()
    model["v1:acc-1"] = (2, 1000)  # corrupted read model
    assert runner.rebuild() == 2
    assert _view(model) == {"acc-1": 3}
    assert model["setups"] == 2
    assert store.load_checkpoint(bystander.checkpoint_name) == store.head()
    assert other == {1: 1, 2: 1}


def test_a_second_runner_cannot_apply_a_batch_twice() -> None:
    store = _store()
    _add(store, "acc-1", 1)
    model: Model = {}
    projection = _totals()
    first = ProjectionRunner(store, projection, CheckpointedTarget(model, store))
    first.run_until_caught_up()
    second = ProjectionRunner(store, projection, CheckpointedTarget(model, store))
    second.run_until_caught_up()
    _add(store, "acc-1", 2)
    first.run_until_caught_up()
    # ``second`` believes it is at the old checkpoint: its guard sees the stored one moved.
    with pytest.raises(ProjectionConflictError), second.target.unit() as unit:
        second._guard(unit)
    assert second.run_until_caught_up() == 0  # resumes from where ``first`` got to
    assert _view(model) == {"acc-1": 3}


def test_park_needs_a_store_that_keeps_dead_letters() -> None:
    inner = _store()

    class Bare:
        """A subscribable store without projection bookkeeping."""

        is_async = False
        codec = inner.codec
        head = inner.head
        log_reader = inner.log_reader
        subscribe = inner.subscribe

    with pytest.raises(chronik.ConfigurationError, match="cannot keep dead letters"):
        ProjectionRunner(
            Bare(),  # type: ignore[arg-type]
            _totals(),
            CheckpointedTarget({}, inner),
            policy=FailurePolicy(on_failure="park"),
        )
    with pytest.raises(chronik.ConfigurationError, match="is not a chronik store"):
        ProjectionRunner(object(), _totals(), CheckpointedTarget({}, inner))  # type: ignore[arg-type]


# -- inline projections ------------------------------------------------------------------


def test_inline_projection_is_never_behind() -> None:
    store = _store()
    _add(store, "acc-1", 1)
    model: Model = {}
    projection = _totals()
    add_inline_projection(store, projection, model)
    assert _view(model) == {"acc-1": 1}  # caught up on install
    _add(store, "acc-1", 2)
    assert _view(model) == {"acc-1": 3}  # in the append itself
    assert store.load_checkpoint(projection.checkpoint_name) == store.head()
    assert projection_lag(store, projection, CheckpointedTarget(model, store)).events == 0
    remove_inline_projection(store, projection)
    _add(store, "acc-1", 4)
    assert _view(model) == {"acc-1": 3}


def test_inline_handler_failure_fails_the_append() -> None:
    store = _store()

    def added(event: RecordedEvent, model: Model) -> None:
        if event.data["amount"] < 0:
            raise ValueError("negative")
        model[event.stream_id] = model.get(event.stream_id, 0) + event.data["amount"]

    model: Model = {}
    add_inline_projection(store, Projection("strict", {"Added": added}), model)
    _add(store, "acc-1", 5)
    with pytest.raises(ProjectionFailedError, match="stream 'acc-1' version 2"):
        _add(store, "acc-1", -1)
    assert store.stream_info("acc-1").version == 1  # nothing was written
    assert model == {"acc-1": 5}
    _add(store, "acc-1", 1)
    assert model == {"acc-1": 6}
    assert [e.version for e in store.read_stream("acc-1")] == [1, 2]


def test_an_asyncio_store_is_refused_clearly() -> None:
    store = chronik.connect_async("memory://")
    projection = Projection("counts", {"Placed": lambda event, tx: None})
    with pytest.raises(chronik.ConfigurationError, match="asyncio store: use AsyncProjectionRunner"):
        ProjectionRunner(store, projection)  # type: ignore[arg-type]
    with pytest.raises(chronik.ConfigurationError, match="asyncio store: use add_inline_projection_async"):
        add_inline_projection(store, projection)


def test_a_coroutine_handler_is_refused_by_the_sync_runner() -> None:
    store = _store()
    _add(store, "acc-1", 1)

    async def added(event: RecordedEvent, model: Model) -> None:
        model[event.stream_id] = event.data["amount"]

    model: Model = {}
    runner = ProjectionRunner(store, Projection("coro", {"Added": added}), CheckpointedTarget(model, store))
    with pytest.raises(chronik.ConfigurationError, match=r"Projection\('coro'.*the handler of 'Added'"):
        runner.run_until_caught_up()
    assert model == {}
    assert store.load_checkpoint("projection:coro:v1") is None  # not taken as handled
    with pytest.raises(chronik.ConfigurationError, match="the handler of 'Added'"):
        add_inline_projection(store, Projection("coro", {"Added": added}))
