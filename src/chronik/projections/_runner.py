"""The projection runner: catch up from the checkpoint, then follow live.

Each batch of events is one *unit* of the target: the handlers' writes and the
checkpoint after the batch. On a transactional target (a read model in the event
store's database) that is one transaction, so a crash anywhere neither loses nor
doubles an effect; elsewhere the checkpoint follows the writes (at-least-once).

Inside each unit the runner first checks that the stored checkpoint is still the
one it started the batch from. A second runner of the same projection (another
process, a deploy overlap) that got there first makes the check fail and the batch
roll back, instead of applying it twice.

When a handler raises, the batch is abandoned and its events are taken again one
at a time, retrying the failing one with exponential backoff. If it still fails,
the policy decides: ``stop`` records the failure (stream, version, type, error) in
the projection's state and raises :class:`ProjectionFailedError`, leaving the
checkpoint before the event; ``park`` records a dead letter in the same unit as the
checkpoint that moves past it, and goes on. Either way the event is accounted for.
"""

from __future__ import annotations

import logging
import threading
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Generic, Literal, TypeVar

import msgspec

from chronik.errors import ConfigurationError, InvalidCheckpointError, InvalidInputError
from chronik.events import (
    Checkpoint,
    DeadLetter,
    FailedEvent,
    ProjectionState,
    ProjectionStatus,
    RecordedEvent,
)
from chronik.projections._declare import Projection
from chronik.projections._targets import ProjectionTarget, TransactionalTarget, Unit
from chronik.projections.errors import (
    ProjectionConflictError,
    ProjectionFailedError,
    ProjectionVersionError,
    ProjectionWarning,
)
from chronik.store import EventStore, LogReader, ProjectionStateStore, Subscribable, Transactional, is_async
from chronik.subscriptions import DEFAULT_BATCH_SIZE, Partition, Subscription, validate_batch_size

__all__ = [
    "FailurePolicy",
    "Lag",
    "ProjectionRunner",
    "active_version",
    "blue_green",
    "checkpoint_name",
    "projection_lag",
]

C = TypeVar("C")
logger = logging.getLogger("chronik.projections")


@dataclass(frozen=True)
class FailurePolicy:
    """What a runner does when a handler raises.

    The event is tried ``1 + retries`` times, waiting ``backoff`` seconds before the
    first retry and twice as long before each next one (at most ``max_backoff``).
    Then ``on_failure="stop"`` stops the projection on the event, or ``"park"``
    records it as a dead letter and goes on.
    """

    retries: int = 3
    backoff: float = 0.1
    max_backoff: float = 10.0
    on_failure: Literal["stop", "park"] = "stop"

    def __post_init__(self) -> None:
        if isinstance(self.retries, bool) or not isinstance(self.retries, int) or self.retries < 0:
            raise InvalidInputError(f"retries must be an int >= 0, got {self.retries!r}")
        if self.backoff < 0 or self.max_backoff < 0:
            raise InvalidInputError("backoff and max_backoff must be >= 0")
        if self.on_failure not in ("stop", "park"):
            raise InvalidInputError(f"on_failure must be 'stop' or 'park', got {self.on_failure!r}")


class Lag(msgspec.Struct, frozen=True):
    """How far a projection is behind the log: ``events`` not yet handled (of the types
    it handles) and ``seconds`` since the oldest of them was recorded (0 when none)."""

    events: int
    seconds: float
    checkpoint: Checkpoint | None
    head: Checkpoint | None


def checkpoint_name(projection: Projection[Any], partition: Partition | None = None) -> str:
    """``projection:<name>:v<version>``, plus ``:p<index>of<count>`` for a group member."""
    name = projection.checkpoint_name
    return name if partition is None else f"{name}:p{partition}"


def _subscribable(store: object) -> Subscribable:
    if not isinstance(store, Subscribable):
        raise ConfigurationError(f"{store!r} cannot run projections: it does not support subscriptions")
    return store


