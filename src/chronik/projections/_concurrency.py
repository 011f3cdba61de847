"""What differs between a runner on threads and a runner on asyncio tasks, in both forms.

The projection runner, its targets and inline projections are written once, for
asyncio, and their sync modules generated (``tools/unasync.py``). What cannot be
generated lives here twice: running in the background (a daemon thread / a task),
the stop signal and its interruptible sleep (``threading.Event`` / ``asyncio.Event``),
waiting for a runner's progress, and what a handler's result means (the sync runner
refuses an awaitable; the asyncio one awaits it).
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
from collections.abc import Callable, Coroutine
from inspect import isawaitable
from typing import Any

from chronik.errors import ConfigurationError
from chronik.store import is_async

__all__ = [
    "AsyncBackground",
    "AsyncProgress",
    "AsyncStopSignal",
    "AwaitableRefusedError",
    "Background",
    "Progress",
    "StopSignal",
    "require_async_store",
    "require_sync_store",
    "settle",
    "settle_async",
]


class AwaitableRefusedError(ConfigurationError):
    """A sync runner got an awaitable from a handler (a coroutine function)."""


def settle(result: object, owner: object, what: str) -> None:
    """A sync runner's handler returned ``result``: refuse an awaitable clearly.

    ``owner`` (the projection) is only formatted when refusing: this runs per event.
    """
    if isawaitable(result):
        close = getattr(result, "close", None)
        if callable(close):
            close()  # no "coroutine was never awaited" warning
        raise AwaitableRefusedError(
            f"{owner!r}: {what} returned an awaitable (a coroutine function?); a sync runner "
            "cannot await it: run it with the asyncio twin (AsyncProjectionRunner, "
            "add_inline_projection_async) on an asyncio store, or make the handler a plain function"
        )


async def settle_async(result: object, owner: object, what: str) -> None:
    """An asyncio runner's handler returned ``result``: await it when it is awaitable."""
    if isawaitable(result):
        await result


def _twin(what: str) -> str:
    if what.startswith("Async"):
        return what.removeprefix("Async")
    if what.endswith("_async"):
        return what.removesuffix("_async")
    return f"Async{what}" if what[:1].isupper() else f"{what}_async"


def require_sync_store(store: object, what: str) -> None:
    """Refuse an asyncio store clearly, rather than with 'coroutine never awaited'."""
    if is_async(store):
        raise ConfigurationError(
            f"{what} runs on a sync store, and {store!r} is an asyncio store: use {_twin(what)}"
        )


def require_async_store(store: object, what: str) -> None:
    """Refuse a sync store clearly (its methods return results, not awaitables)."""
    if not is_async(store):
        raise ConfigurationError(
            f"{what} runs on an asyncio store, and {store!r} is a sync store: use {_twin(what)}"
        )


class Background:
    """Runs a function on a daemon thread of its own."""

    def __init__(self) -> None:
        self._thread: threading.Thread | None = None

    @property
    def started(self) -> bool:
        return self._thread is not None

    @property
    def alive(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def start(self, fn: Callable[[], None], name: str) -> None:
        self._thread = threading.Thread(target=fn, name=name, daemon=True)
        self._thread.start()

    def join(self, timeout: float | None) -> None:
        """Wait for it to end (not when called from it)."""
        thread = self._thread
        if thread is not None and thread is not threading.current_thread():
            thread.join(timeout)

    def abandon(self) -> None:
        """Stop waiting for it: a thread cannot be interrupted, so a daemon thread still
        running ends by itself, later."""


class AsyncBackground:
    """Runs a coroutine function as a task of the running loop."""

    def __init__(self) -> None:
        self._task: asyncio.Task[None] | None = None

    @property
    def started(self) -> bool:
        return self._task is not None

    @property
    def alive(self) -> bool:
        return self._task is not None and not self._task.done()

    def start(self, fn: Callable[[], Coroutine[Any, Any, None]], name: str) -> None:
        self._task = asyncio.get_running_loop().create_task(fn(), name=name)

    async def join(self, timeout: float | None) -> None:
        """Wait for it to end (not when called from it)."""
        task = self._task
        if task is not None and task is not asyncio.current_task():
            await asyncio.wait({task}, timeout=timeout)

    def abandon(self) -> None:
        """Stop waiting for it: a task still running is cancelled."""
        task = self._task
        if task is not None and not task.done() and task is not asyncio.current_task():
            task.cancel()


class StopSignal:
    """Set to stop a runner; its backoff sleeps end early when it is set."""

    def __init__(self) -> None:
        self._event = threading.Event()

    def set(self) -> None:
        self._event.set()

    def clear(self) -> None:
        self._event.clear()

    def is_set(self) -> bool:
        return self._event.is_set()

    def wait(self, timeout: float) -> bool:
        """Sleep up to ``timeout`` seconds; True if the signal was set meanwhile."""
        return self._event.wait(timeout)


class AsyncStopSignal:
    """The asyncio twin of :class:`StopSignal` (set it from the runner's loop)."""

    def __init__(self) -> None:
        self._event = asyncio.Event()

    def set(self) -> None:
        self._event.set()

    def clear(self) -> None:
        self._event.clear()

    def is_set(self) -> bool:
        return self._event.is_set()

    async def wait(self, timeout: float) -> bool:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._event.wait(), timeout)
        return self._event.is_set()


class Progress:
    """A counter of a runner's commits that others can wait on."""

    def __init__(self) -> None:
        self._condition = threading.Condition()
        self.count = 0

    def notify(self) -> None:
        with self._condition:
            self.count += 1
            self._condition.notify_all()

    def wait(self, seen: int, timeout: float) -> None:
        """Return when the count moved past ``seen``, or after ``timeout`` seconds."""
        with self._condition:
            if self.count == seen:
                self._condition.wait(timeout)


class AsyncProgress:
    """The asyncio twin of :class:`Progress`."""

    def __init__(self) -> None:
        self._changed = asyncio.Event()
        self.count = 0

    def notify(self) -> None:
        self.count += 1
        changed, self._changed = self._changed, asyncio.Event()
        changed.set()

    async def wait(self, seen: int, timeout: float) -> None:
        if self.count == seen:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._changed.wait(), timeout)
