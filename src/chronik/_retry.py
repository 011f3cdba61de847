"""Riding out transient faults: capped exponential backoff, and the run of failures it rides.

A long-running reader of the log (a subscription, a projection runner, a process
manager, a consumer-group member) meets faults that go away by themselves: the
server restarts, a failover moves the primary, a connection is cut, a lock is not
free, the disk is full until someone frees space. Such an error (see
:func:`chronik.errors.is_transient`) is tried again after a pause that doubles each
time up to a cap, for as long as it lasts; any other error ends the loop.

:class:`Faults` keeps the current run of failures (since when, how many, the last
error) and the last one that ended, for the loop's status, and says which failures
to log: the first, then the 2nd, 4th, 8th, ... so a long outage writes a few lines,
not one per retry.
No I/O here: the loops sleep in their own way (a thread's event, a task's).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime

from chronik.errors import InvalidInputError
from chronik.events import Recovery, Retrying

__all__ = ["Backoff", "Faults", "Recovery", "Retrying"]


@dataclass(frozen=True)
class Backoff:
    """Wait ``initial`` seconds before the first retry, twice as long before each next
    one, never more than ``maximum``."""

    initial: float = 0.1
    maximum: float = 10.0

    def __post_init__(self) -> None:
        for value, what in ((self.initial, "initial"), (self.maximum, "maximum")):
            if isinstance(value, bool) or not isinstance(value, (int, float)) or value < 0:
                raise InvalidInputError(f"backoff {what} must be a number >= 0, got {value!r}")

    def delay(self, attempts: int) -> float:
        """The pause after ``attempts`` (>= 1) failed tries in a row."""
        # min() on the exponent too: 2.0 ** 1100 would overflow a float.
        return min(self.initial * 2.0 ** min(max(attempts, 1) - 1, 64), self.maximum)


def _described(error: BaseException) -> str:
    text = str(error)
    return f"{type(error).__name__}: {text}" if text else type(error).__name__


class Faults:
    """The current run of transient failures of one loop (None while things work), and
    the last run that ended (``last``)."""

    __slots__ = ("_started", "current", "last")

    def __init__(self) -> None:
        self.current: Retrying | None = None
        self.last: Recovery | None = None
        self._started = 0.0

    def failed(self, error: BaseException) -> Retrying:
        """Count one more failure in a row, ``error`` the latest."""
        current = self.current
        if current is None:
            self._started = time.monotonic()
            current = Retrying(datetime.now(UTC), 1, _described(error))
        else:
            current = Retrying(current.since, current.attempts + 1, _described(error))
        self.current = current
        return current

    def worth_logging(self) -> bool:
        """Log the 1st, 2nd, 4th, 8th, ... failure of a run: growing intervals, no flood."""
        current = self.current
        return current is not None and current.attempts & (current.attempts - 1) == 0

    def recovered(self, logger: logging.Logger, what: str, extra: Mapping[str, object] | None = None) -> None:
        """The loop did its work again: end the run (logging it, if there was one, with
        the loop's fields ``extra``)."""
        current = self.current
        if current is None:
            return
        self.current = None
        self.last = Recovery(current.since, datetime.now(UTC), current.attempts, current.error)
        logger.warning(
            "%s recovered after %d failed attempt%s over %.1f s",
            what,
            current.attempts,
            "" if current.attempts == 1 else "s",
            time.monotonic() - self._started,
            extra=extra,
        )

    def log(
        self, logger: logging.Logger, what: str, delay: float, extra: Mapping[str, object] | None = None
    ) -> None:
        """Log the current failure if it is one worth logging (with the loop's fields ``extra``)."""
        current = self.current
        if current is None or not self.worth_logging():
            return
        logger.warning(
            "%s: attempt %d failed (%s); retrying in %.2g s (failing since %s)",
            what,
            current.attempts,
            current.error,
            delay,
            current.since.isoformat(timespec="seconds"),
            extra=extra,
        )
