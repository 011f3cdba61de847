"""The NATS JetStream store: asyncio by nature, with a sync face over it.

:class:`AsyncNatsEventStore` is the store; :class:`NatsEventStore` is its sync face,
``chronik.backend.BlockingStore`` over it (nats-py is asyncio only, so the sync face
runs the asyncio store on a private event-loop thread, rather than a second client).
Each method hands over to ``writing`` (appends), ``reader`` (the log) or
``projection_state`` (the key-value records).

Powers: snapshots, checkpoints, subscriptions, projection state, runners' heartbeats,
deleting streams and stream metadata with scavenging (``lifecycle.py``). It has no
transactions and no append hooks: JetStream has no transaction spanning the log and
the buckets (so no inline projections either); projections over it run from
subscriptions and save their checkpoint after their writes. It cannot repair an
event: a stored message cannot be changed.
"""

from __future__ import annotations

import asyncio
import time
import weakref
from collections.abc import AsyncIterator, Collection, Iterable, Sequence
from typing import Any, Final

from chronik.backend import (
    BlockingStore,
    Codec,
    PreparedWrite,
    SubjectKey,
    append_many_events,
    appending,
    forget_subject_async,
    normalize_filter,
    position_after,
    prepare_write,
    prepare_writes,
    subject_keys_of_async,
    unlock_events_async,
    validate_expected_version,
    validate_limit,
    validate_read_stream,
    validate_stream_id,
    write_keys_async,
)
from chronik.codec import EventRegistry, given_ids
from chronik.errors import InvalidInputError
from chronik.events import (
    ANY,
    AppendResult,
    Checkpoint,
    DeadLetter,
    ExpectedVersion,
    ProjectionState,
    RecordedEvent,
    RunnerHeartbeat,
    Snapshot,
    StreamInfo,
    StreamWrite,
    category_of,
)
from chronik.lifecycle import (
    DeleteResult,
    ScavengeResult,
    StreamMetadata,
    hidden_below,
    max_age_micros,
    validate_stream_metadata,
)
from chronik.stores.nats._config import NatsConfig
from chronik.stores.nats._connection import Connection, Pull
from chronik.stores.nats._messages import KIND, SLOT, StoredMessage, decode_message
from chronik.stores.nats._subjects import encode_token, stream_of_subject, subject_of_stream
from chronik.stores.nats.lifecycle import Lifecycle
from chronik.stores.nats.projection_state import StateBucket
from chronik.stores.nats.reader import AsyncNatsLogReader
from chronik.stores.nats.subject_keys import SubjectKeysBucket
from chronik.stores.nats.writing import Writer
from chronik.subscriptions import AsyncSubscribes

__all__ = ["AsyncNatsEventStore", "NatsEventStore"]

PAGE: Final = 1000
SYSTEM: Final = "nats"
"""What telemetry calls this backend (``db.system.name``)."""
_IDLE: Final = 20.0  # seconds a page's reader waits for the next page (consumers live 60)
_FEW_GETS: Final = 16  # messages a bounded read_stream fetches by direct gets


