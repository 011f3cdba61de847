"""What the sync and asyncio projection runners share as is: the failure policy, lag, names."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal

import msgspec

from chronik.errors import InvalidInputError, is_transient
from chronik.events import Checkpoint, RecordedEvent
from chronik.projections._declare import Projection
from chronik.subscriptions import Partition

__all__ = ["FailurePolicy", "Lag", "checkpoint_name"]


@dataclass(frozen=True)
class FailurePolicy:
    """What a runner does when a handler raises.

    An error that trying again may fix (``transient(error)``, by default
    :func:`chronik.errors.is_transient`: a lost connection, a server shutting down,
    a serialization failure, a deadlock, a lock timeout, a busy SQLite file) is
    tried again up to ``retries`` more times, waiting ``backoff`` seconds before the
    first retry and twice as long before each next one (at most ``max_backoff``).
    Any other error (a bug, an SQL syntax error, an event that no longer decodes) is
    not retried. Then ``on_failure="stop"`` stops the projection on the event, or
    ``"park"`` records it as a dead letter and goes on.
    """

    retries: int = 3
    backoff: float = 0.1
    max_backoff: float = 10.0
    on_failure: Literal["stop", "park"] = "stop"
    transient: Callable[[BaseException], bool] = is_transient
    """Which errors are worth trying again (e.g. also your HTTP client's timeouts)."""

    def __post_init__(self) -> None:
        if isinstance(self.retries, bool) or not isinstance(self.retries, int) or self.retries < 0:
            raise InvalidInputError(f"retries must be an int >= 0, got {self.retries!r}")
        if self.backoff < 0 or self.max_backoff < 0:
            raise InvalidInputError("backoff and max_backoff must be >= 0")
        if self.on_failure not in ("stop", "park"):
            raise InvalidInputError(f"on_failure must be 'stop' or 'park', got {self.on_failure!r}")
        if not callable(self.transient):
            raise InvalidInputError(f"transient must be a function of the error, got {self.transient!r}")

    def retry_delay(self, error: BaseException, attempts: int) -> float | None:
        """How long to wait before trying an event again after ``attempts`` tries failed,
        the last with ``error``; None when it is not to be tried again."""
        if attempts > self.retries or not self.transient(error):
            return None
        # min() on the exponent too: 2.0 ** 1100 would overflow a float.
        return min(self.backoff * 2.0 ** min(attempts - 1, 64), self.max_backoff)


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
