"""Subscriptions: follow the global log from a checkpoint, history first, then live.

The loop is written once, here, for every backend. A backend supplies a
:class:`~chronik.store.LogReader` with two hooks, "read a page after a checkpoint"
and "wait until something may have been appended after it"; the loop reads pages
until one comes back empty (caught up), then waits and reads again::

    with store.subscribe(after=checkpoint, categories=["order"]) as subscription:
        for event in subscription:        # blocks for the next event
            handle(event)
            save(subscription.checkpoint)

The decisions (what a page means, when to wait) live in :class:`_Cursor`, which does
no I/O; :class:`Subscription` and :class:`AsyncSubscription` are thin shells around
it that only differ in ``await``.

Ordering: a subscription hands events out in checkpoint order, each once. The
reader's ordering guarantee (no page holds an event while an earlier one can still
commit) is what makes the seam between history and live events exact.

Faults: a read that fails with a transient error (:func:`chronik.errors.is_transient`:
the server restarting, a connection cut, a busy file) is tried again after a
capped exponential backoff (:attr:`Subscription.backoff`), for as long as it lasts,
from the same checkpoint, so nothing is skipped or handed out twice; meanwhile
:attr:`Subscription.retrying` says since when and why, and the log says so at
growing intervals. Any other error is raised to the caller.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Final, Protocol

import msgspec

from chronik._append import normalize_filter
from chronik._retry import Backoff, Faults, Recovery, Retrying
from chronik.errors import ConfigurationError, InvalidCheckpointError, InvalidInputError, is_transient
from chronik.events import Checkpoint, RecordedEvent
from chronik.store import Subscribable, is_async

if TYPE_CHECKING:
    from chronik.store import AsyncLogReader, LogPage, LogReader

__all__ = [
    "DEFAULT_BATCH_SIZE",
    "AsyncSubscribes",
    "AsyncSubscription",
    "Partition",
    "Subscribes",
    "Subscription",
    "stable_hash",
    "subscribe",
]

DEFAULT_BATCH_SIZE: Final = 500
# How long one wait_for_events call blocks before the loop looks again. Readers wake
# as soon as something commits (and on close), so this only bounds how long a lost
# wake-up could delay an event; it is not a polling interval.
WAIT_SLICE: Final = 1.0
logger = logging.getLogger("chronik.subscriptions")


def stable_hash(stream_id: str) -> int:
    """A hash of ``stream_id`` that is the same in every process, machine and release.

    The first 8 bytes of BLAKE2b (digest size 8) of the UTF-8 bytes, big-endian.
    (Python's ``hash()`` changes from process to process, so it cannot share work.)
    """
    return int.from_bytes(hashlib.blake2b(stream_id.encode("utf-8"), digest_size=8).digest(), "big")


class Partition(msgspec.Struct, frozen=True):
    """Member ``index`` of ``count``: it owns the streams whose stable hash mod ``count``
    is ``index``, so each stream's events go to exactly one member, in order."""

    index: int
    count: int

    def __post_init__(self) -> None:
        for value, what in ((self.index, "index"), (self.count, "count")):
            if isinstance(value, bool) or not isinstance(value, int):
                raise InvalidInputError(f"partition {what} must be an int, got {value!r}")
        if self.count < 1 or not 0 <= self.index < self.count:
            raise InvalidInputError(
                f"partition must have count >= 1 and 0 <= index < count, got {self.index} of {self.count}"
            )

    def owns(self, stream_id: str) -> bool:
        """Whether this member handles ``stream_id``."""
        return stable_hash(stream_id) % self.count == self.index

    def __str__(self) -> str:
        return f"{self.index}of{self.count}"


class _Readable(Protocol):
    def log_reader(self) -> LogReader: ...


class _AsyncReadable(Protocol):
    def log_reader(self) -> AsyncLogReader: ...


def validate_batch_size(batch_size: object) -> int:
    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
        raise InvalidInputError(f"batch_size must be an int >= 1, got {batch_size!r}")
    return batch_size


class _Cursor:
    """Where a subscription stands; decides what each page means. No I/O."""

    __slots__ = ("after", "buffer", "categories", "delivered", "partition", "size", "types")

    def __init__(
        self,
        after: Checkpoint | None,
        categories: Iterable[str] | None,
        types: Iterable[str] | None,
        partition: Partition | None,
        batch_size: int,
    ) -> None:
        if after is not None and not isinstance(after, Checkpoint):
            raise InvalidCheckpointError(f"after must be a Checkpoint, got {type(after).__name__}")
        if partition is not None and not isinstance(partition, Partition):
            raise InvalidInputError(f"partition must be a Partition, got {type(partition).__name__}")
        self.categories = normalize_filter(categories, "categories")
        self.types = normalize_filter(types, "types")
        self.partition = partition
        self.size = validate_batch_size(batch_size)
        # ``after``: where the next page starts. ``delivered``: after the last event
        # handed out. They differ while the buffer holds events.
        self.after = after
        self.delivered = after
        self.buffer: deque[RecordedEvent] = deque()

    def accept(self, page: LogPage) -> bool:
        """Take a page; True when it read anything (so the log may have more)."""
        moved = page.checkpoint is not None and page.checkpoint != self.after
        events = page.events
        if self.partition is not None:
            owns = self.partition.owns
            events = [e for e in events if owns(e.stream_id)]
        self.buffer.extend(events)
        if moved:
            self.after = page.checkpoint
        if not self.buffer:
            self.delivered = self.after
        return moved

    def take(self, limit: int) -> list[RecordedEvent]:
        buffer = self.buffer
        taken = [buffer.popleft() for _ in range(min(limit, len(buffer)))]
        if taken:
            self.delivered = taken[-1].checkpoint if buffer else self.after
        return taken

    def pop(self) -> RecordedEvent:
        event = self.buffer.popleft()
        self.delivered = event.checkpoint if self.buffer else self.after
        return event


def _remaining(deadline: float | None) -> float:
    if deadline is None:
        return WAIT_SLICE
    return min(WAIT_SLICE, deadline - time.monotonic())


class Subscription:
    """A live, ordered feed of the global log: an iterator that blocks for new events.

    Iterating yields events one by one and only stops when the subscription is closed
    (from any thread). :meth:`next_batch` gives up to ``batch_size`` events at a time
    and can time out, for loops that also do something when idle.
    """

    def __init__(
        self,
        store: _Readable,
        after: Checkpoint | None = None,
        *,
        categories: Iterable[str] | None = None,
        types: Iterable[str] | None = None,
        partition: Partition | None = None,
        batch_size: int = DEFAULT_BATCH_SIZE,
    ) -> None:
        self._cursor = _Cursor(after, categories, types, partition, batch_size)
        self._reader: LogReader = store.log_reader()
        self._closed = False
        self._caught_up = False
        self._faults = Faults()
        self._woken = threading.Event()
        self.backoff = Backoff()
        """How long to wait before reading again after a transient failure."""
        self.transient: Callable[[BaseException], bool] = is_transient
        """Which errors are worth reading again for (others are raised)."""

    @property
    def checkpoint(self) -> Checkpoint | None:
        """Resume here to see exactly the events this subscription has not handed out.

        It can be past the last event handed out when the filters skipped events
        after it, so a resumed filtered subscription never reads them again.
        """
        return self._cursor.delivered

    @property
    def caught_up(self) -> bool:
        """True once a read found nothing more to deliver (history done, now live)."""
        return self._caught_up and not self._cursor.buffer

    @property
    def closed(self) -> bool:
        return self._closed

    @property
    def retrying(self) -> Retrying | None:
        """The run of transient read failures going on (None while reads work)."""
        return self._faults.current

    @property
    def recovered(self) -> Recovery | None:
        """The last run of transient read failures that ended (None if there was none)."""
        return self._faults.last

    def _fill(self, deadline: float | None) -> bool:
        cursor, reader = self._cursor, self._reader
        while not self._closed:
            try:
                page = reader.read_page(cursor.after, cursor.size, cursor.categories, cursor.types)
            except Exception as err:
                self._failed(err)
                continue
            self._faults.recovered(logger, "subscription")
            moved = cursor.accept(page)
            if cursor.buffer:
                return True
            if moved:
                continue
            self._caught_up = True
            wait = _remaining(deadline)
            if wait <= 0:
                return False
            try:
                reader.wait_for_events(cursor.after, wait)
            except Exception as err:
                self._failed(err)
        return False

    def _failed(self, error: Exception) -> None:
        """A read failed: raise what retrying cannot fix, else wait to read again."""
        if not self.transient(error):
            raise error
        if self._closed:  # closed while reading: the loop ends, as it would have
            return
        retrying = self._faults.failed(error)
        delay = self.backoff.delay(retrying.attempts)
        self._faults.log(logger, f"subscription after {self._cursor.after}", delay)
        self._woken.wait(delay)

    def next_batch(self, timeout: float | None = None) -> list[RecordedEvent]:
        """Up to ``batch_size`` events, waiting up to ``timeout`` seconds (None: forever)
        for the first; empty on timeout or when closed."""
        deadline = None if timeout is None else time.monotonic() + timeout
        if self._cursor.buffer or self._fill(deadline):
            return self._cursor.take(self._cursor.size)
        return []

    def __iter__(self) -> Subscription:
        return self

    def __next__(self) -> RecordedEvent:
        if self._cursor.buffer or self._fill(None):
            return self._cursor.pop()
        raise StopIteration

    def close(self) -> None:
        """Stop: a blocked iteration ends, and the reader's connections are released."""
        self._closed = True
        self._woken.set()
        self._reader.close()

    def __enter__(self) -> Subscription:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class AsyncSubscription:
    """The asyncio twin of :class:`Subscription`: ``async for event in subscription``."""

    def __init__(
        self,
        store: _AsyncReadable,
        after: Checkpoint | None = None,
        *,
        categories: Iterable[str] | None = None,
        types: Iterable[str] | None = None,
        partition: Partition | None = None,
        batch_size: int = DEFAULT_BATCH_SIZE,
    ) -> None:
        self._cursor = _Cursor(after, categories, types, partition, batch_size)
        self._reader: AsyncLogReader = store.log_reader()
        self._closed = False
        self._caught_up = False
        self._faults = Faults()
        self._woken = asyncio.Event()
        self.backoff = Backoff()
        """As :attr:`Subscription.backoff`."""
        self.transient: Callable[[BaseException], bool] = is_transient
        """As :attr:`Subscription.transient`."""

    @property
    def checkpoint(self) -> Checkpoint | None:
        """As :attr:`Subscription.checkpoint`."""
        return self._cursor.delivered

    @property
    def caught_up(self) -> bool:
        return self._caught_up and not self._cursor.buffer

    @property
    def closed(self) -> bool:
        return self._closed

    @property
    def retrying(self) -> Retrying | None:
        """As :attr:`Subscription.retrying`."""
        return self._faults.current

    @property
    def recovered(self) -> Recovery | None:
        """As :attr:`Subscription.recovered`."""
        return self._faults.last

    async def _fill(self, deadline: float | None) -> bool:
        cursor, reader = self._cursor, self._reader
        while not self._closed:
            try:
                page = await reader.read_page(cursor.after, cursor.size, cursor.categories, cursor.types)
            except Exception as err:
                await self._failed(err)
                continue
            self._faults.recovered(logger, "subscription")
            moved = cursor.accept(page)
            if cursor.buffer:
                return True
            if moved:
                continue
            self._caught_up = True
            wait = _remaining(deadline)
            if wait <= 0:
                return False
            try:
                await reader.wait_for_events(cursor.after, wait)
            except Exception as err:
                await self._failed(err)
        return False

    async def _failed(self, error: Exception) -> None:
        """As :meth:`Subscription._failed`."""
        if not self.transient(error):
            raise error
        if self._closed:  # closed while reading: the loop ends, as it would have
            return
        retrying = self._faults.failed(error)
        delay = self.backoff.delay(retrying.attempts)
        self._faults.log(logger, f"subscription after {self._cursor.after}", delay)
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._woken.wait(), delay)

    async def next_batch(self, timeout: float | None = None) -> list[RecordedEvent]:
        """As :meth:`Subscription.next_batch`."""
        deadline = None if timeout is None else time.monotonic() + timeout
        if self._cursor.buffer or await self._fill(deadline):
            return self._cursor.take(self._cursor.size)
        return []

    def __aiter__(self) -> AsyncSubscription:
        return self

    async def __anext__(self) -> RecordedEvent:
        if self._cursor.buffer or await self._fill(None):
            return self._cursor.pop()
        raise StopAsyncIteration

    async def close(self) -> None:
        self._closed = True
        self._woken.set()
        await self._reader.close()

    async def aclose(self) -> None:
        await self.close()

    async def __aenter__(self) -> AsyncSubscription:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()


