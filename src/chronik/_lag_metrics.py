"""Lag as OpenTelemetry gauges: how far each observed runner is behind, from its ``status()``.

Projection runners, process managers and relays (a relay is a projection runner
of kind ``relay``), sync and asyncio, put themselves here when they start running,
if metrics go somewhere by then; anything else whose ``status()`` has the same
shape (a ``name``, a ``kind`` and a ``lag`` with ``events`` and ``seconds``) is
added with :func:`chronik.telemetry.observe_lag`. Runners are held weakly: one that is
garbage collected drops out by itself.

The gauges are observed when the SDK's metric reader collects (a
``PeriodicExportingMetricReader``: on its own thread, every export interval).
``status()`` measures lag by reading the store (a read or two per gauge and
collection). An asyncio runner's ``status()`` runs on its own event loop: from the
reader's thread it is waited for (at most :data:`TIMEOUT` seconds); a collection
made on that loop itself cannot wait for it, so it reports the last status taken
and asks for a fresh one, which the next collection reports.
"""

from __future__ import annotations

import asyncio
import inspect
import logging
import threading
import weakref
from typing import TYPE_CHECKING, Any, Final

from chronik.errors import ConfigurationError

if TYPE_CHECKING:
    from opentelemetry.metrics import CallbackOptions, Meter, Observation

__all__ = ["TIMEOUT", "forget", "observe", "register_gauges"]

TIMEOUT: Final = 5.0
"""Seconds a collection waits for an asyncio runner's status."""

_log: Final = logging.getLogger("chronik.telemetry")


class _Observed:
    __slots__ = ("loop", "refreshing", "status")

    def __init__(self, loop: asyncio.AbstractEventLoop | None) -> None:
        self.loop = loop
        self.status: Any = None
        self.refreshing = False


_observed: Final[weakref.WeakKeyDictionary[Any, _Observed]] = weakref.WeakKeyDictionary()
_lock: Final = threading.Lock()


def observe(runner: Any) -> None:
    """Report ``runner``'s lag in the gauges (again: a no-op)."""
    status = getattr(runner, "status", None)
    if not callable(status):
        raise ConfigurationError(f"observe_lag needs something with a status() method, got {runner!r}")
    loop: asyncio.AbstractEventLoop | None = None
    if inspect.iscoroutinefunction(status):
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            raise ConfigurationError(
                f"{runner!r} is an asyncio runner: observe its lag from its own event loop"
            ) from None
    with _lock:
        if runner not in _observed:
            _observed[runner] = _Observed(loop)


def forget(runner: Any) -> None:
    """Stop reporting ``runner``'s lag."""
    with _lock:
        _observed.pop(runner, None)


def _refresh_later(runner: Any, entry: _Observed) -> None:
    """On the runner's own loop: take its status in a task, for the next collection."""
    if entry.refreshing:
        return
    entry.refreshing = True

    async def refresh() -> None:
        try:
            entry.status = await runner.status()
        except Exception as err:
            _log.debug("could not take the status of %r: %s", runner, err)
        finally:
            entry.refreshing = False

    assert entry.loop is not None
    entry.loop.create_task(refresh())


def _take(runner: Any, entry: _Observed) -> None:
    loop = entry.loop
    if loop is None:
        entry.status = runner.status()
    else:
        try:
            running: asyncio.AbstractEventLoop | None = asyncio.get_running_loop()
        except RuntimeError:
            running = None
        if running is loop:
            _refresh_later(runner, entry)
            return
        if loop.is_closed():
            forget(runner)
            entry.status = None
            return
        entry.status = asyncio.run_coroutine_threadsafe(runner.status(), loop).result(TIMEOUT)


def _statuses() -> list[Any]:
    with _lock:
        observed = list(_observed.items())
    found = []
    for runner, entry in observed:
        try:
            _take(runner, entry)
        except Exception as err:
            # A store that cannot be reached leaves a gap in the series (the runner's
            # own status says why), not an error in the exporter.
            _log.debug("could not take the status of %r: %s", runner, err)
            entry.status = None
        if entry.status is not None:
            found.append(entry.status)
    return found


def _attributes(status: Any) -> dict[str, Any]:
    attributes: dict[str, Any] = {"chronik.kind": str(status.kind), "chronik.name": str(status.name)}
    version = getattr(status, "version", None)
    if isinstance(version, int):
        attributes["chronik.version"] = version
    partition = getattr(status, "partition", None)
    if partition is not None:
        attributes["chronik.partition"] = str(partition)
    return attributes


def register_gauges(meter: Meter) -> None:
    """Create the lag gauges on ``meter``."""
    from opentelemetry.metrics import Observation

    def events(options: CallbackOptions) -> list[Observation]:
        return [
            Observation(s.lag.events, _attributes(s))
            for s in _statuses()
            if getattr(s, "lag", None) is not None
        ]

    def seconds(options: CallbackOptions) -> list[Observation]:
        return [
            Observation(s.lag.seconds, _attributes(s))
            for s in _statuses()
            if getattr(s, "lag", None) is not None
        ]

    meter.create_observable_gauge(
        "chronik.lag.events",
        [events],
        unit="{event}",
        description="Events a runner (projection, process manager, relay) has still to handle",
    )
    meter.create_observable_gauge(
        "chronik.lag.seconds",
        [seconds],
        unit="s",
        description="Seconds since the oldest event a runner has still to handle was recorded",
    )
