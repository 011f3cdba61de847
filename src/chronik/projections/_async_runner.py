"""The projection runner: catch up from the checkpoint, then follow live (asyncio).

Each batch of events is one *unit* of the target: the handlers' writes and the
checkpoint after the batch. On a transactional target (a read model in the event
store's database) that is one transaction, so a crash anywhere neither loses nor
doubles an effect; elsewhere the checkpoint follows the writes (at-least-once).

Inside each unit the runner first checks that the stored checkpoint is still the
one it started the batch from. A second runner of the same projection (another
process, a deploy overlap) that got there first makes the check fail and the batch
roll back, instead of applying it twice.

When a handler raises, the batch is abandoned and its events are taken again one
at a time. An error that trying again may fix (``FailurePolicy.transient``: a lost
connection, a deadlock, a lock timeout, ...) is retried with exponential backoff;
any other goes to the policy at once, as does a transient one that outlasts the
policy's ``retries`` (if it sets any): ``stop`` records the failure (stream,
version, type, error) in the projection's state and raises
:class:`ProjectionFailedError`, leaving the checkpoint before the event; ``park``
records a dead letter in the same unit as the checkpoint that moves past it, and
goes on. Either way the event is accounted for.

A transient failure anywhere else in the loop (opening or committing a unit,
loading the checkpoint, reading the log: the database restarting, failing over,
cutting the connection, a full disk) abandons the batch and starts again from the
stored checkpoint after a capped exponential backoff, for as long as the fault
lasts; the subscription rides out its own read failures the same way. Only an
error retrying cannot fix stops the runner. :meth:`status` says which it is doing.

Handlers (and setup, teardown, activate) may be coroutine functions: their results
are awaited. The sync runner (``_runner.py``) is generated from this module by
``tools/unasync.py``; what differs between a thread and a task is in
``_concurrency.py``.
"""

from __future__ import annotations

import logging
import time
import warnings
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any, Generic, TypeVar

import msgspec

from chronik import _lag_metrics, _otel, _spans
from chronik._retry import Faults
from chronik.errors import ConfigurationError, InvalidCheckpointError, InvalidInputError
from chronik.events import (
    Checkpoint,
    DeadLetter,
    FailedEvent,
    ProjectionState,
    ProjectionStatus,
    RecordedEvent,
    Recovery,
)
from chronik.projections._async_heartbeat import AsyncHeartbeat
from chronik.projections._async_lag import exists, lag, projection_lag_async, subscribable
from chronik.projections._async_targets import AsyncProjectionTarget, AsyncUnit, default_target
from chronik.projections._common import (
    DEFAULT_HEARTBEAT,
    FailurePolicy,
    HandlerFailed,
    Lag,
    RunnerState,
    RunnerStatus,
    Stopped,
    checkpoint_name,
    validate_heartbeat_interval,
)
from chronik.projections._concurrency import (
    AsyncBackground,
    AsyncProgress,
    AsyncStopSignal,
    AwaitableRefusedError,
    require_async_store,
    settle_async,
)
from chronik.projections._declare import Projection
from chronik.projections.errors import (
    ProjectionConflictError,
    ProjectionFailedError,
    ProjectionVersionError,
    ProjectionWarning,
)
from chronik.store import AsyncEventStore, AsyncProjectionStateStore, AsyncRunnerHeartbeats
from chronik.subscriptions import DEFAULT_BATCH_SIZE, AsyncSubscription, Partition, validate_batch_size

__all__ = ["AsyncProjectionRunner", "blue_green_async"]

C = TypeVar("C")
logger = logging.getLogger("chronik.projections")