class AsyncNatsEventStore(AsyncSubscribes):
    """An event store in a JetStream stream (``chronik.store.AsyncEventStore`` and the
    powers named in the module docstring). It connects on first use."""

    is_async: Final = True

    def __init__(self, url: str, registry: EventRegistry | None = None, **options: Any) -> None:
        self.config = NatsConfig.parse(url, options)
        self.codec = Codec(registry, max_event_size=self.config.max_event_size)
        self._conn = Connection(self.config, self.codec)
        self._writer = Writer(self._conn)
        self._state = StateBucket(self._conn)
        self._lifecycle = Lifecycle(self._conn, self._writer, self._state)
        self.codec.subject_keys = SubjectKeysBucket(self._conn)
        self._readers: weakref.WeakSet[AsyncNatsLogReader] = weakref.WeakSet()
        self._idle: tuple[AsyncNatsLogReader, float] | None = None  # see _take_reader

    async def open(self) -> AsyncNatsEventStore:
        """Connect now (and create the stream and buckets when missing)."""
        await self._conn.ready()
        return self

    # -- appending ------------------------------------------------------------------------

    async def append(
        self, stream_id: str, events: Sequence[object], expected_version: ExpectedVersion = ANY
    ) -> AppendResult:
        with appending(SYSTEM, "append", stream_id, expected_version, events) as span:
            keys = await write_keys_async(self.codec, [events])
            write = _untagged(prepare_write(self.codec, stream_id, events, expected_version, keys))
            return span.done(await self._writer.commit(write, given_ids(events)))

    async def append_many(self, writes: Sequence[StreamWrite]) -> list[AppendResult]:
        """Append to one stream (as :meth:`append`); several streams are refused.

        JetStream 2.9 cannot store messages on several subjects atomically (atomic batch
        publish came in 2.12), and an append to several streams that could half-commit
        would break the contract, so it is refused before anything is sent.
        """
        with appending(SYSTEM, "append_many", events=append_many_events(writes)) as span:
            keys = await write_keys_async(self.codec, writes)
            prepared = [_untagged(write) for write in prepare_writes(self.codec, writes, keys)]
            if len(prepared) > 1:
                raise InvalidInputError(
                    f"append_many to {len(prepared)} streams "
                    f"({', '.join(repr(w.stream_id) for w in prepared)}) "
                    "is refused by the NATS store: JetStream cannot commit messages of several streams "
                    "atomically, so each stream's append must be a call of its own (nothing was written)"
                )
            return span.done([await self._writer.commit(prepared[0], given_ids(writes[0].events))])

    # -- reading --------------------------------------------------------------------------

    async def read_stream(
        self,
        stream_id: str,
        from_version: int = 1,
        to_version: int | None = None,
        *,
        backwards: bool = False,
        limit: int | None = None,
    ) -> list[RecordedEvent]:
        stream_id, low, high, limit = validate_read_stream(stream_id, from_version, to_version, limit)
        subject = subject_of_stream(self.config.prefix, stream_id)
        # The stream's end and its metadata at once: what reads hide (lifecycle.py).
        last, metadata = await asyncio.gather(
            self._writer.current(subject, stream_id), self._state.load_stream_metadata(stream_id)
        )
        if last is None or limit == 0 or last.deleted is not None:
            return []
        high = last.last_version if high is None else min(high, last.last_version)
        low = max(low, hidden_below(metadata, last.last_version))
        if low > high:
            return []
        age = max_age_micros(metadata)
        if age is not None:
            # An append's events share their message's time: whole messages are hidden.
            return await self._younger(subject, stream_id, last, low, high, backwards, limit, age)
        if low >= last.first_version:
            messages = [last]
        else:
            messages = await self._messages_of(subject, stream_id, last, low, high, backwards, limit)
        events = [e for m in messages for e in m.events(self.codec) if low <= e.version <= high]
        if backwards:
            events.reverse()
        events = events if limit is None else events[:limit]
        await unlock_events_async(self.codec, events)
        return events

    # -- subjects' keys (crypto-shredding: subject_keys.py) ---------------------------------

    async def subject_keys(self, subjects: Collection[str], *, create: bool = False) -> dict[str, SubjectKey]:
        """The subjects' keys (``chronik.store.AsyncSubjectKeyStore``), from the codec's key store."""
        return await subject_keys_of_async(self.codec, subjects, create)

    async def forget(self, subject: str) -> None:
        """Destroy ``subject``'s key: its personal data reads as redacted from now on."""
        await forget_subject_async(self.codec, subject)

    async def _younger(
        self,
        subject: str,
        stream_id: str,
        last: StoredMessage,
        low: int,
        high: int,
        backwards: bool,
        limit: int | None,
        age: int,
    ) -> list[RecordedEvent]:
        """The events of versions ``low..high`` not older than ``age`` microseconds."""
        cutoff = time.time_ns() // 1000 - age
        messages = (
            [last]
            if low >= last.first_version
            else await self._messages_of(subject, stream_id, last, low, high, False, None)
        )
        events = [
            e
            for m in messages
            if m.recorded_at >= cutoff
            for e in m.events(self.codec)
            if low <= e.version <= high
        ]
        if backwards:
            events.reverse()
        events = events if limit is None else events[:limit]
        await unlock_events_async(self.codec, events)
        return events

    async def _messages_of(
        self,
        subject: str,
        stream_id: str,
        last: StoredMessage,
        low: int,
        high: int,
        backwards: bool,
        limit: int | None,
    ) -> list[StoredMessage]:
        """The stream's messages up to ``last`` that hold versions ``low..high`` (only the
        last ``limit`` of them backwards, the first ``limit`` forwards)."""
        start = low
        if backwards and limit is not None:
            start = max(low, high - limit + 1)
        if not backwards and limit is not None:
            high = min(high, low + limit - 1)
        first = await self._message_with(subject, stream_id, last, start)
        if first.seq >= last.seq:
            return [last]
        found = [first]
        if first.last_version >= high:
            return found
        if high - first.last_version <= _FEW_GETS:
            # A few messages at most: direct gets, one after the other, cost less than a consumer.
            seq = first.seq
            while found[-1].last_version < high:
                message = await self._writer.next_message(subject, stream_id, seq + 1)
                if message is None or message.seq >= last.seq:
                    return [*found, last]
                found.append(message)
                seq = message.seq
            return found
        # From the first message, a consumer delivering ALL of the subject is much faster
        # on nats-server 2.9 than one starting BY_START_SEQUENCE (measured: 3x).
        begin = 1 if first.first_version == 1 else first.seq + 1
        async with Pull(self._conn, self.config.stream, subject, begin) as pull:
            while True:
                delivered = await pull.fetch(256)
                if not delivered:
                    return [*found, last]
                for d in delivered:
                    if d.seq <= first.seq:
                        continue
                    if d.seq >= last.seq:
                        return [*found, last]
                    message = decode_message(d.seq, stream_id, d.data, d.timestamp_ns // 1000)
                    found.append(message)
                    if message.last_version >= high:
                        return found

    async def _message_with(
        self, subject: str, stream_id: str, last: StoredMessage, version: int
    ) -> StoredMessage:
        """The message of the stream holding ``version`` (at most ``last``'s).

        A bisection over the log's sequences with "the subject's first message at or
        after sequence N" (a direct get the stream's leader answers from its
        per-subject index): a stream's messages have increasing sequences and
        versions, so about log2(messages in the log) gets find any version, instead of
        reading the stream from its first message.
        """
        low, high = 1, last.seq
        while True:
            middle = (low + high) // 2 if version > 1 else 1
            message = await self._writer.next_message(subject, stream_id, middle)
            if message is None or message.seq >= last.seq:
                if low >= middle:
                    return last
                high = middle - 1
            elif message.first_version > version:
                high = middle - 1
            elif message.last_version < version:
                low = message.seq + 1
            else:
                return message
            if low > high:
                return last  # not reached when the stream is intact: `last` holds the rest

    def read_all(
        self,
        after: Checkpoint | None = None,
        *,
        categories: Iterable[str] | None = None,
        types: Iterable[str] | None = None,
        limit: int | None = None,
    ) -> AsyncIterator[RecordedEvent]:
        position_after(after, KIND)  # refuse a foreign checkpoint at the call
        cats = normalize_filter(categories, "categories")
        kinds = normalize_filter(types, "types")
        return self._read_all(after, cats, kinds, validate_limit(limit))

    async def _read_all(
        self,
        after: Checkpoint | None,
        categories: tuple[str, ...] | None,
        types: tuple[str, ...] | None,
        limit: int | None,
    ) -> AsyncIterator[RecordedEvent]:
        if limit == 0:
            return
        reader = await self._take_reader()
        done = False
        try:
            left = limit
            while True:
                size = PAGE if left is None else min(PAGE, left)
                page = await reader.read_page(after, size, categories, types)
                for event in page.events:
                    yield event
                if left is not None:
                    left -= len(page.events)
                    if left <= 0:
                        break
                if page.checkpoint == after:
                    break
                after = page.checkpoint
            done = True
        finally:
            if done:
                await self._give_back(reader)
            else:
                await reader.close()

    # A caller reading the log page by page (read_all(after, limit=N) again and again,
    # as the sync face's users and the CLI do) finds the reader the previous page left:
    # its consumer stands where that page ended and its buffer holds the rest of the
    # messages it fetched, so no page makes a consumer or fetches a message again.
    async def _take_reader(self) -> AsyncNatsLogReader:
        idle, self._idle = self._idle, None
        if idle is not None:
            reader, since = idle
            if time.monotonic() - since < _IDLE:
                return reader
            await reader.close()
        return AsyncNatsLogReader(self._conn)

    async def _give_back(self, reader: AsyncNatsLogReader) -> None:
        if self._idle is None and not self._conn.closed:
            self._idle = (reader, time.monotonic())
        else:
            await reader.close()

    async def stream_info(self, stream_id: str) -> StreamInfo:
        stream_id = validate_stream_id(stream_id)
        last = await self._writer.current(subject_of_stream(self.config.prefix, stream_id), stream_id)
        if last is None:
            return StreamInfo(stream_id, 0)
        if last.deleted is not None:
            return StreamInfo(stream_id, 0, last.deleted)
        return StreamInfo(stream_id, last.last_version)

    async def list_streams(
        self, *, category: str | None = None, after: str | None = None, limit: int = 100
    ) -> list[StreamInfo]:
        size = validate_limit(limit)
        if category is not None and not isinstance(category, str):
            raise InvalidInputError(f"category must be a str, got {category!r}")
        prefix = self.config.prefix
        wanted = f"{prefix}.>" if category is None else f"{prefix}.{encode_token(category)}.*"
        info = await self._conn.call(
            "listing streams", lambda js: js.stream_info(self.config.stream, subjects_filter=wanted)
        )
        ids = sorted(stream_of_subject(prefix, s) for s in (info.state.subjects or {}))
        chosen = [
            s
            for s in ids
            if (category is None or category_of(s) == category) and (after is None or s > after)
        ]
        # Deleted streams are left out: look at the candidates a page at a time.
        found: list[StreamInfo] = []
        want = len(chosen) if size is None else size
        start = 0
        while len(found) < want and start < len(chosen):
            page = chosen[start : start + want - len(found)]
            start += len(page)
            infos = await asyncio.gather(*(self.stream_info(s) for s in page))
            found += [i for i in infos if i.deleted is None]
        return found

    async def head(self) -> Checkpoint | None:
        last = await self._conn.last_sequence()
        return None if last == 0 else Checkpoint(KIND, (last * SLOT,))

    def log_reader(self) -> AsyncNatsLogReader:
        """A new reader of the log (``chronik.store.AsyncLogReader``) with a consumer of its own."""
        reader = AsyncNatsLogReader(self._conn)
        self._readers.add(reader)
        return reader

    # -- deleting and retaining (lifecycle.py) ------------------------------------------------

    async def delete_stream(
        self, stream_id: str, expected_version: ExpectedVersion = ANY, *, hard: bool = False
    ) -> DeleteResult:
        """Delete ``stream_id`` if it is at ``expected_version`` (``docs/lifecycle.md``)."""
        stream_id = validate_stream_id(stream_id)
        expected = validate_expected_version(expected_version)
        return await self._lifecycle.delete(stream_id, expected, hard)

    async def set_stream_metadata(self, stream_id: str, metadata: StreamMetadata) -> None:
        """Replace the stream's metadata; reads of the stream respect it at once."""
        stream_id = validate_stream_id(stream_id)
        await self._lifecycle.set_metadata(stream_id, validate_stream_metadata(metadata))

    async def get_stream_metadata(self, stream_id: str) -> StreamMetadata:
        """The stream's metadata (every limit None when it has none)."""
        return await self._lifecycle.metadata(validate_stream_id(stream_id))

    async def scavenge(self) -> ScavengeResult:
        """Purge what deletes and metadata hide (whole messages; see ``lifecycle.py``)."""
        return await self._lifecycle.scavenge()

    # -- snapshots, checkpoints, projection state ------------------------------------------

    async def save_snapshot(self, snapshot: Snapshot) -> None:
        await self._state.save_snapshot(snapshot)

    async def load_snapshot(self, stream_id: str) -> Snapshot | None:
        return await self._state.load_snapshot(stream_id)

    async def save_checkpoint(self, name: str, checkpoint: Checkpoint) -> None:
        await self._state.save_checkpoint(name, checkpoint)

    async def load_checkpoint(self, name: str) -> Checkpoint | None:
        return await self._state.load_checkpoint(name)

    async def delete_checkpoint(self, name: str) -> None:
        await self._state.delete_checkpoint(name)

    async def save_projection_state(self, state: ProjectionState) -> None:
        await self._state.save_projection_state(state)

    async def projection_states(self, name: str | None = None) -> list[ProjectionState]:
        return await self._state.projection_states(name)

    async def delete_projection_state(self, name: str, version: int) -> None:
        await self._state.delete_projection_state(name, version)

    async def park_event(self, letter: DeadLetter) -> None:
        await self._state.park_event(letter)

    async def dead_letters(self, projection: str | None = None) -> list[DeadLetter]:
        return await self._state.dead_letters(projection)

    async def delete_dead_letter(self, projection: str, version: int, position: int) -> None:
        await self._state.delete_dead_letter(projection, version, position)

    async def save_heartbeat(self, heartbeat: RunnerHeartbeat) -> None:
        await self._state.save_heartbeat(heartbeat)

    async def heartbeats(self, name: str | None = None) -> list[RunnerHeartbeat]:
        return await self._state.heartbeats(name)

    async def delete_heartbeat(self, runner_id: str) -> None:
        await self._state.delete_heartbeat(runner_id)

    # -- lifecycle --------------------------------------------------------------------------

    async def size(self) -> int:
        """Bytes the store's JetStream stream and its three buckets hold."""
        return await self._conn.size()

    async def drop(self) -> None:
        """Delete the store, for good: its JetStream stream and all three buckets, then close.

        chronik never deletes anything on its own; this is for tests and samples.
        """
        await self._conn.drop()
        await self.close()

    async def close(self) -> None:
        idle, self._idle = self._idle, None
        if idle is not None:
            await idle[0].close()
        readers, self._readers = list(self._readers), weakref.WeakSet()
        for reader in readers:
            await reader.close()
        await self._conn.close()

    async def __aenter__(self) -> AsyncNatsEventStore:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    def __repr__(self) -> str:
        return f"AsyncNatsEventStore({self.config.url!r}, stream={self.config.stream!r})"


class NatsEventStore(BlockingStore):
    """The sync face: :class:`AsyncNatsEventStore` run on a private event-loop thread."""

    def open(self) -> NatsEventStore:
        """Connect now (and create the stream and buckets when missing)."""
        store = self.async_store
        assert isinstance(store, AsyncNatsEventStore)
        self._call(store.open())
        return self

    def drop(self) -> None:
        """Delete the store, for good (see :meth:`AsyncNatsEventStore.drop`), then close."""
        store = self.async_store
        assert isinstance(store, AsyncNatsEventStore)
        try:
            self._call(store.drop())
        finally:
            self.close()

    def __repr__(self) -> str:
        return f"NatsEventStore({self.async_store!r})"


def _untagged(write: PreparedWrite) -> PreparedWrite:
    """Refuse tagged events: the NATS store has no tag index (no DCB) and would drop them."""
    for event in write.events:
        if event.tags:
            raise InvalidInputError(
                f"event {event.type!r} for stream {write.stream_id!r} has tags {list(event.tags)!r}, "
                "but the NATS store does not store tags (DCB needs memory, SQLite or PostgreSQL); "
                "nothing was written"
            )
    return write
