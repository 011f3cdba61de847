"""Wake-ups for readers: sending notifications off the writers' path, and waiting for them.

``NOTIFY`` inside a writer's transaction would make every commit take a lock that
is global to the server: ``PreCommit_Notify`` takes an exclusive lock on "database
0" so that queue entries appear in commit order, and holds it until the commit
record is flushed. Committing writers would wait in line for each other, which is
exactly what chronik's ordering design avoids. So writers never notify. After a
commit a writer only *pokes* its store's notifier, which costs nothing; the
notifier, on its own connection, sends one ``pg_notify`` for however many commits
poked it since its last one. With ``synchronous_commit`` off on that connection,
the notification does not wait for a disk flush either: it is a hint, and losing
one in a crash only means a reader polls a little later.

The notifier sends at most one notification every ``NOTIFY_INTERVAL`` (10 ms): the
first commit after a quiet spell is announced at once, and the commits of a busy
spell are gathered into one notification per interval. Sending one per commit cost
a single-threaded writer about a quarter of its time (a thread switch and a round
trip for every commit); readers now learn of a busy writer's commits at most 10 ms
late.

Notifications are never the source of truth: a reader always reads the log after
waking, and wakes on its own timeout when a notification is lost.

Readers of the committing store itself, in the same process, do not wait for the
notification: the poke also pokes their :class:`Waker` directly, so a subscriber
learns of a commit of its own process at once, not after the notifier's interval
and a round trip through the server (a p50 of 3.5 ms, against 0.4 ms for a raw
LISTEN, when commits came every 4 ms).

The sync store uses :class:`Notifier` (a daemon thread), :class:`Waker` and
:func:`wait_notification` (``select`` on the listening socket and a pipe); the async
store their asyncio twins. They are written twice because threads and tasks differ
here; everything else is generated from the async code.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import select
import threading
import time
from typing import Any

import psycopg

from chronik.stores.postgres import sql

__all__ = ["AsyncNotifier", "AsyncWaker", "Notifier", "Waker", "async_wait_notification", "wait_notification"]

logger = logging.getLogger("chronik.stores.postgres")

NOTIFY_INTERVAL = 0.01  # seconds: the shortest time between two notifications


class Notifier:
    """Coalesces pokes from committing writers into few notifications, on a thread."""

    def __init__(self, conninfo: str, channel: str) -> None:
        self._conninfo = conninfo
        self._channel = channel
        self._wake = threading.Event()
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None
        self._pending = False
        self._stopped = False

    def poke(self) -> None:
        """Ask for a notification soon; never blocks, never fails."""
        if self._thread is None:
            with self._lock:
                if self._stopped:
                    return
                if self._thread is None:
                    self._thread = threading.Thread(target=self._run, name="chronik-notify", daemon=True)
                    self._thread.start()
        if not self._pending:  # else a notification is on its way, sent after this commit
            self._pending = True
            self._wake.set()

    def _run(self) -> None:
        conn: psycopg.Connection[Any] | None = None
        last = 0.0
        try:
            while True:
                self._wake.wait()
                self._wake.clear()
                pause = last + NOTIFY_INTERVAL - time.monotonic()
                if pause > 0 and not self._stopped:
                    time.sleep(pause)  # the commits of a busy spell gather meanwhile
                # Taken before sending: a commit that pokes while we send gets a
                # notification of its own after this one, never none.
                if self._pending:
                    self._pending = False
                    last = time.monotonic()
                    try:
                        if conn is None or conn.closed:
                            conn = psycopg.Connection.connect(self._conninfo, autocommit=True)
                            conn.execute(sql.NOTIFIER_SETUP)
                        conn.execute(sql.NOTIFY, (self._channel,))
                    except Exception as err:  # a hint only: log, reconnect at the next poke
                        logger.debug("chronik notification on %s not sent: %s", self._channel, err)
                        if conn is not None:
                            conn.close()
                        conn = None
                if self._stopped:
                    return
        finally:
            if conn is not None:
                conn.close()

    def close(self) -> None:
        """Send what is pending, then stop the thread and close its connection."""
        with self._lock:
            self._stopped = True
            thread = self._thread
        self._wake.set()
        if thread is not None:
            thread.join()


class AsyncNotifier:
    """The asyncio twin of :class:`Notifier`: a task on the store's loop instead of a thread."""

    def __init__(self, conninfo: str, channel: str) -> None:
        self._conninfo = conninfo
        self._channel = channel
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._pending = False
        self._stopped = False

    def poke(self) -> None:
        """Ask for a notification soon; never blocks, never fails. Call on the store's loop."""
        if self._stopped:
            return
        if self._task is None:
            self._task = asyncio.get_running_loop().create_task(self._run(), name="chronik-notify")
        if not self._pending:
            self._pending = True
            self._wake.set()

    async def _run(self) -> None:
        conn: psycopg.AsyncConnection[Any] | None = None
        last = 0.0
        try:
            while True:
                await self._wake.wait()
                self._wake.clear()
                pause = last + NOTIFY_INTERVAL - time.monotonic()
                if pause > 0 and not self._stopped:
                    await asyncio.sleep(pause)
                if self._pending:
                    self._pending = False
                    last = time.monotonic()
                    try:
                        if conn is None or conn.closed:
                            conn = await psycopg.AsyncConnection.connect(self._conninfo, autocommit=True)
                            await conn.execute(sql.NOTIFIER_SETUP)
                        await conn.execute(sql.NOTIFY, (self._channel,))
                    except Exception as err:  # a hint only: log, reconnect at the next poke
                        logger.debug("chronik notification on %s not sent: %s", self._channel, err)
                        if conn is not None:
                            await conn.close()
                        conn = None
                if self._stopped:
                    return
        finally:
            if conn is not None:
                await conn.close()

    async def close(self) -> None:
        """Send what is pending, then stop the task and close its connection."""
        self._stopped = True
        self._wake.set()
        task, self._task = self._task, None
        if task is not None:
            await task


