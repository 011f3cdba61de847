"""Appending to a NATS store: one JetStream message per append, versions exact per stream.

How an append commits, and why it is safe:

1. Event ids the caller chose are looked up in the ``<stream>-ids`` bucket. Any found
   makes it a re-send, decided by the rule every store shares (``resolve_existing``).
2. The stream's last message (``get last by subject``, answered by the stream's
   leader) gives its version and that message's sequence. The expected version is
   checked against that version.
3. The batch is published as one message with ``Nats-Expected-Last-Subject-Sequence``
   set to that sequence: JetStream's leader stores it only if no message reached the
   subject since step 2 (error 10071 otherwise). So two writers never both write
   version N+1; the loser reads again and either retries (``ANY``, or an expected
   version that still holds) or gets ``WrongExpectedVersionError`` with the version
   it lost to.
4. ``Nats-Msg-Id`` (the first event's id) makes a publish retried after a lost
   acknowledgement a duplicate the server drops, within the stream's duplicate
   window; the acknowledgement then names the original message, which decides the
   re-send as in step 1.
5. After the acknowledgement every event id goes into the ids bucket, so re-sends
   are recognised after the duplicate window too. A writer that dies between 3 and 5
   leaves ids unindexed; a re-send of the same batch within the duplicate window is
   still caught by step 4 (also when its expected version no longer holds: then a
   publish that cannot be stored asks the server about the id) and repairs the index.
   A cluster's new leader may not know the ids its predecessor deduplicated, so an
   expected version that no longer holds also looks for the batch's first id among
   the stream's messages of the last 10,000 in the log.

The stream sequence is assigned by the leader in commit order, so the log's order is
the commit order and a reader never sees a sequence before an earlier one is stored.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Sequence
from typing import Final

import msgspec
import nats.errors
import nats.js.errors

from chronik.backend import ExistingEvent, PreparedWrite, expected_version_ok, resolve_existing
from chronik.errors import EventTooLargeError, WrongExpectedVersionError
from chronik.events import AppendResult, Checkpoint
from chronik.stores.nats._connection import WRONG_LAST_SEQUENCE, Connection, Pull, translate
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
_index_decode = msgspec.msgpack.Decoder(tuple[str, int, int]).decode
_INDEX_CHUNK: Final = 1000  # index entries in flight at once
_NEVER: Final = 2**63 - 1  # a subject sequence no stream reaches
_RECENT: Final = 10_000  # how far back (in the log) a lost acknowledgement is looked for


def checkpoint_of(where: ExistingEvent) -> Checkpoint:
    return Checkpoint(KIND, (where.position,))


def stored_message(conn: Connection, raw: object, stream_id: str) -> StoredMessage:
    """A message read with ``get_msg`` (a ``RawStreamMsg``), decoded."""
    seq: int = getattr(raw, "seq", 0) or 0
    data: bytes = getattr(raw, "data", b"") or b""
    when = getattr(raw, "time", None)
    micros = int(when.timestamp() * 1_000_000) if when is not None else 0
    return decode_message(seq, stream_id, data, micros)


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

    async def current(self, subject: str, stream_id: str) -> StoredMessage | None:
        raw = await self.conn.last_message(self.stream, subject)
        return None if raw is None else stored_message(self.conn, raw, stream_id)

    async def commit(self, write: PreparedWrite, given: Sequence[uuid.UUID]) -> AppendResult:
        if given:
            stored = await self.lookup(given)
            if stored:
                return resolve_existing(write, stored, checkpoint_of)
        stream_id = write.stream_id
        subject = subject_of_stream(self.prefix, stream_id)
        events = write.events
        while True:
            last = await self.current(subject, stream_id)
            version = 0 if last is None else last.last_version
            if not expected_version_ok(write.expected, version):
                if given and last is not None:  # perhaps a re-send whose ids were never indexed
                    original = await self._duplicate_of(subject, events[0].event_id)
                    if original is None:
                        original = await self._recent_with(subject, last.seq, events[0].event_id)
                    if original is not None:
                        return await self._resend(write, original)
                raise WrongExpectedVersionError(stream_id, write.expected, version)
            payload = encode_batch(version + 1, events)
            headers = {
                "Nats-Msg-Id": events[0].event_id.hex,
                "Nats-Expected-Last-Subject-Sequence": str(0 if last is None else last.seq),
            }
            self._check_size(write, len(payload) + _header_size(headers))
            js = await self.conn.ready()
            try:
                ack = await js.publish(subject, payload, headers=headers)
            except nats.js.errors.APIError as err:
                if err.err_code == WRONG_LAST_SEQUENCE:
                    continue  # another writer got there first: read again and decide again
                raise translate(err, f"appending to stream {stream_id!r}") from err
            except (TimeoutError, nats.errors.Error, OSError) as err:
                raise translate(err, f"appending to stream {stream_id!r}") from err
            if ack.duplicate:
                return await self._resend(write, ack.seq)
            break
        await self.index(stream_id, ack.seq, version + 1, [e.event_id for e in events])
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

    async def _duplicate_of(self, subject: str, event_id: uuid.UUID) -> int | None:
        """The sequence of the message published with ``event_id`` as its ``Nats-Msg-Id``
        within the duplicate window, if any.

        JetStream checks the message id before the expected sequence: a publish whose
        expected sequence cannot hold is acknowledged as a duplicate when the id is
        known, and refused (storing nothing) when it is not.
        """
        headers = {"Nats-Msg-Id": event_id.hex, "Nats-Expected-Last-Subject-Sequence": str(_NEVER)}
        js = await self.conn.ready()
        try:
            ack = await js.publish(subject, b"", headers=headers)
        except nats.js.errors.APIError as err:
            if err.err_code == WRONG_LAST_SEQUENCE:
                return None
            raise translate(err, f"appending to {subject!r}") from err
        except (TimeoutError, nats.errors.Error, OSError) as err:
            raise translate(err, f"appending to {subject!r}") from err
        return ack.seq if ack.duplicate else None

    async def _recent_with(self, subject: str, last: int, event_id: uuid.UUID) -> int | None:
        """The sequence of a recent message on ``subject`` holding ``event_id``, if any.

        For a re-send whose acknowledgement was lost when a cluster changed leaders: the
        new leader may not know the message id, but the message is in the stream.
        """
        wanted = event_id.bytes
        async with Pull(self.conn, self.stream, subject, max(1, last - _RECENT)) as pull:
            while True:
                delivered = await pull.fetch(256)
                if not delivered:
                    return None
                for message in delivered:
                    if message.seq > last:
                        return None
                    batch = decode_message(message.seq, "", message.data, 0)
                    if any(entry[0] == wanted for entry in batch.entries):
                        return message.seq

    async def _resend(self, write: PreparedWrite, seq: int) -> AppendResult:
        """The server dropped the publish as a duplicate of message ``seq``: decide by it."""
        raw = await self.conn.call(f"reading message {seq}", lambda js: js.get_msg(self.stream, seq=seq))
        original = stored_message(self.conn, raw, write.stream_id)
        original = original._replace(stream_id=stream_of_subject(self.prefix, raw.subject or ""))
        ids = [uuid.UUID(bytes=e[0]) for e in original.entries]
        await self.index(original.stream_id, seq, original.first_version, ids)  # repair, if it was lost
        base = first_position(seq, len(ids))
        existing = {
            event_id: ExistingEvent(original.stream_id, original.first_version + i, base + i)
            for i, event_id in enumerate(ids)
        }
        return resolve_existing(write, existing, checkpoint_of)

    async def lookup(self, ids: Sequence[uuid.UUID]) -> dict[uuid.UUID, ExistingEvent]:
        """Where each of ``ids`` is stored, for those that are."""
        found = await asyncio.gather(*(self._where(event_id) for event_id in ids))
        return {event_id: where for event_id, where in zip(ids, found, strict=True) if where is not None}

    async def _where(self, event_id: uuid.UUID) -> ExistingEvent | None:
        raw = await self.conn.last_message(self.ids_stream, f"{self.ids_subject}.{event_id.hex}")
        if raw is None or not raw.data:
            return None
        stream_id, version, position = _index_decode(raw.data)
        return ExistingEvent(stream_id, version, position)

    async def index(self, stream_id: str, seq: int, first_version: int, ids: Sequence[uuid.UUID]) -> None:
        base = first_position(seq, len(ids))
        js = await self.conn.ready()
        entries = [
            (f"{self.ids_subject}.{event_id.hex}", _index_value((stream_id, first_version + i, base + i)))
            for i, event_id in enumerate(ids)
        ]
        try:
            for start in range(0, len(entries), _INDEX_CHUNK):
                chunk = entries[start : start + _INDEX_CHUNK]
                await asyncio.gather(*(js.publish(key, value) for key, value in chunk))
        except (TimeoutError, nats.errors.Error, OSError) as err:
            raise translate(err, f"indexing the event ids of stream {stream_id!r}") from err

    async def wake(self) -> None:
        """Tell waiting readers (any process) that the log grew; only a hint, never the truth."""
        try:
            await self.conn.nc.publish(self.wake_subject, b"")
        except nats.errors.Error:
            pass  # readers also look again every WAIT_SLICE