def projection_lag(
    store: EventStore,
    projection: Projection[Any],
    target: ProjectionTarget[Any] | None = None,
    *,
    partition: Partition | None = None,
) -> Lag:
    """The lag of ``projection`` as its stored checkpoint says; works without a runner."""
    target = target if target is not None else _default_target(store)
    checkpoint = target.load_checkpoint(checkpoint_name(projection, partition))
    reader = _subscribable(store).log_reader()
    try:
        return _lag(reader, store, projection, checkpoint, partition)
    finally:
        reader.close()


def _lag(
    reader: LogReader,
    store: EventStore,
    projection: Projection[Any],
    checkpoint: Checkpoint | None,
    partition: Partition | None,
) -> Lag:
    head = store.head()
    cats, kinds = projection.categories, projection.types
    oldest: RecordedEvent | None = None
    if partition is None:
        events = reader.count_events(checkpoint, cats, kinds)
        after = checkpoint
        while events and oldest is None:
            page = reader.read_page(after, DEFAULT_BATCH_SIZE, cats, kinds)
            oldest = page.events[0] if page.events else None
            if page.checkpoint == after:
                break
            after = page.checkpoint
    else:
        events, after = 0, checkpoint
        while True:
            page = reader.read_page(after, DEFAULT_BATCH_SIZE, cats, kinds)
            owned = [e for e in page.events if partition.owns(e.stream_id)]
            events += len(owned)
            if oldest is None and owned:
                oldest = owned[0]
            if page.checkpoint == after:
                break
            after = page.checkpoint
    seconds = 0.0
    if oldest is not None:
        seconds = max(0.0, (datetime.now(UTC) - oldest.recorded_at).total_seconds())
    return Lag(events, seconds, checkpoint, head)


def _default_target(store: object) -> ProjectionTarget[Any]:
    if isinstance(store, Transactional):
        return TransactionalTarget(store)
    raise ConfigurationError(
        f"{store!r} has no transactions to keep a read model in: pass target=CheckpointedTarget(...)"
    )


class _HandlerFailed(Exception):
    def __init__(self, event: RecordedEvent) -> None:
        self.event = event


class _Stopped(Exception):
    pass