class AsyncProjectionRunner(Generic[C]):
    """Feeds one projection from a subscription and stores its checkpoint.

    ``target`` defaults to a transactional target (:class:`AsyncTransactionalTarget`)
    on ``store`` (a read model in the same database). ``partition`` makes the runner one member of a
    consumer group with a checkpoint of its own. ``kind`` is what its messages and errors
    call what it runs (``"process manager"`` for one).

    Run it in the foreground (:meth:`run_until_caught_up`, :meth:`run`) or in the
    background (:meth:`run_in_background`, :meth:`stop`).

    While it runs, on a store that keeps heartbeats (``RunnerHeartbeats``) it writes
    a record of what it is doing at start, on each change of state and every
    ``heartbeat`` seconds (None: none), for other processes to read (``chronik
    projections status``, the web UI); see ``_async_heartbeat.py``.
    ``on_state_change(status)`` is called with each new :class:`RunnerStatus`
    (running, retrying, recovered, caught up, stopped), off the runner's own loop.
    """

    def __init__(
        self,
        store: AsyncEventStore,
        projection: Projection[C],
        target: AsyncProjectionTarget[C] | None = None,
        *,
        policy: FailurePolicy | None = None,
        batch_size: int = DEFAULT_BATCH_SIZE,
        partition: Partition | None = None,
        idle_timeout: float = 1.0,
        warn_unknown_types: bool = True,
        on_progress: Callable[[AsyncProjectionRunner[C]], None] | None = None,
        kind: str = "projection",
        heartbeat: float | None = DEFAULT_HEARTBEAT,
        on_state_change: Callable[[RunnerStatus], object] | None = None,
    ) -> None:
        if not isinstance(projection, Projection):
            raise InvalidInputError(f"expected a Projection, got {type(projection).__name__}")
        require_async_store(store, "AsyncProjectionRunner")
        self.store = store
        self._subscribable = subscribable(store)
        if not isinstance(kind, str) or not kind or not kind.isprintable():
            raise InvalidInputError(f"kind must be a non-empty printable str, got {kind!r}")
        self.projection = projection
        self.kind = kind
        self._named = f"{kind} {projection.name!r}"
        self.target: AsyncProjectionTarget[C] = target if target is not None else default_target(store)
        self.policy = policy if policy is not None else FailurePolicy()
        self.batch_size = validate_batch_size(batch_size)
        self.partition = partition
        self.idle_timeout = idle_timeout
        self.on_progress = on_progress
        """Called after each committed batch (for progress bars): ``on_progress(runner)``."""
        self.checkpoint_name = checkpoint_name(projection, partition)
        self._states: AsyncProjectionStateStore | None = (
            store if isinstance(store, AsyncProjectionStateStore) else None
        )
        if self.policy.on_failure == "park" and self._states is None:
            raise ConfigurationError(f"{store!r} cannot keep dead letters; use on_failure='stop'")
        self._warn_unknown_types = warn_unknown_types
        self._checkpoint: Checkpoint | None = None
        self._live = False
        self._stop = AsyncStopSignal()
        self._progress = AsyncProgress()
        self._subscription: AsyncSubscription | None = None
        self._background = AsyncBackground()
        self.handled = 0
        """Events handled by this runner object (replays after a conflict included)."""
        self.parked = 0
        self.error: BaseException | None = None
        """Why a runner started with :meth:`run_in_background` stopped, if it failed."""
        self._faults = Faults()
        self._phase: RunnerState = "idle"
        self._phase_since = datetime.now(UTC)
        self._stopped_by: BaseException | None = None
        self._loaded = False
        self._recovered_reads: Recovery | None = None  # of the subscriptions this runner closed
        interval = validate_heartbeat_interval(heartbeat)
        beats = store if isinstance(store, AsyncRunnerHeartbeats) and interval is not None else None
        self._heartbeat: AsyncHeartbeat | None = None
        if beats is not None or on_state_change is not None:
            self._heartbeat = AsyncHeartbeat(self, beats, interval or DEFAULT_HEARTBEAT, on_state_change)

    # -- running ------------------------------------------------------------------------

    @property
    def checkpoint(self) -> Checkpoint | None:
        """After the last event this runner committed."""
        return self._checkpoint

    async def run_until_caught_up(self) -> int:
        """Handle every event up to the head, then return how many were handled.

        The head is read when it starts, and once more when it gets there: events
        that committed meanwhile (its own reactions included) are handled too."""
        before = self.handled
        self._stop.clear()
        await self._loop(follow=False)
        return self.handled - before

    async def run(self) -> None:
        """Catch up, then follow live events until :meth:`stop` is called (from elsewhere)."""
        await self._loop(follow=True)

    def run_in_background(self) -> AsyncProjectionRunner[C]:
        """Run in the background (asyncio: a task; sync: a daemon thread) until :meth:`stop`;
        :attr:`error` says why it stopped, if it failed."""
        if self._background.alive:
            raise InvalidInputError(f"runner of {self.projection!r} is already running")
        self._stop.clear()
        self.error = None
        self._background.start(self._run_in_background, f"chronik-projection-{self.projection.name}")
        return self

    async def _run_in_background(self) -> None:
        try:
            await self.run()
        except BaseException as err:
            self.error = err
            logger.error("%s stopped: %s", self._named, err, extra=self._fields())
            self._progress.notify()
            if not isinstance(err, Exception):
                raise

    async def stop(self, timeout: float | None = None) -> None:
        """Stop following (wakes a waiting runner); in the background, wait for it to end."""
        self._stop.set()
        subscription = self._subscription
        if subscription is not None:
            await subscription.close()
        await self._background.join(timeout)

    async def wait_for(self, checkpoint: Checkpoint | None, timeout: float | None = None) -> bool:
        """Wait until this runner has committed up to ``checkpoint`` (or stopped); True if it has."""
        if checkpoint is None:
            return True
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            seen = self._progress.count
            if self._checkpoint is not None and self._checkpoint >= checkpoint:
                return True
            if self.error is not None or (self._background.started and not self._background.alive):
                return False
            remaining = None if deadline is None else deadline - time.monotonic()
            if remaining is not None and remaining <= 0:
                return False
            await self._progress.wait(seen, 0.1 if remaining is None else min(remaining, 0.1))

    def _enter(self, phase: RunnerState, error: BaseException | None = None) -> None:
        if phase != self._phase:
            self._phase, self._phase_since = phase, datetime.now(UTC)
            if self._heartbeat is not None:
                self._heartbeat.poke()
        self._stopped_by = error

    def _fields(self, **more: Any) -> dict[str, Any]:
        """The fields of this runner's log records (``extra=``)."""
        fields: dict[str, Any] = {
            "projection": self.projection.name,
            "projection_version": self.projection.version,
            "kind": self.kind,
        }
        if self.partition is not None:
            fields["partition"] = str(self.partition)
        fields.update(more)
        return fields

    async def _loop(self, *, follow: bool) -> None:
        otel = _otel.current()
        if otel is not None and otel.metering():
            # Its lag, in the chronik.lag.* gauges (held weakly: a dropped runner drops out).
            _lag_metrics.observe(self)
        self._enter("running")
        heartbeat = self._heartbeat
        if heartbeat is not None:
            heartbeat.start()
        try:
            await self._ride_out_faults(follow=follow)
        except BaseException as err:
            # Recorded before the state says stopped: whoever sees "stopped" finds the
            # error too (the heartbeat's last write below may take a moment).
            self.error = err
            self._enter("stopped", err)
            if heartbeat is not None:
                await heartbeat.finish()
            raise
        self._enter("stopped" if follow else "idle")
        if heartbeat is not None:
            await heartbeat.finish()

    async def _ride_out_faults(self, *, follow: bool) -> None:
        while True:
            try:
                await self._run_once(follow=follow)
                return
            except ProjectionConflictError as err:
                # Another runner moved the checkpoint: start again from where it is.
                logger.warning("%s; resuming from the stored checkpoint", err, extra=self._fields())
            except Stopped:
                return
            except Exception as err:
                # Not a handler's error (those went to the policy already): the
                # runner's own I/O failed. Transient (the server restarting, a cut
                # connection, a busy or full file): start again from the stored
                # checkpoint once it may have passed; the batch was rolled back, or
                # (at-least-once) is handled again. Anything else stops the runner.
                attempts = 1 if self._faults.current is None else self._faults.current.attempts + 1
                delay = self.policy.retry_delay(err, attempts, handler=False)
                if delay is None:
                    raise
                self._faults.failed(err)
                self._faults.log(
                    logger, f"{self._named} (checkpoint {self._checkpoint})", delay, self._fields()
                )
                if await self._stop.wait(delay):
                    return

    async def _run_once(self, *, follow: bool) -> None:
        await self._prepare()
        # Caught up means up to the head as of now. A log whose newest events can be
        # held back from readers for a moment (PostgreSQL: until older transactions
        # end) would otherwise look caught up before they show.
        head = None if follow else await self.store.head()
        rechecked = False
        subscription = self._subscribable.subscribe(
            self._checkpoint,
            categories=self.projection.categories,
            types=self.projection.type_filter,
            partition=self.partition,
            batch_size=self.batch_size,
        )
        subscription.backoff = self.policy.pauses
        subscription.transient = self.policy.transient
        self._subscription = subscription
        try:
            if self._stop.is_set() and follow:
                return
            while not (follow and self._stop.is_set()):
                at = subscription.checkpoint
                behind = head is not None and (at is None or at < head)
                batch = await subscription.next_batch(self.idle_timeout if follow or behind else 0)
                if batch:
                    await self._process(batch, subscription.checkpoint)
                    continue
                if subscription.closed:
                    return
                if behind and not follow:
                    continue
                if not follow and not rechecked:
                    # Once more, to the head as it is now: events that committed during
                    # the run (its own reactions, a process manager's) may still have
                    # been held back from readers when the page after the first head
                    # was read; head() returns once they are readable. Only once, so
                    # that steady writers cannot keep it running.
                    rechecked = True
                    now, at = await self.store.head(), subscription.checkpoint
                    if now is not None and (at is None or at < now):
                        head = now
                        continue
                await self._reached_head(subscription.checkpoint)
                if not follow:
                    return
        finally:
            self._subscription = None
            self._recovered_reads = subscription.recovered or self._recovered_reads
            await subscription.close()

    # -- start-up checks ------------------------------------------------------------------

    async def _state(self, states: AsyncProjectionStateStore | None = None) -> ProjectionState | None:
        states = states or self._states
        if states is None:
            return None
        for state in await states.projection_states(self.projection.name):
            if state.version == self.projection.version:
                return state
        return None

    async def _call(self, hook: Callable[[C], object] | None, context: C, what: str) -> None:
        """Run ``setup``, ``teardown`` or ``activate``; its result is settled as a handler's is."""
        if hook is not None:
            await settle_async(hook(context), self.projection, what)

    async def _prepare(self) -> None:
        projection = self.projection
        self._checkpoint = await self.target.load_checkpoint(self.checkpoint_name)
        self._loaded = True
        self._live = False
        await self._check_versions()
        await self._check_checkpoint(self._checkpoint)
        if self._warn_unknown_types:
            self._warn_unknown_types = False
            await self._check_types()
        state = await self._state()
        if self._checkpoint is None and state is None:
            async with self.target.unit() as unit:
                await self._guard(unit)
                await self._call(projection.setup, unit.context, "setup")
                await self._save_state(unit, "building", active=False)
        elif state is not None and state.status == "failed":
            async with self.target.unit() as unit:
                await self._save_state(unit, "building", active=state.active)

    async def _check_versions(self) -> None:
        if self._states is None:
            return
        name, version = self.projection.name, self.projection.version
        states = await self._states.projection_states(name)
        newer = [s.version for s in states if s.version > version and s.active]
        mine = next((s for s in states if s.version == version), None)
        if newer or (mine is not None and mine.status == "retired"):
            active = newer[0] if newer else max(s.version for s in states)
            raise ProjectionVersionError(
                f"{self._named} v{version} was replaced by v{active} in this store; "
                f"this code is older than the store's {self.kind} (deploy the newer code, or reset v{active})"
            )

    async def _check_checkpoint(self, checkpoint: Checkpoint | None) -> None:
        if checkpoint is None:
            return
        where = f"{self._named} v{self.projection.version}"
        reader = self._subscribable.log_reader()
        try:
            await reader.read_page(checkpoint, 1, None, None)
        except InvalidCheckpointError as err:
            raise InvalidCheckpointError(
                f"{where}: its stored checkpoint {checkpoint} is unusable: {err}"
            ) from err
        finally:
            await reader.close()
        head = await self.store.head()
        if head is None or checkpoint > head:
            raise InvalidCheckpointError(
                f"{where}: its stored checkpoint {checkpoint} is ahead of this store's head ({head}): "
                "it was made by another store (or this one was replaced); reset the projection to rebuild it"
            )

    async def _check_types(self) -> None:
        registered = set(self.store.codec.registry.names)
        unknown = [t for t in self.projection.types if t not in registered]
        if not unknown:
            return
        # head() returns once what committed before it is readable (PostgreSQL can
        # hold new events back while older transactions run): no false alarm.
        await self.store.head()
        reader = self._subscribable.log_reader()
        try:
            for type_name in unknown:
                if not await exists(reader, type_name):
                    warnings.warn(
                        f"{self._named} handles {type_name!r}, but no event of "
                        "that type is registered or stored: is the name misspelt?",
                        ProjectionWarning,
                        stacklevel=4,
                    )
        finally:
            await reader.close()

    # -- batches ------------------------------------------------------------------------

    async def _guard(self, unit: AsyncUnit[C]) -> None:
        stored = await unit.load_checkpoint(self.checkpoint_name)
        if stored != self._checkpoint:
            raise ProjectionConflictError(
                f"{self._named} v{self.projection.version}: its checkpoint "
                f"moved from {self._checkpoint} to {stored} under this runner (another runner?)"
            )

    async def _handle(self, event: RecordedEvent, context: C) -> None:
        # In the trace of the request that appended the event, when it carries one.
        with _spans.processing(event, self.kind, self.projection.name):
            try:
                # Most handlers return None: only a result is settled (this runs per event).
                result = self.projection.handle(event, context)
                if result is not None:
                    await settle_async(result, self.projection, f"the handler of {event.type!r}")
            except AwaitableRefusedError:
                raise
            except Exception as err:
                raise HandlerFailed(event) from err

    def _committed(self, checkpoint: Checkpoint | None, handled: int) -> None:
        self._faults.recovered(logger, self._named, self._fields())
        self._checkpoint = checkpoint
        self.handled += handled
        self._progress.notify()
        if self.on_progress is not None and handled:
            self.on_progress(self)
        if handled and logger.isEnabledFor(logging.DEBUG):
            logger.debug(
                "%s committed %d events, up to %s",
                self._named,
                handled,
                checkpoint,
                extra=self._fields(event_count=handled, checkpoint=str(checkpoint)),
            )

    async def _process(self, batch: list[RecordedEvent], bound: Checkpoint | None) -> None:
        with _spans.batch(self.kind, self.projection.name, self.projection.version, batch):
            await self._process_batch(batch, bound)

    async def _process_batch(self, batch: list[RecordedEvent], bound: Checkpoint | None) -> None:
        try:
            async with self.target.unit() as unit:
                await self._guard(unit)
                for event in batch:
                    await self._handle(event, unit.context)
                if bound is not None:
                    await unit.save_checkpoint(self.checkpoint_name, bound)
            self._committed(bound, len(batch))
            return
        except HandlerFailed as failed:
            # Rolled back (or, at-least-once, partly applied): go one by one. The
            # failing event's try counts as its first attempt.
            first = failed
        for event in batch:
            await self._process_one(event, first.__cause__ if event is first.event else None)
        if bound is not None and bound != self._checkpoint:
            async with self.target.unit() as unit:
                await self._guard(unit)
                await unit.save_checkpoint(self.checkpoint_name, bound)
            self._committed(bound, 0)

    async def _process_one(self, event: RecordedEvent, error: BaseException | None = None) -> None:
        """Handle one event in a unit of its own, retrying what may be retried; ``error``:
        how the event failed in its batch (its first attempt)."""
        attempts = 0 if error is None else 1
        while True:
            if error is not None:
                # Only an error that trying again may fix is retried: a bug, or a
                # payload that no longer decodes, fails the same way every time.
                delay = self.policy.retry_delay(error, attempts)
                if delay is None:
                    break
                self._faults.failed(error)
                where = f"{self._named} on stream {event.stream_id} version {event.version}"
                at = {"stream_id": event.stream_id, "version": event.version, "position": event.position}
                self._faults.log(logger, where, delay, self._fields(**at))
                if await self._stop.wait(delay):
                    raise Stopped
            attempts += 1
            try:
                async with self.target.unit() as unit:
                    await self._guard(unit)
                    await self._handle(event, unit.context)
                    await unit.save_checkpoint(self.checkpoint_name, event.checkpoint)
                self._committed(event.checkpoint, 1)
                return
            except HandlerFailed as failed:
                error = failed.__cause__
        assert error is not None
        failure = FailedEvent.of(event, error, attempts)
        if self.policy.on_failure == "park":
            await self._park(event, failure)
            return
        async with self.target.unit() as unit:
            # A second runner that moved the checkpoint meanwhile may be why the
            # handler failed (a row it inserted first): then this is a conflict, and
            # the loop resumes from where that runner got to (``_park`` checks too).
            await self._guard(unit)
            await self._save_state(unit, "failed", failure=failure)
        raise ProjectionFailedError(
            self.projection.name,
            self.projection.version,
            stream_id=event.stream_id,
            version=event.version,
            type=event.type,
            position=event.position,
            error=failure.error,
            attempts=attempts,
            kind=self.kind,
        ) from error

    async def _park(self, event: RecordedEvent, failure: FailedEvent) -> None:
        letter = DeadLetter(self.projection.name, self.projection.version, failure, datetime.now(UTC))
        async with self.target.unit() as unit:
            await self._guard(unit)
            # In the unit's own transaction when it has one; otherwise before the
            # checkpoint is saved, so a crash parks it again (a no-op) rather than lose it.
            states = unit.states or self._states
            assert states is not None
            await states.park_event(letter)
            await unit.save_checkpoint(self.checkpoint_name, event.checkpoint)
        self.parked += 1
        self._committed(event.checkpoint, 0)
        logger.error(
            "%s parked %s",
            self._named,
            failure.describe(),
            extra=self._fields(
                stream_id=event.stream_id,
                version=event.version,
                position=event.position,
                event_type=event.type,
            ),
        )

    async def _reached_head(self, bound: Checkpoint | None) -> None:
        self._faults.recovered(logger, self._named, self._fields())
        self._enter("caught_up")
        if bound is not None and bound != self._checkpoint:
            # Events past the checkpoint were all filtered out: move past them too.
            async with self.target.unit() as unit:
                await self._guard(unit)
                await unit.save_checkpoint(self.checkpoint_name, bound)
            self._committed(bound, 0)
        if not self._live:
            self._live = True
            logger.info(
                "%s caught up at %s: following live events",
                self._named,
                self._checkpoint,
                extra=self._fields(checkpoint=str(self._checkpoint)),
            )
            async with self.target.unit() as unit:
                states = unit.states or self._states
                others = [] if states is None else await states.projection_states(self.projection.name)
                mine = next((s for s in others if s.version == self.projection.version), None)
                someone_active = any(s.active for s in others if s.version != self.projection.version)
                was_active = mine is not None and mine.active
                active = was_active or not someone_active
                if active and not was_active:
                    # The first version of a projection serves as soon as it is caught up.
                    await self._call(self.projection.activate, unit.context, "activate")
                if mine is None or mine.status != "live" or mine.active != active:
                    await self._save_state(unit, "live", active=active)

    async def _save_state(
        self,
        unit: AsyncUnit[C],
        status: ProjectionStatus,
        *,
        active: bool | None = None,
        failure: FailedEvent | None = None,
    ) -> None:
        states = unit.states or self._states
        if states is None:
            return
        current = await self._state(states)
        state = ProjectionState(
            self.projection.name,
            self.projection.version,
            status,
            active=active if active is not None else (current is not None and current.active),
            failure=failure,
            updated_at=datetime.now(UTC),
        )
        await states.save_projection_state(state)

    # -- inspection and maintenance -----------------------------------------------------

    async def lag(self) -> Lag:
        """Events behind the head and seconds behind, from the stored checkpoint."""
        return await projection_lag_async(self.store, self.projection, self.target, partition=self.partition)

    async def _measure(self) -> Lag | None:
        if not self._loaded:
            if self._phase not in ("idle", "stopped"):
                # Starting: its checkpoint is not loaded yet, and its target is in use by
                # the runner's own loop (another thread's reads would race it).
                return None
            return await self.lag()
        # From the checkpoint this runner holds, by reads alone: a fault that stops
        # its transactions (a lock, a full disk) leaves its lag visible.
        reader = self._subscribable.log_reader()
        try:
            return await lag(reader, self.store, self.projection, self._checkpoint, self.partition)
        finally:
            await reader.close()

    async def status(self, *, lag: bool = True) -> RunnerStatus:
        """What this runner is doing: running, caught up, retrying (since when, how many
        attempts, the last error), stopped (and why); its checkpoint; and, with ``lag``,
        how far behind it is (None when the store cannot be reached to measure it, or while
        it starts, before it has loaded its checkpoint).

        Safe to call from another thread (sync) or task (asyncio) while it runs.
        """
        measured: Lag | None = None
        if lag:
            try:
                measured = await self._measure()
            except Exception as err:
                if not self.policy.transient(err):
                    raise
        subscription = self._subscription
        retrying = self._faults.current or (subscription.retrying if subscription is not None else None)
        ended = [
            self._faults.last,
            self._recovered_reads,
            None if subscription is None else subscription.recovered,
        ]
        recovered = max((r for r in ended if r is not None), key=lambda r: r.until, default=None)
        phase, since, stopped_by = self._phase, self._phase_since, self._stopped_by
        if retrying is not None and phase in ("running", "caught_up"):
            phase, since = "retrying", retrying.since
        return RunnerStatus(
            name=self.projection.name,
            version=self.projection.version,
            kind=self.kind,
            state=phase,
            since=since,
            checkpoint=self._checkpoint,
            lag=measured,
            handled=self.handled,
            parked=self.parked,
            retrying=retrying if phase == "retrying" else None,
            error=None if stopped_by is None else f"{type(stopped_by).__name__}: {stopped_by}",
            partition=None if self.partition is None else str(self.partition),
            recovered=recovered,
        )

    async def state(self) -> ProjectionState | None:
        """The stored state of this version (None before the first run)."""
        return await self._state()

    async def reset(self) -> None:
        """Tear the read model down and forget checkpoint and state; the next run rebuilds it."""
        projection = self.projection
        async with self.target.unit() as unit:
            await self._call(projection.teardown, unit.context, "teardown")
            await unit.delete_checkpoint(self.checkpoint_name)
            if unit.states is not None:
                await unit.states.delete_projection_state(projection.name, projection.version)
        if unit.states is None and self._states is not None:
            await self._states.delete_projection_state(projection.name, projection.version)
        self._committed(None, 0)

    async def rebuild(self) -> int:
        """:meth:`reset`, then :meth:`run_until_caught_up`; returns the events handled."""
        await self.reset()
        return await self.run_until_caught_up()

    async def activate(self, retire: Projection[C] | None = None) -> None:
        """Make this version the one that serves queries, in one unit.

        Any other active version is deactivated; ``retire`` (an older version) is
        marked retired, then torn down and its checkpoint forgotten.
        """
        projection = self.projection
        if retire is not None and (retire.name != projection.name or retire.version >= projection.version):
            raise InvalidInputError(f"{retire!r} is not an older version of {projection!r}")
        async with self.target.unit() as unit:
            await self._call(projection.activate, unit.context, "activate")
            states = unit.states or self._states
            if states is not None:
                for other in await states.projection_states(projection.name):
                    if other.version == projection.version:
                        continue
                    retiring = retire is not None and other.version == retire.version
                    if other.active or retiring:
                        await states.save_projection_state(
                            msgspec.structs.replace(
                                other,
                                active=False,
                                status="retired" if retiring else other.status,
                                updated_at=datetime.now(UTC),
                            )
                        )
            await self._save_state(unit, "live", active=True)
        if retire is not None:
            async with self.target.unit() as unit:
                await self._call(retire.teardown, unit.context, "teardown")
                await unit.delete_checkpoint(retire.checkpoint_name)

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.projection!r}, target={self.target!r})"


async def blue_green_async(
    store: AsyncEventStore,
    old: Projection[C],
    new: Projection[C],
    target: AsyncProjectionTarget[C] | None = None,
    **options: Any,
) -> AsyncProjectionRunner[C]:
    """Build ``new`` beside ``old`` from the start of the log, then switch to it.

    ``old`` keeps serving queries (and its runner, if any, keeps running) until
    ``new`` has caught up; then one unit makes ``new`` active and ``old`` retired,
    and ``old``'s read model is torn down. A runner of ``old`` still running notices
    at its next batch and stops with :class:`ProjectionVersionError`. Returns the
    new version's runner, caught up; call its ``run``/``run_in_background`` to keep it live.
    """
    if old.name != new.name or new.version <= old.version:
        raise InvalidInputError(f"{new!r} must be a newer version of {old!r}")
    runner = AsyncProjectionRunner(store, new, target, **options)
    await runner.run_until_caught_up()
    await runner.activate(retire=old)
    return runner
