"""What the sync and asyncio projection runners share as is: the failure policy, lag, names."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Final, Literal

import msgspec

from chronik._retry import Backoff
from chronik.errors import InvalidInputError, is_transient
from chronik.events import Checkpoint, RecordedEvent, Recovery, Retrying, RunnerState
from chronik.projections._declare import Projection
from chronik.subscriptions import Partition

__all__ = [
    "DEFAULT_HEARTBEAT",
    "FailurePolicy",
    "Lag",
    "RunnerState",
    "RunnerStatus",
    "checkpoint_name",
    "validate_heartbeat_interval",
]

DEFAULT_HEARTBEAT: Final = 5.0
"""Seconds between a runner's heartbeat records (``heartbeat=`` of the runners)."""


def validate_heartbeat_interval(interval: object) -> float | None:
    if interval is None:
        return None
    if isinstance(interval, bool) or not isinstance(interval, int | float) or not 0 < interval < 86400:
        raise InvalidInputError(
            f"heartbeat must be seconds between 0 and 86400, or None (none written), got {interval!r}"
        )
    return float(interval)


@dataclass(frozen=True)
class FailurePolicy:
    """What a runner does when something fails: a handler, or the runner's own I/O.

    An error that trying again may fix (``transient(error)``, by default
    :func:`chronik.errors.is_transient`: a lost connection, a server shutting down,
    a failover, a serialization failure, a deadlock, a lock timeout, a busy SQLite
    file, a full disk) is tried again, waiting ``backoff`` seconds before the first
    retry and twice as long before each next one (at most ``max_backoff``), for as
    long as it lasts. ``retries`` (None: no limit) bounds how many times a *handler*
    is tried again on one event; the runner's own reads, checkpoints and commits are
    always retried while their error is transient, since stopping would only wait
    for a person to start the runner again.

    Any other error (a bug, an SQL syntax error, an event that no longer decodes) is
    not retried. When a handler raised it, ``on_failure="stop"`` stops the
    projection on the event, or ``"park"`` records it as a dead letter and goes on;
    anywhere else, the runner stops with it.
    """

    retries: int | None = None
    backoff: float = 0.1
    max_backoff: float = 10.0
    on_failure: Literal["stop", "park"] = "stop"
    transient: Callable[[BaseException], bool] = is_transient
    """Which errors are worth trying again (e.g. also your HTTP client's timeouts)."""

    def __post_init__(self) -> None:
        if self.retries is not None and (
            isinstance(self.retries, bool) or not isinstance(self.retries, int) or self.retries < 0
        ):
            raise InvalidInputError(f"retries must be an int >= 0 or None (no limit), got {self.retries!r}")
        if self.backoff < 0 or self.max_backoff < 0:
            raise InvalidInputError("backoff and max_backoff must be >= 0")
        if self.on_failure not in ("stop", "park"):
            raise InvalidInputError(f"on_failure must be 'stop' or 'park', got {self.on_failure!r}")
        if not callable(self.transient):
            raise InvalidInputError(f"transient must be a function of the error, got {self.transient!r}")

    @property
    def pauses(self) -> Backoff:
        """The backoff between retries, as subscriptions take it."""
        return Backoff(self.backoff, self.max_backoff)

    def retry_delay(self, error: BaseException, attempts: int, *, handler: bool = True) -> float | None:
        """How long to wait before trying again after ``attempts`` tries failed in a
        row, the last with ``error``; None when it is not to be tried again.

        ``handler``: whether a handler raised it (``retries`` bounds those), or the
        runner's own work did (retried for as long as the error is transient)."""
        if handler and self.retries is not None and attempts > self.retries:
            return None
        if not self.transient(error):
            return None
        return self.pauses.delay(attempts)


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


class HandlerFailed(Exception):
    """A handler raised (its error is the ``__cause__``)."""

    def __init__(self, event: RecordedEvent) -> None:
        self.event = event


class Stopped(Exception):
    """The runner was stopped while it waited to retry."""


class RunnerStatus(msgspec.Struct, frozen=True):
    """What a runner is doing, from :meth:`ProjectionRunner.status` (msgspec-encodable).

    ``state`` is one of

    - ``"idle"``: not running (never started, or a ``run_until_caught_up`` returned);
    - ``"running"``: handling events, behind the head;
    - ``"caught_up"``: following live events at the head;
    - ``"retrying"``: riding out a transient fault (``retrying`` says since when, how
      many attempts failed so far and the last error); it goes on by itself;
    - ``"stopped"``: ended, ``error`` says why (None: :meth:`stop` was called).

    ``since`` is when it entered that state. ``checkpoint`` is after the last event it
    committed; ``lag`` how far behind the head that is (None when not measured, or
    when the store cannot be reached to measure it). ``handled`` and ``parked`` count
    events since this runner object was made. ``recovered`` is the last run of
    transient failures that ended (since when, until when, how many attempts, the
    last error), None if there was none.
    """

    name: str
    version: int
    kind: str
    state: RunnerState
    since: datetime
    checkpoint: Checkpoint | None
    lag: Lag | None
    handled: int
    parked: int
    retrying: Retrying | None = None
    error: str | None = None
    partition: str | None = None
    recovered: Recovery | None = None
