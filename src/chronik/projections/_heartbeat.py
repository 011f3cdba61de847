"""Heartbeats: what a running runner is doing, written where other processes read it (sync).

GENERATED from ``_async_heartbeat.py`` by ``tools/unasync.py``: do not edit; edit
the async module and run the script. The design is described there.
"""

from __future__ import annotations

import logging
import os
import socket
import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, Final

from chronik.errors import is_transient
from chronik.events import ACTIVE_STATES, RunnerHeartbeat, uuid7
from chronik.projections._common import Lag, RunnerStatus
from chronik.projections._concurrency import Background, StopSignal, settle
from chronik.store import RunnerHeartbeats

if TYPE_CHECKING:
    from chronik.projections._runner import ProjectionRunner

__all__ = ["FINAL_WAIT", "TICK", "Heartbeat"]

TICK: Final = 0.25
"""Seconds between looks at the runner's state (in memory; a change is written at once)."""
FINAL_WAIT: Final = 2.0
"""Seconds a runner's end waits for its last record to be written."""
logger = logging.getLogger("chronik.projections")


class Heartbeat:
    """Writes one runner's heartbeats to ``store`` (None: only watches, for ``on_change``)."""

    def __init__(
        self,
        runner: ProjectionRunner[Any],
        store: RunnerHeartbeats | None,
        interval: float,
        on_change: Callable[[RunnerStatus], object] | None = None,
    ) -> None:
        self.runner = runner
        self.store = store
        self.interval = interval
        self.on_change = on_change
        self.runner_id = str(uuid7())
        """Names this runner object in the records it writes."""
        self.host = socket.gethostname()
        self.started_at = datetime.now(UTC)
        self._background = Background()
        self._ending = StopSignal()
        self._wake = StopSignal()
        self._failing = False

    def start(self) -> None:
        """Begin beating (the runner's loop starts)."""
        self.started_at = datetime.now(UTC)
        # A fresh signal for each run: a beat left behind by the last one (its final
        # write still waiting on the store) ends by the old signal, not by this one.
        self._ending = ending = StopSignal()
        self._wake.clear()

        def beat() -> None:
            self._beat(ending)

        self._background.start(beat, f"chronik-heartbeat-{self.runner.projection.name}")

    def poke(self) -> None:
        """Look at the runner's state now (it changed)."""
        self._wake.set()

    def finish(self) -> None:
        """Write the last record (the runner's loop ended), waiting at most FINAL_WAIT."""
        self._ending.set()
        self._wake.set()
        self._background.join(FINAL_WAIT)
        self._background.abandon()

    # -- the beat -------------------------------------------------------------------------

    def _beat(self, ending: StopSignal) -> None:
        seen: tuple[object, ...] | None = None
        due = 0.0
        pruned = False
        while True:
            last = ending.is_set()
            status = self.runner.status(lag=False)
            key = (status.state, status.retrying is None, status.recovered, status.error)
            changed = key != seen
            if changed:
                seen = key
                self._changed(status)
            if self.store is not None and (changed or last or time.monotonic() >= due):
                due = time.monotonic() + self.interval
                lag = None if last else self._lag(status)
                self._write(self.store, status, lag)
                if not pruned:
                    pruned = self._prune(self.store, status)
            if last:
                return
            self._wake.wait(TICK)
            self._wake.clear()

    def _changed(self, status: RunnerStatus) -> None:
        if self.on_change is None:
            return
        try:
            settle(self.on_change(status), self.runner.projection, "on_state_change")
        except Exception as err:
            logger.warning(
                "%s: on_state_change raised %s: %s", self.runner.projection, type(err).__name__, err
            )

    def _lag(self, status: RunnerStatus) -> Lag | None:
        # A consumer-group member's lag is counted by reading every event after its
        # checkpoint (count_events cannot filter by partition): only when it is short.
        if status.partition is not None and status.state != "caught_up":
            return None
        try:
            return (self.runner.status(lag=True)).lag
        except Exception:
            return None

    def record(self, status: RunnerStatus, lag: Lag | None) -> RunnerHeartbeat:
        """The heartbeat record of ``status``, as written now."""
        return RunnerHeartbeat(
            runner_id=self.runner_id,
            name=status.name,
            version=status.version,
            kind=status.kind,
            partition=status.partition,
            host=self.host,
            pid=os.getpid(),
            state=status.state,
            since=status.since,
            heard_at=datetime.now(UTC),
            interval=self.interval,
            started_at=self.started_at,
            checkpoint=status.checkpoint,
            lag_events=None if lag is None else lag.events,
            lag_seconds=None if lag is None else round(lag.seconds, 3),
            handled=status.handled,
            parked=status.parked,
            retrying=status.retrying,
            error=status.error,
            recovered=status.recovered,
        )

    def _write(self, store: RunnerHeartbeats, status: RunnerStatus, lag: Lag | None) -> None:
        try:
            store.save_heartbeat(self.record(status, lag))
        except Exception as err:
            # The runner says why it cannot reach the store (it is retrying too); an
            # error that will not pass by itself (no table for heartbeats) is said once.
            if not self._failing and not is_transient(err):
                logger.warning(
                    "%s: cannot write its heartbeat (%s: %s); other processes will see it as stale",
                    self.runner.projection,
                    type(err).__name__,
                    err,
                )
            self._failing = True
        else:
            self._failing = False

    def _prune(self, store: RunnerHeartbeats, status: RunnerStatus) -> bool:
        """Forget ended or stale records of earlier runners of the same slot; True when done."""
        try:
            now = datetime.now(UTC)
            for other in store.heartbeats(status.name):
                same_slot = (other.version, other.partition) == (status.version, status.partition)
                ended = other.state not in ACTIVE_STATES or other.stale(now)
                if other.runner_id != self.runner_id and same_slot and ended:
                    store.delete_heartbeat(other.runner_id)
        except Exception:
            return False  # the next beat tries again
        return True