class Subscribes:
    """``subscribe``, written once, for every sync store that supplies ``log_reader()``.

    A backend inherits it (``chronik.backend.Subscribes``) to be ``Subscribable``.
    """

    def subscribe(
        self: _Readable,
        after: Checkpoint | None = None,
        *,
        categories: Iterable[str] | None = None,
        types: Iterable[str] | None = None,
        partition: Partition | None = None,
        batch_size: int = DEFAULT_BATCH_SIZE,
    ) -> Subscription:
        """Follow the global log after ``after``: history first, then live events.

        ``with store.subscribe(after=checkpoint) as subscription: for event in subscription: ...``
        """
        return Subscription(
            self, after, categories=categories, types=types, partition=partition, batch_size=batch_size
        )


class AsyncSubscribes:
    """The asyncio twin of :class:`Subscribes`, for stores whose ``log_reader()`` is async."""

    def subscribe(
        self: _AsyncReadable,
        after: Checkpoint | None = None,
        *,
        categories: Iterable[str] | None = None,
        types: Iterable[str] | None = None,
        partition: Partition | None = None,
        batch_size: int = DEFAULT_BATCH_SIZE,
    ) -> AsyncSubscription:
        """Follow the global log after ``after``: ``async for event in store.subscribe()``."""
        return AsyncSubscription(
            self, after, categories=categories, types=types, partition=partition, batch_size=batch_size
        )


def subscribe(
    store: object,
    after: Checkpoint | None = None,
    *,
    categories: Iterable[str] | None = None,
    types: Iterable[str] | None = None,
    partition: Partition | None = None,
    batch_size: int = DEFAULT_BATCH_SIZE,
) -> Subscription:
    """``store.subscribe(...)``, with a clear error for a store that cannot follow the log."""
    if not isinstance(store, Subscribable) or is_async(store):
        raise ConfigurationError(f"{store!r} does not support subscriptions (it is not Subscribable)")
    return store.subscribe(
        after, categories=categories, types=types, partition=partition, batch_size=batch_size
    )