class ProjectionRunner(Generic[C]):
    """Feeds one projection from a subscription and stores its checkpoint.

    ``target`` defaults to a :class:`TransactionalTarget` on ``store`` (a read model
    in the same database). ``partition`` makes the runner one member of a consumer
    group with a checkpoint of its own.

    Run it in the foreground (:meth:`run_until_caught_up`, :meth:`run`) or on a
    thread of its own (:meth:`start`, :meth:`stop`).
    """

    def __init__(
        self,
        store: EventStore,
        projection: Projection[C],
        target: ProjectionTarget[C] | None = None,
        *,
        policy: FailurePolicy | None = None,
        batch_size: int = DEFAULT_BATCH_SIZE,
        partition: Partition | None = None,
        idle_timeout: float = 1.0,
        warn_unknown_types: bool = True,
        on_progress: Callable[[ProjectionRunner[C]], None] | None = None,
    ) -> None:
        if not isinstance(projection, Projection):
            raise InvalidInputError(f"expected a Projection, got {type(projection).__name__}")
        require_sync_store(store, "ProjectionRunner")
        self.store = store
        self._subscribable = _subscribable(store)
        self.projection = projection
        self.target: ProjectionTarget[C] = target if target is not None else _default_target(store)
        self.policy = policy if policy is not None else FailurePolicy()
        self.batch_size = validate_batch_size(batch_size)
        self.partition = partition
        self.idle_timeout = idle_timeout
        self.on_progress = on_progress
        """Called after each committed batch (for progress bars): ``on_progress(runner)``."""
        self.checkpoint_name = checkpoint_name(projection, partition)
        self._states: ProjectionStateStore | None = store if isinstance(store, ProjectionStateStore) else None
        if self.policy.on_failure == "park" and self._states is None:
            raise ConfigurationError(f"{store!r} cannot keep dead letters; use on_failure='stop'")
        self._warn_unknown_types = warn_unknown_types
        self._checkpoint: Checkpoint | None = None
        self._live = False
        self._stop = threading.Event()
        self._progress = threading.Condition()
        self._subscription: Subscription | None = None
        self._thread: threading.Thread | None = None
        self.handled = 0
        """Events handled by this runner object (replays after a conflict included)."""
        self.parked = 0
        self.error: BaseException | None = None
        """Why a runner started with :meth:`start` stopped, if it failed."""

    # -- running ------------------------------------------------------------------------

    @property
    def checkpoint(self) -> Checkpoint | None:
        """After the last event this runner committed."""
        return self._checkpoint

    def run_until_caught_up(self) -> int:
        """Handle every event up to the head, then return how many were handled."""
        before = self.handled
        self._stop.clear()
        self._loop(follow=False)
        return self.handled - before

    def run(self) -> None:
        """Catch up, then follow live events until :meth:`stop` is called (from another thread)."""
        self._loop(follow=True)

    def start(self) -> ProjectionRunner[C]:
        """Run on a daemon thread of its own; :attr:`error` says why it stopped, if it failed."""
        if self._thread is not None and self._thread.is_alive():
            raise InvalidInputError(f"runner of {self.projection!r} is already running")
        self._stop.clear()
        self.error = None

        def target() -> None:
            try:
                self.run()
            except BaseException as err:
                self.error = err
                logger.error("projection %s stopped: %s", self.projection.name, err)
                with self._progress:
                    self._progress.notify_all()

        self._thread = threading.Thread(
            target=target, name=f"chronik-projection-{self.projection.name}", daemon=True
        )
        self._thread.start()
        return self

    def stop(self, timeout: float | None = None) -> None:
        """Stop following (wakes a waiting runner); with :meth:`start`, wait for the thread."""
        self._stop.set()
        subscription = self._subscription
        if subscription is not None:
            subscription.close()
        thread = self._thread
        if thread is not None and thread is not threading.current_thread():
            thread.join(timeout)

    def wait_for(self, checkpoint: Checkpoint | None, timeout: float | None = None) -> bool:
        """Block until this runner has committed up to ``checkpoint`` (or stopped); True if it has."""
        if checkpoint is None:
            return True
        deadline = None if timeout is None else time.monotonic() + timeout
        with self._progress:
            while self._checkpoint is None or self._checkpoint < checkpoint:
                if self.error is not None or (self._thread is not None and not self._thread.is_alive()):
                    return False
                remaining = None if deadline is None else deadline - time.monotonic()
                if remaining is not None and remaining <= 0:
                    return False
                self._progress.wait(0.1 if remaining is None else min(remaining, 0.1))
        return True

    def _loop(self, *, follow: bool) -> None:
        while True:
            try:
                self._run_once(follow=follow)
                return
            except ProjectionConflictError as err:
                # Another runner moved the checkpoint: start again from where it is.
                logger.warning("%s; resuming from the stored checkpoint", err)
            except _Stopped:
                return

    def _run_once(self, *, follow: bool) -> None:
        self._prepare()
        # Caught up means up to the head as of now. A log whose newest events can be
        # held back from readers for a moment (PostgreSQL: until older transactions
        # end) would otherwise look caught up before they show.
        head = None if follow else self.store.head()
        subscription = self._subscribable.subscribe(
            self._checkpoint,
            categories=self.projection.categories,
            types=self.projection.types,
            partition=self.partition,
            batch_size=self.batch_size,
        )
        self._subscription = subscription
        try:
            if self._stop.is_set() and follow:
                return
            while not (follow and self._stop.is_set()):
                at = subscription.checkpoint
                behind = head is not None and (at is None or at < head)
                batch = subscription.next_batch(self.idle_timeout if follow or behind else 0)
                if batch:
                    self._process(batch, subscription.checkpoint)
                    continue
                if subscription.closed:
                    return
                if behind and not follow:
                    continue
                self._reached_head(subscription.checkpoint)
                if not follow:
                    return
        finally:
            self._subscription = None
            subscription.close()

    # -- start-up checks ------------------------------------------------------------------

    def _state(self, states: ProjectionStateStore | None = None) -> ProjectionState | None:
        states = states or self._states
        if states is None:
            return None
        for state in states.projection_states(self.projection.name):
            if state.version == self.projection.version:
                return state
        return None

    def _prepare(self) -> None:
        projection = self.projection
        self._checkpoint = self.target.load_checkpoint(self.checkpoint_name)
        self._live = False
        self._check_versions()
        self._check_checkpoint(self._checkpoint)
        if self._warn_unknown_types:
            self._warn_unknown_types = False
            self._check_types()
        state = self._state()
        if self._checkpoint is None and state is None:
            with self.target.unit() as unit:
                self._guard(unit)
                if projection.setup is not None:
                    projection.setup(unit.context)
                self._save_state(unit, "building", active=False)
        elif state is not None and state.status == "failed":
            with self.target.unit() as unit:
                self._save_state(unit, "building", active=state.active)

    def _check_versions(self) -> None:
        if self._states is None:
            return
        name, version = self.projection.name, self.projection.version
        states = self._states.projection_states(name)
        newer = [s.version for s in states if s.version > version and s.active]
        mine = next((s for s in states if s.version == version), None)
        if newer or (mine is not None and mine.status == "retired"):
            active = newer[0] if newer else max(s.version for s in states)
            raise ProjectionVersionError(
                f"projection {name!r} v{version} was replaced by v{active} in this store; "
                f"this code is older than the store's projection (deploy the newer code, or reset v{active})"
            )

    def _check_checkpoint(self, checkpoint: Checkpoint | None) -> None:
        if checkpoint is None:
            return
        where = f"projection {self.projection.name!r} v{self.projection.version}"
        reader = self._subscribable.log_reader()
        try:
            reader.read_page(checkpoint, 1, None, None)
        except InvalidCheckpointError as err:
            raise InvalidCheckpointError(
                f"{where}: its stored checkpoint {checkpoint} is unusable: {err}"
            ) from err
        finally:
            reader.close()
        head = self.store.head()
        if head is None or checkpoint > head:
            raise InvalidCheckpointError(
                f"{where}: its stored checkpoint {checkpoint} is ahead of this store's head ({head}): "
                "it was made by another store (or this one was replaced); reset the projection to rebuild it"
            )

    def _check_types(self) -> None:
        registered = set(self.store.codec.registry.names)
        unknown = [t for t in self.projection.types if t not in registered]
        if not unknown:
            return
        # head() returns once what committed before it is readable (PostgreSQL can
        # hold new events back while older transactions run): no false alarm.
        self.store.head()
        reader = self._subscribable.log_reader()
        try:
            for type_name in unknown:
                if not _exists(reader, type_name):
                    warnings.warn(
                        f"projection {self.projection.name!r} handles {type_name!r}, but no event of "
                        "that type is registered or stored: is the name misspelt?",
                        ProjectionWarning,
                        stacklevel=4,
                    )
        finally:
            reader.close()

    # -- batches ------------------------------------------------------------------------

    def _guard(self, unit: Unit[C]) -> None:
        stored = unit.load_checkpoint(self.checkpoint_name)
        if stored != self._checkpoint:
            raise ProjectionConflictError(
                f"projection {self.projection.name!r} v{self.projection.version}: its checkpoint "
                f"moved from {self._checkpoint} to {stored} under this runner (another runner?)"
            )

    def _handle(self, event: RecordedEvent, context: C) -> None:
        try:
            self.projection.handle(event, context)
        except Exception as err:
            raise _HandlerFailed(event) from err

    def _committed(self, checkpoint: Checkpoint | None, handled: int) -> None:
        with self._progress:
            self._checkpoint = checkpoint
            self.handled += handled
            self._progress.notify_all()
        if self.on_progress is not None and handled:
            self.on_progress(self)

    def _process(self, batch: list[RecordedEvent], bound: Checkpoint | None) -> None:
        try:
            with self.target.unit() as unit:
                self._guard(unit)
                for event in batch:
                    self._handle(event, unit.context)
                if bound is not None:
                    unit.save_checkpoint(self.checkpoint_name, bound)
            self._committed(bound, len(batch))
            return
        except _HandlerFailed:
            pass  # rolled back (or, at-least-once, partly applied): go one by one
        for event in batch:
            self._process_one(event)
        if bound is not None and bound != self._checkpoint:
            with self.target.unit() as unit:
                self._guard(unit)
                unit.save_checkpoint(self.checkpoint_name, bound)
            self._committed(bound, 0)

    def _process_one(self, event: RecordedEvent) -> None:
        attempts = 0
        delay = self.policy.backoff
        while True:
            attempts += 1
            try:
                with self.target.unit() as unit:
                    self._guard(unit)
                    self._handle(event, unit.context)
                    unit.save_checkpoint(self.checkpoint_name, event.checkpoint)
                self._committed(event.checkpoint, 1)
                return
            except _HandlerFailed as failed:
                error = failed.__cause__
                assert error is not None
            if attempts > self.policy.retries:
                break
            logger.warning(
                "projection %s: attempt %d on stream %s version %d failed (%s); retrying",
                self.projection.name,
                attempts,
                event.stream_id,
                event.version,
                error,
            )
            if self._stop.wait(min(delay, self.policy.max_backoff)):
                raise _Stopped
            delay *= 2
        failure = FailedEvent.of(event, error, attempts)
        if self.policy.on_failure == "park":
            self._park(event, failure)
            return
        with self.target.unit() as unit:
            self._save_state(unit, "failed", failure=failure)
        raise ProjectionFailedError(
            self.projection.name,
            self.projection.version,
            stream_id=event.stream_id,
            version=event.version,
            type=event.type,
            position=event.position,
            error=failure.error,
            attempts=attempts,
        ) from error

    def _park(self, event: RecordedEvent, failure: FailedEvent) -> None:
        letter = DeadLetter(self.projection.name, self.projection.version, failure, datetime.now(UTC))
        with self.target.unit() as unit:
            self._guard(unit)
            # In the unit's own transaction when it has one; otherwise before the
            # checkpoint is saved, so a crash parks it again (a no-op) rather than lose it.
            states = unit.states or self._states
            assert states is not None
            states.park_event(letter)
            unit.save_checkpoint(self.checkpoint_name, event.checkpoint)
        self.parked += 1
        self._committed(event.checkpoint, 0)
        logger.error("projection %s parked %s", self.projection.name, failure.describe())

    def _reached_head(self, bound: Checkpoint | None) -> None:
        if bound is not None and bound != self._checkpoint:
            # Events past the checkpoint were all filtered out: move past them too.
            with self.target.unit() as unit:
                self._guard(unit)
                unit.save_checkpoint(self.checkpoint_name, bound)
            self._committed(bound, 0)
        if not self._live:
            self._live = True
            with self.target.unit() as unit:
                states = unit.states or self._states
                others = [] if states is None else states.projection_states(self.projection.name)
                mine = next((s for s in others if s.version == self.projection.version), None)
                someone_active = any(s.active for s in others if s.version != self.projection.version)
                was_active = mine is not None and mine.active
                active = was_active or not someone_active
                if active and not was_active and self.projection.activate is not None:
                    # The first version of a projection serves as soon as it is caught up.
                    self.projection.activate(unit.context)
                if mine is None or mine.status != "live" or mine.active != active:
                    self._save_state(unit, "live", active=active)

    def _save_state(
        self,
        unit: Unit[C],
        status: ProjectionStatus,
        *,
        active: bool | None = None,
        failure: FailedEvent | None = None,
    ) -> None:
        states = unit.states or self._states
        if states is None:
            return
        current = self._state(states)
        state = ProjectionState(
            self.projection.name,
            self.projection.version,
            status,
            active=active if active is not None else (current is not None and current.active),
            failure=failure,
            updated_at=datetime.now(UTC),
        )
        states.save_projection_state(state)

    # -- inspection and maintenance -----------------------------------------------------

    def lag(self) -> Lag:
        """Events behind the head and seconds behind, from the stored checkpoint."""
        return projection_lag(self.store, self.projection, self.target, partition=self.partition)

    def state(self) -> ProjectionState | None:
        """The stored state of this version (None before the first run)."""
        return self._state()

    def reset(self) -> None:
        """Tear the read model down and forget checkpoint and state; the next run rebuilds it."""
        projection = self.projection
        with self.target.unit() as unit:
            if projection.teardown is not None:
                projection.teardown(unit.context)
            unit.delete_checkpoint(self.checkpoint_name)
            if unit.states is not None:
                unit.states.delete_projection_state(projection.name, projection.version)
        if unit.states is None and self._states is not None:
            self._states.delete_projection_state(projection.name, projection.version)
        self._committed(None, 0)

    def rebuild(self) -> int:
        """:meth:`reset`, then :meth:`run_until_caught_up`; returns the events handled."""
        self.reset()
        return self.run_until_caught_up()

    def activate(self, retire: Projection[C] | None = None) -> None:
        """Make this version the one that serves queries, in one unit.

        Any other active version is deactivated; ``retire`` (an older version) is
        marked retired, then torn down and its checkpoint forgotten.
        """
        projection = self.projection
        if retire is not None and (retire.name != projection.name or retire.version >= projection.version):
            raise InvalidInputError(f"{retire!r} is not an older version of {projection!r}")
        with self.target.unit() as unit:
            if projection.activate is not None:
                projection.activate(unit.context)
            states = unit.states or self._states
            if states is not None:
                for other in states.projection_states(projection.name):
                    if other.version == projection.version:
                        continue
                    retiring = retire is not None and other.version == retire.version
                    if other.active or retiring:
                        states.save_projection_state(
                            msgspec.structs.replace(
                                other,
                                active=False,
                                status="retired" if retiring else other.status,
                                updated_at=datetime.now(UTC),
                            )
                        )
            self._save_state(unit, "live", active=True)
        if retire is not None:
            with self.target.unit() as unit:
                if retire.teardown is not None:
                    retire.teardown(unit.context)
                unit.delete_checkpoint(retire.checkpoint_name)

    def __repr__(self) -> str:
        return f"ProjectionRunner({self.projection!r}, target={self.target!r})"