class Waker:
    """Lets ``close()`` from any thread interrupt a reader that is waiting (a self-pipe),
    and a commit of the reader's own store wake it (:meth:`poke`)."""

    def __init__(self) -> None:
        self._read, self._write = os.pipe()
        os.set_blocking(self._read, False)
        os.set_blocking(self._write, False)
        self.woken = False

    def wake(self) -> None:
        self.woken = True
        with contextlib.suppress(OSError):  # full pipe: already awake; closed: done
            os.write(self._write, b"!")

    def poke(self) -> None:
        """Something was committed: a waiting reader returns to read (never blocks)."""
        with contextlib.suppress(OSError):  # full pipe: already poked; closed: done
            os.write(self._write, b".")

    def drain(self) -> None:
        with contextlib.suppress(OSError):  # empty: nothing to take
            while os.read(self._read, 512):
                pass

    def fileno(self) -> int:
        return self._read

    def sleep(self, seconds: float) -> None:
        """Sleep ``seconds``, or less when woken or poked."""
        if not self.woken:
            ready, _, _ = select.select([self._read], [], [], max(seconds, 0.0))
            if ready and not self.woken:
                self.drain()  # a poke ends this sleep, not the next ones

    def close(self) -> None:
        for fd in (self._read, self._write):
            with contextlib.suppress(OSError):
                os.close(fd)


class AsyncWaker:
    """The asyncio twin of :class:`Waker`."""

    def __init__(self) -> None:
        self._event = asyncio.Event()
        self.woken = False

    def wake(self) -> None:
        self.woken = True
        self._event.set()

    def poke(self) -> None:
        """Something was committed: a waiting reader returns to read (on the store's loop)."""
        self._event.set()

    def drain(self) -> None:
        if not self.woken:
            self._event.clear()

    async def wait(self) -> None:
        await self._event.wait()

    async def sleep(self, seconds: float) -> None:
        """Sleep ``seconds``, or less when woken or poked."""
        if not self.woken:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._event.wait(), max(seconds, 0.0))
            self.drain()  # a poke ends this sleep, not the next ones

    def close(self) -> None:
        pass


def wait_notification(conn: psycopg.Connection[Any], timeout: float, waker: Waker) -> bool:
    """Wait on a LISTENing connection: True on a notification, False on timeout or wake-up."""
    if _drain(conn):
        return True
    deadline = time.monotonic() + timeout
    while not waker.woken:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            return False
        ready, _, _ = select.select([conn.fileno(), waker.fileno()], [], [], remaining)
        if not ready or waker.woken:
            return False
        if waker.fileno() in ready:
            waker.drain()  # poked by a commit of this process's store
            return True
        if _drain(conn):
            return True
    return False


def _drain(conn: psycopg.Connection[Any]) -> bool:
    """Consume the notifications received so far; whether there was one."""
    got = False
    for _ in conn.notifies(timeout=0):
        got = True
    return got


async def async_wait_notification(
    conn: psycopg.AsyncConnection[Any], timeout: float, waker: AsyncWaker
) -> bool:
    """The asyncio twin of :func:`wait_notification`."""
    got = False
    async for _ in conn.notifies(timeout=0):
        got = True
    if got or waker.woken:
        return got
    notified = asyncio.ensure_future(_first_notification(conn))
    woken = asyncio.ensure_future(waker.wait())
    done, _ = await asyncio.wait(
        {notified, woken}, timeout=max(timeout, 0.0), return_when=asyncio.FIRST_COMPLETED
    )
    for task in (notified, woken):
        if task not in done:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
    if woken in done and not waker.woken:
        waker.drain()  # poked by a commit of this process's store
        return True
    return notified in done and notified.result()


async def _first_notification(conn: psycopg.AsyncConnection[Any]) -> bool:
    # Consumed to the end (stop_after ends it): an abandoned notifies() generator
    # would keep the connection's lock.
    got = False
    async for _ in conn.notifies(stop_after=1):
        got = True
    return got
