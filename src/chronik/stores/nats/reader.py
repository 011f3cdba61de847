"""Reading the global log of a NATS store: pages for ``read_all`` and subscriptions.

Ordering guarantee: JetStream's stream leader assigns sequences in commit order and
a consumer delivers a stream's messages in sequence order, only once they are stored;
there is no sequence that can still commit before one already delivered. So a page
never holds an event while an earlier one can still commit, and a checkpoint (the
position of the last event read, see ``_messages``) resumes exactly.

A reader keeps one ephemeral pull consumer while the checkpoints it is asked for
follow each other, and a buffer of messages it fetched but has not handed out (an
append's message may be split across pages). A single category filter runs on the
server (the consumer's filter subject ``chronik.<stream>.<category>.*``); several
categories and types are filtered here. When the server has nothing more for a
filtered consumer, the page's checkpoint moves to the log's last message as read
*before* that final, empty fetch, so it moves past skipped messages and never past
one that could still match.

Waiting: writers publish a core NATS message on ``chronik-wake.<stream>`` after each
append (as PostgreSQL's NOTIFY, a hint only); a waiting reader wakes on it, and the
subscription loop reads again every ``WAIT_SLICE`` in any case.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections import deque
from typing import Final

from nats.aio.msg import Msg
from nats.aio.subscription import Subscription

from chronik.backend import LogPage, position_after, unlock_events_async
from chronik.errors import OperationalError, PersistenceError, StoreClosedError, is_transient
from chronik.events import Checkpoint, RecordedEvent, category_of
from chronik.stores.nats._connection import Connection, Delivered, Pull
from chronik.stores.nats._messages import KIND, SLOT, StoredMessage, decode_message, sequence_of
from chronik.stores.nats._subjects import encode_token, stream_of_subject

__all__ = ["AsyncNatsLogReader"]

FETCH: Final = 256  # messages asked for at once
_PAUSE: Final = 0.25  # seconds between attempts while the server is away
_AWAY: Final = 30.0  # seconds a reader keeps trying before it gives up


class AsyncNatsLogReader:
    """A reader of the log (``chronik.store.AsyncLogReader``) on a consumer of its own."""

    def __init__(self, conn: Connection) -> None:
        self.conn = conn
        self.prefix = conn.config.prefix
        self._pull: Pull | None = None
        self._filter: str | None = None
        self._consumed = 0  # sequence up to which the consumer has nothing more for us
        self._buffer: deque[StoredMessage] = deque()
        self._closed = False
        self._wake = asyncio.Event()
        self._wake_sub: Subscription | None = None

    # -- pages ----------------------------------------------------------------------------

    async def read_page(
        self,
        after: Checkpoint | None,
        size: int,
        categories: tuple[str, ...] | None,
        types: tuple[str, ...] | None,
    ) -> LogPage:
        position = position_after(after, KIND)
        if self._closed:
            return LogPage([], after)
        # A server restarting (or a cluster electing a leader) forgets the reader's
        # consumer: the page is read again from `after`, on a new consumer. Nothing is
        # handed out twice, as a page is only returned whole. A transient error (the
        # server away: a timeout, no responders, a lost connection) goes to the caller
        # at once, after the consumer is dropped: a subscription rides it out, reading
        # again from the same checkpoint, and says that it is retrying meanwhile (a
        # loop here would hide the outage from it for as long as the loop lasted).
        # JetStream's refusals while it settles (a consumer it no longer knows) are
        # tried again here, on a new consumer, for a while.
        deadline = time.monotonic() + max(_AWAY, 3 * self.conn.config.request_timeout)
        while True:
            try:
                page = await self._read_page(after, position, size, categories, types)
            except (OperationalError, PersistenceError) as err:
                await self._forget()
                if is_transient(err) or self._closed or self.conn.closed or time.monotonic() > deadline:
                    raise
                await asyncio.sleep(_PAUSE)
                continue
            await unlock_events_async(self.conn.codec, page.events)
            return page

    async def _forget(self) -> None:
        pull, self._pull = self._pull, None
        self._buffer.clear()
        if pull is not None:
            await pull.close()

    async def _read_page(
        self,
        after: Checkpoint | None,
        position: int,
        size: int,
        categories: tuple[str, ...] | None,
        types: tuple[str, ...] | None,
    ) -> LogPage:
        if categories is not None and not categories:  # nothing can match: skip to the end
            last = await self.conn.last_sequence() * SLOT
            return LogPage([], Checkpoint(KIND, (last,)) if last > position else after)
        server_side = categories is not None and len(categories) == 1
        filter_subject = (
            f"{self.prefix}.{encode_token(categories[0])}.*" if categories and server_side else None
        )
        wanted_categories = None if server_side or categories is None else frozenset(categories)
        wanted_types = None if types is None else frozenset(types)
        pull = await self._position(position, filter_subject)
        events: list[RecordedEvent] = []
        reached = position
        buffer = self._buffer
        while len(events) < size:
            if not buffer:
                if await self._refill(pull):
                    continue
                if filter_subject is not None:
                    end = await self._skip_to_end(pull)
                    if end is None:
                        continue  # something came meanwhile
                    reached = max(reached, end)
                break
            message = buffer[0]
            if wanted_categories is not None and category_of(message.stream_id) not in wanted_categories:
                # One stream per message: a message of another category is passed over whole,
                # without building its events.
                buffer.popleft()
                self._consumed = message.seq
                reached = max(reached, message.last_position)
                continue
            fresh = message.events(self.conn.codec, reached)
            taken = fresh[: size - len(events)]
            if taken:
                reached = taken[-1].position
            for event in taken:
                if wanted_types is None or event.type in wanted_types:
                    events.append(event)
            if len(taken) == len(fresh):
                buffer.popleft()
                self._consumed = message.seq
                reached = max(reached, message.last_position)
        checkpoint = after if reached == position else Checkpoint(KIND, (reached,))
        return LogPage(events, checkpoint)

    async def _position(self, position: int, filter_subject: str | None) -> Pull:
        """The consumer, placed to deliver what follows ``position`` (made anew if need be)."""
        seq = sequence_of(position)
        start = seq if position and position != seq * SLOT else seq + 1
        pull = self._pull
        reusable = (
            pull is not None
            and self._filter == filter_subject
            and self._consumed < start
            and (self._consumed == start - 1 or (self._buffer and self._buffer[0].seq >= start))
        )
        if pull is not None and reusable:
            return pull
        if pull is not None:
            await pull.close()
        self._pull = None
        self._buffer.clear()
        pull = await Pull(self.conn, self.conn.config.stream, filter_subject, start).open()
        self._pull, self._filter, self._consumed = pull, filter_subject, start - 1
        return pull

    async def _refill(self, pull: Pull) -> bool:
        delivered = await pull.fetch(FETCH)
        for message in delivered:
            self._buffer.append(self._decode(message))
        return bool(delivered)

    async def _skip_to_end(self, pull: Pull) -> int | None:
        """After an empty fetch of a filtered consumer: how far nothing more matches.

        The log's end is read first, then the consumer asked once more; only if that
        still finds nothing is everything up to that end known not to match.
        """
        last = await self.conn.last_sequence()
        if await self._refill(pull):
            return None
        # The consumer's "nothing" is checked against the stream itself: the next
        # matching message after what was consumed, read from the stream's leader.
        assert pull.filter_subject is not None
        following = await self.conn.next_message(pull.filter_subject, self._consumed + 1)
        if following is not None and following <= last:
            raise OperationalError(f"the reader's consumer has not delivered message {following} yet")
        self._consumed = max(self._consumed, last)
        return last * SLOT

    def _decode(self, message: Delivered) -> StoredMessage:
        return decode_message(
            message.seq,
            stream_of_subject(self.prefix, message.subject),
            message.data,
            message.timestamp_ns // 1000,
        )

    # -- waiting --------------------------------------------------------------------------

    async def wait_for_events(self, after: Checkpoint | None, timeout: float) -> bool:
        if self.conn.closed:
            raise StoreClosedError(f"the NATS store at {self.conn.config.url} is closed")
        if self._closed:
            return False
        position = position_after(after, KIND)
        if self._wake_sub is None:
            await self.conn.ready()
            self._wake_sub = await self.conn.nc.subscribe(
                f"chronik-wake.{self.conn.config.stream}", cb=self._woken
            )
        self._wake.clear()
        if self._buffer and self._buffer[-1].last_position > position:
            return True
        try:
            if await self.conn.last_sequence() * SLOT > position:
                return True
        except OperationalError:
            # The server is away (restarting, electing): let the next read find out.
            await asyncio.sleep(min(max(timeout, 0.0), _PAUSE))
            return True
        with contextlib.suppress(asyncio.TimeoutError):
            await asyncio.wait_for(self._wake.wait(), max(timeout, 0.0))
        return self._wake.is_set() and not self._closed

    async def _woken(self, msg: Msg) -> None:
        self._wake.set()

    async def count_events(
        self,
        after: Checkpoint | None,
        categories: tuple[str, ...] | None,
        types: tuple[str, ...] | None,
    ) -> int:
        """Counted by reading the log after ``after`` (JetStream counts messages, not events)."""
        reader = AsyncNatsLogReader(self.conn)
        try:
            count = 0
            while True:
                page = await reader.read_page(after, 5000, categories, types)
                count += len(page.events)
                if page.checkpoint == after:
                    return count
                after = page.checkpoint
        finally:
            await reader.close()

    async def close(self) -> None:
        self._closed = True
        self._wake.set()
        pull, self._pull = self._pull, None
        wake, self._wake_sub = self._wake_sub, None
        self._buffer.clear()
        if pull is not None:
            await pull.close()
        if wake is not None and not self.conn.closed:
            with contextlib.suppress(Exception):
                await wake.unsubscribe()