def _exists(reader: LogReader, type_name: str) -> bool:
    after: Checkpoint | None = None
    while True:
        page = reader.read_page(after, 5000, None, (type_name,))
        if page.events:
            return True
        if page.checkpoint == after:
            return False
        after = page.checkpoint


def blue_green(
    store: EventStore,
    old: Projection[C],
    new: Projection[C],
    target: ProjectionTarget[C] | None = None,
    **options: Any,
) -> ProjectionRunner[C]:
    """Build ``new`` beside ``old`` from the start of the log, then switch to it.

    ``old`` keeps serving queries (and its runner, if any, keeps running) until
    ``new`` has caught up; then one unit makes ``new`` active and ``old`` retired,
    and ``old``'s read model is torn down. A runner of ``old`` still running notices
    at its next batch and stops with :class:`ProjectionVersionError`. Returns the
    new version's runner, caught up; call its ``run``/``start`` to keep it live.
    """
    if old.name != new.name or new.version <= old.version:
        raise InvalidInputError(f"{new!r} must be a newer version of {old!r}")
    runner = ProjectionRunner(store, new, target, **options)
    runner.run_until_caught_up()
    runner.activate(retire=old)
    return runner


def active_version(store: EventStore, name: str) -> int | None:
    """The version of projection ``name`` that serves queries, if any."""
    if not isinstance(store, ProjectionStateStore):
        raise ConfigurationError(f"{store!r} does not record projection state")
    return next((s.version for s in store.projection_states(name) if s.active), None)


def require_sync_store(store: object, what: str) -> None:
    """Refuse an asyncio store clearly, rather than with 'coroutine never awaited'."""
    if is_async(store):
        raise ConfigurationError(
            f"{what} runs on a sync store, and {store!r} is an asyncio store: open the same "
            "URL with chronik.connect(...) and run it on a thread of its own (start())"
        )
