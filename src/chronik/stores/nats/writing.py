"""Appending to a NATS store: one JetStream message per append, versions exact per stream.

How an append commits, and why it is safe:

1. Event ids the caller chose are looked up in the ``<stream>-ids`` bucket. Any found
   makes it a re-send, decided by the rule every store shares (``resolve_existing``).
   The lookup is folded into step 4: a reservation that must create its key (the
   ``Nats-Expected-Last-Subject-Sequence: 0`` of its subject) fails only for an id
   indexed before, and only then are the ids looked up; an expected version that
   does not hold looks them up too, before saying so.
2. The stream's last message (``get last by subject``, answered by the stream's
   leader) gives its version and that message's sequence. The expected version is
   checked against that version. A new stream (``NO_STREAM``) and a stream whose end
   this process last read or wrote at the expected version (or ``ANY``) skip this
   read: step 3 checks the guess anyway, and a wrong one is read again.
3. The batch is published as one message with ``Nats-Expected-Last-Subject-Sequence``
   set to that sequence: JetStream's leader stores it only if no message reached the
   subject since step 2 (error 10071 otherwise). So two writers never both write
   version N+1; the loser reads again and either retries (``ANY``, or an expected
   version that still holds) or gets ``WrongExpectedVersionError`` with the version
   it lost to.
4. Before publishing, every event id goes into the ids bucket as a *reservation*:
   the stream and the subject sequence the publish expects (step 3). If the message
   is stored at all, it is the subject's very next message after that sequence, so
   one direct get ("the first message on the subject after sequence S") tells
   whether a reserved id was stored, and where. A lookup (step 1) resolves
   reservations that way and ignores those whose publish never stored anything. So
   a writer that retries an append whose acknowledgement was lost (a timeout, a
   cluster's leader killed) finds its first attempt, whatever its expected version
   (``ANY`` included), and whether or not the server still knows the message id; a
   writer dying after the publish leaves no event unindexed.
5. ``Nats-Msg-Id`` (the first event's id) also makes a publish re-sent within the
   stream's duplicate window a duplicate the server drops; the acknowledgement then
   names the original message, which decides the re-send as in step 1.

The stream sequence is assigned by the leader in commit order, so the log's order is
the commit order and a reader never sees a sequence before an earlier one is stored.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Awaitable, Callable, Sequence
from typing import Final

import msgspec
import nats.errors
import nats.js.errors

from chronik.backend import ExistingEvent, PreparedWrite, expected_version_ok, resolve_existing
from chronik.errors import EventTooLargeError, WrongExpectedVersionError
from chronik.events import ANY, NO_STREAM, AppendResult, Checkpoint, ExpectedVersion
from chronik.lifecycle import check_append, visible_version
from chronik.stores.nats._connection import WRONG_LAST_SEQUENCE, Connection, translate
from chronik.stores.nats._messages import (
    KIND,
    SLOT,
    StoredMessage,
    decode_message,
    encode_batch,
    first_position,
)
from chronik.stores.nats._subjects import stream_of_subject, subject_of_stream

__all__ = ["Writer", "checkpoint_of", "stored_message"]

_index_value = msgspec.msgpack.Encoder().encode
_index_decode = msgspec.msgpack.Decoder(list[str | int]).decode
_INDEX_CHUNK: Final = 1000  # index entries in flight at once
_KNOWN: Final = 10_000  # streams whose end a writer remembers


def checkpoint_of(where: ExistingEvent) -> Checkpoint:
    return Checkpoint(KIND, (where.position,))


def stored_message(raw: object, stream_id: str) -> StoredMessage:
    """A message read with ``get_msg`` (a ``RawStreamMsg``), decoded."""
    seq: int = getattr(raw, "seq", 0) or 0
    data: bytes = getattr(raw, "data", b"") or b""
    when = getattr(raw, "time", None)
    micros = int(when.timestamp() * 1_000_000) if when is not None else 0
    return decode_message(seq, stream_id, data, micros)


def _place(message: StoredMessage | None, event_id: uuid.UUID) -> ExistingEvent | None:
    """Where ``event_id`` is in ``message``, if it is there."""
    if message is None:
        return None
    wanted = event_id.bytes
    for i, entry in enumerate(message.entries):
        if entry[0] == wanted:
            base = first_position(message.seq, len(message.entries))
            return ExistingEvent(message.stream_id, message.first_version + i, base + i)
    return None


def _header_size(headers: dict[str, str]) -> int:
    return len("NATS/1.0\r\n\r\n") + sum(len(k) + len(v) + 4 for k, v in headers.items())


class Writer:
    """Commits prepared writes (see the module's docstring for the protocol)."""

    def __init__(self, conn: Connection) -> None:
        self.conn = conn
        config = conn.config
        self.stream = config.stream
        self.prefix = config.prefix
        self.ids_stream = f"KV_{config.ids_bucket}"
        self.ids_subject = f"$KV.{config.ids_bucket}"
        self.wake_subject = f"chronik-wake.{config.stream}"
        self._known: dict[str, tuple[int, int]] = {}  # stream id -> (version, last sequence)
        self.undeleting: Callable[[str, int], Awaitable[None]] | None = None
        """Called before a soft-deleted stream is written again, with its deletion
        event's version, to keep the events before it hidden (``lifecycle.py``)."""

    async def current(self, subject: str, stream_id: str) -> StoredMessage | None:
        raw = await self.conn.last_message(self.stream, subject)
        message = None if raw is None else stored_message(raw, stream_id)
        if message is not None and message.deleted is not None:
            # Never guessed: an append must see the deletion (lifecycle.py).
            self.forget(stream_id)
        else:
            self._remember(stream_id, (0, 0) if message is None else (message.last_version, message.seq))
        return message

    def forget(self, stream_id: str) -> None:
        """Read the stream's end again before the next append to it."""
        self._known.pop(stream_id, None)

    def _remember(self, stream_id: str, last: tuple[int, int]) -> None:
        known = self._known
        known.pop(stream_id, None)
        known[stream_id] = last
        if len(known) > _KNOWN:
            del known[next(iter(known))]

    def _guess(self, stream_id: str, expected: ExpectedVersion) -> tuple[int, int] | None:
        """The stream's (version, last sequence) as this process last saw them, when they
        can save reading them: the publish's expected sequence checks them anyway."""
        if expected is NO_STREAM:
            return (0, 0)
        known = self._known.get(stream_id)
        if known is not None and ((isinstance(expected, int) and known[0] == expected) or expected is ANY):
            return known
        return None

    async def commit(
        self, write: PreparedWrite, given: Sequence[uuid.UUID], *, system: bool = False
    ) -> AppendResult:
        """Append ``write`` (see the module's docstring). ``system``: chronik's own event
        (a deletion), checked against the stream's real version whatever its state."""
        stream_id = write.stream_id
        subject = subject_of_stream(self.prefix, stream_id)
        events = write.events
        ids = [e.event_id for e in events]
        # A guess of the stream's end (a new stream, or the end this process last read or
        # wrote) saves reading it; a wrong guess only costs a refused publish (10071). A
        # deleted stream's end is its deletion event, which no guess expects: so an
        # append to it is refused by the server and reads it.
        guess = None if system else self._guess(stream_id, write.expected)
        js = await self.conn.ready()  # connected: max_payload known
        looked = not given  # whether the ids were looked up (ids the caller did not give are new)
        while True:
            if guess is None:
                last = await self.current(subject, stream_id)
                version, after = (0, 0) if last is None else (last.last_version, last.seq)
                mode = None if last is None else last.deleted
                visible = version
                if not system:
                    check_append(stream_id, mode)
                    visible = visible_version(version, mode)
                if not expected_version_ok(write.expected, visible):
                    if not looked and (stored := await self.lookup(given)):
                        return resolve_existing(write, stored, checkpoint_of)
                    raise WrongExpectedVersionError(stream_id, write.expected, visible)
                if mode is not None and not system and self.undeleting is not None:
                    await self.undeleting(stream_id, version)
            else:
                (version, after), guess = guess, None
            payload = encode_batch(version + 1, events)
            headers = {
                "Nats-Msg-Id": events[0].event_id.hex,
                "Nats-Expected-Last-Subject-Sequence": str(after),
            }
            self._check_size(write, len(payload) + _header_size(headers))
            # Step 1 and 4 in one round trip when the ids are new: a reservation that
            # must create its key fails only for an id indexed before.
            if looked:
                await self.reserve(stream_id, after, ids)
            else:
                looked = True
                if not await self.reserve(stream_id, after, ids, only_new=True):
                    if stored := await self.lookup(given):
                        return resolve_existing(write, stored, checkpoint_of)
                    await self.reserve(stream_id, after, ids)
            try:
                ack = await js.publish(subject, payload, headers=headers)
            except nats.js.errors.APIError as err:
                if err.err_code == WRONG_LAST_SEQUENCE:
                    continue  # another writer got there first: read again and decide again
                raise translate(err, f"appending to stream {stream_id!r}") from err
            except (TimeoutError, nats.errors.Error, OSError) as err:
                self._known.pop(stream_id, None)
                raise translate(err, f"appending to stream {stream_id!r}") from err
            if ack.duplicate:
                return await self._resend(write, ack.seq)
            break
        if system:
            self.forget(stream_id)
        else:
            self._remember(stream_id, (version + len(events), ack.seq))
        await self.wake()
        position = ack.seq * SLOT
        return AppendResult(stream_id, version + len(events), position, Checkpoint(KIND, (position,)))

    def _check_size(self, write: PreparedWrite, size: int) -> None:
        limit = self.conn.max_payload
        if size <= limit:
            return
        largest = max(write.events, key=lambda e: len(e.data) + len(e.metadata or b""))
        error = EventTooLargeError(write.stream_id, largest.type, size, limit)
        error.args = (
            f"the append of {len(write.events)} event(s) to stream {write.stream_id!r} is {size} bytes "
            f"as one NATS message, over the server's max_payload of {limit} bytes; nothing was sent "
            "(an append is one message so that it is atomic: split the batch, or raise max_payload)",
        )
        raise error

    async def _resend(self, write: PreparedWrite, seq: int) -> AppendResult:
        """The server dropped the publish as a duplicate of message ``seq``: decide by it."""
        raw = await self.conn.call(f"reading message {seq}", lambda js: js.get_msg(self.stream, seq=seq))
        original = stored_message(raw, write.stream_id)
        original = original._replace(stream_id=stream_of_subject(self.prefix, raw.subject or ""))
        ids = [uuid.UUID(bytes=e[0]) for e in original.entries]
        base = first_position(seq, len(ids))
        existing = {
            event_id: ExistingEvent(original.stream_id, original.first_version + i, base + i)
            for i, event_id in enumerate(ids)
        }
        return resolve_existing(write, existing, checkpoint_of)

    async def lookup(self, ids: Sequence[uuid.UUID]) -> dict[uuid.UUID, ExistingEvent]:
        """Where each of ``ids`` is stored, for those that are (reservations resolved)."""
        entries = await asyncio.gather(*(self._entry(event_id) for event_id in ids))
        messages: dict[tuple[str, int], asyncio.Task[StoredMessage | None]] = {}
        found: dict[uuid.UUID, ExistingEvent] = {}
        for event_id, entry in zip(ids, entries, strict=True):
            if entry is None:
                continue
            if len(entry) == 3:  # written after the acknowledgement, by an earlier release
                stream_id, version, position = entry
                found[event_id] = ExistingEvent(str(stream_id), int(version), int(position))
                continue
            stream_id, after = str(entry[0]), int(entry[1])
            key = (stream_id, after)
            if key not in messages:
                messages[key] = asyncio.ensure_future(self._next_after(stream_id, after))
            message = await messages[key]
            where = _place(message, event_id)
            if where is not None:
                found[event_id] = where
        return found

    async def _entry(self, event_id: uuid.UUID) -> list[str | int] | None:
        raw = await self.conn.last_message(self.ids_stream, f"{self.ids_subject}.{event_id.hex}")
        if raw is None or not raw.data:
            return None
        return _index_decode(raw.data)

    async def _next_after(self, stream_id: str, after: int) -> StoredMessage | None:
        """The stream's first message after sequence ``after``: where a publish that
        expected ``after`` as the subject's last sequence was stored, if it was."""
        return await self.next_message(subject_of_stream(self.prefix, stream_id), stream_id, after + 1)

    async def next_message(self, subject: str, stream_id: str, seq: int) -> StoredMessage | None:
        """The first message of ``subject`` at or after sequence ``seq``, decoded."""
        raw = await self.conn.message_at_or_after(self.stream, subject, seq)
        return None if raw is None else stored_message(raw, stream_id)

    async def reserve(
        self, stream_id: str, after: int, ids: Sequence[uuid.UUID], *, only_new: bool = False
    ) -> bool:
        """Index ``ids`` as published to ``stream_id`` expecting ``after`` (step 4).

        With ``only_new``, each key is written only if it has never been (False if one
        had been: that id may be stored already, and is looked up).
        """
        js = await self.conn.ready()
        value = _index_value((stream_id, after))
        keys = [f"{self.ids_subject}.{event_id.hex}" for event_id in ids]
        headers = {"Nats-Expected-Last-Subject-Sequence": "0"} if only_new else None
        new = True
        for start in range(0, len(keys), _INDEX_CHUNK):
            chunk = keys[start : start + _INDEX_CHUNK]
            results = await asyncio.gather(
                *(js.publish(key, value, headers=headers) for key in chunk), return_exceptions=True
            )
            for result in results:
                if isinstance(result, nats.js.errors.APIError) and result.err_code == WRONG_LAST_SEQUENCE:
                    new = False
                elif isinstance(result, (TimeoutError, nats.errors.Error, OSError)):
                    raise translate(result, f"indexing the event ids of stream {stream_id!r}") from result
                elif isinstance(result, BaseException):
                    raise result
        return new

    async def wake(self) -> None:
        """Tell waiting readers (any process) that the log grew; only a hint, never the truth."""
        try:
            await self.conn.nc.publish(self.wake_subject, b"")
        except nats.errors.Error:
            pass  # readers also look again every WAIT_SLICE
