"""Deleting and retaining on NATS JetStream (the rules are ``chronik.lifecycle``'s).

A stream's state is its subject's last message: a delete publishes its deletion
event as a message of its own, with ``Nats-Expected-Last-Subject-Sequence`` set to
the last message the delete read, exactly as an append does (``writing.py``). So a
delete and an append that read the same end cannot both be stored: the leader takes
one, the other reads again and decides again. A deleted stream is one whose last
message is a deletion event; written again, it is live again.

What a stream's reads hide (``truncate_before``, ``max_count``, ``max_age``, and
after a soft delete the events before its deletion event) is its metadata, a record
``meta.<stream id>`` in the state bucket. The metadata a soft delete writes comes
after its deletion event, so a crash between the two leaves the stream deleted
(its last message says so) and, were it written again before a second try, the
writer (``writing.Writer.undeleting``) writes that metadata before its own message.

Removing events is purging: JetStream purges a subject's messages before a sequence
(a purge filtered by subject), and gives the space back as it compacts its blocks;
their entries in the ids bucket are purged after them.
An append's events travel in one message (``_messages.py``), so a scavenge removes
a message when every event in it is hidden; and it never removes a subject's last
message, which holds the stream's version and state. A hard delete purges everything
before its deletion event once that event is stored; if the purge fails, the stream
is deleted for good all the same, and a scavenge purges what is left.

JetStream cannot change a stored message, so this store cannot replace an event in
place: it has no ``EventRepair`` (docs/lifecycle.md).
"""

from __future__ import annotations

import asyncio
import time
from typing import Final

import msgspec
import nats.errors

from chronik.backend import PreparedWrite, prepare_write
from chronik.errors import OperationalError, WrongExpectedVersionError
from chronik.events import ExpectedVersion
from chronik.lifecycle import (
    DeleteMode,
    DeleteResult,
    ScavengeResult,
    StreamMetadata,
    check_metadata_target,
    decide_delete,
    deletion_event,
    max_age_micros,
    scavenge_below,
)
from chronik.stores.nats._connection import Connection, Pull, translate
from chronik.stores.nats._messages import StoredMessage, decode_message, sequence_of
from chronik.stores.nats._subjects import subject_of_stream
from chronik.stores.nats.projection_state import StateBucket
from chronik.stores.nats.writing import Writer

__all__ = ["Lifecycle"]

_ATTEMPTS: Final = 1000  # a delete decided again, while appends keep taking the stream's end
_CHUNK: Final = 100  # event ids forgotten at once (one request each)


class Lifecycle:
    """A NATS store's deletes, metadata and scavenges (see the module's docstring)."""

    def __init__(self, conn: Connection, writer: Writer, state: StateBucket) -> None:
        self.conn = conn
        self.writer = writer
        self.state = state
        self.prefix = conn.config.prefix
        writer.undeleting = self.keep_hidden

    def _subject(self, stream_id: str) -> str:
        return subject_of_stream(self.prefix, stream_id)

    async def _end(self, stream_id: str) -> tuple[StoredMessage | None, int, DeleteMode | None]:
        last = await self.writer.current(self._subject(stream_id), stream_id)
        if last is None:
            return None, 0, None
        return last, last.last_version, last.deleted

    # -- deleting ------------------------------------------------------------------------------

    async def delete(self, stream_id: str, expected: ExpectedVersion, hard: bool) -> DeleteResult:
        for _ in range(_ATTEMPTS):
            _, version, mode = await self._end(stream_id)
            new = decide_delete(stream_id, expected, version, mode, hard=hard)
            if new is None:
                return DeleteResult(stream_id, mode or ("hard" if hard else "soft"))
            try:
                return await self.delete_as(stream_id, new, version)
            except WrongExpectedVersionError:
                continue  # an append took the stream's end first: decide again
        raise OperationalError(
            f"deleting stream {stream_id!r} gave up after {_ATTEMPTS} attempts: other writers kept "
            "appending to it",
            transient=True,
        )

    async def delete_as(self, stream_id: str, mode: DeleteMode, version: int) -> DeleteResult:
        """Publish the deletion event at ``version`` + 1, then hide, purge and forget."""
        marker: PreparedWrite = prepare_write(
            self.writer.conn.codec, stream_id, [deletion_event(mode, version)], version
        )
        appended = await self.writer.commit(marker, [], system=True)
        await self.keep_hidden(stream_id, appended.version)
        if mode == "hard" and version > 0:  # (a purge before sequence 1 purges everything)
            await self._purge_before(stream_id, sequence_of(appended.position))
        await self.state.delete_snapshot(stream_id)
        return DeleteResult(stream_id, mode, appended.version, appended.position, appended.checkpoint)

    async def keep_hidden(self, stream_id: str, deleted_at: int) -> None:
        """Hide the stream's events up to its deletion event at version ``deleted_at``."""
        metadata = await self.state.load_stream_metadata(stream_id)
        if (metadata.truncate_before or 0) < deleted_at + 1:
            updated = msgspec.structs.replace(metadata, truncate_before=deleted_at + 1)
            await self.state.save_stream_metadata(stream_id, updated)

    async def _purge_before(self, stream_id: str, seq: int) -> None:
        """Purge the stream's messages before ``seq``, and then their event ids from the
        ids bucket (a crash between the two leaves index entries that find nothing,
        which lookups treat as not stored)."""
        assert seq > 1, "JetStream purges the whole subject for a sequence of 1 or less"
        subject = self._subject(stream_id)
        stream = self.conn.config.stream
        ids = await self._ids_before(subject, seq)
        await self.conn.call(
            f"removing the events of stream {stream_id!r}",
            lambda js: js.purge_stream(stream, subject=subject, seq=seq),
        )
        await self._forget_ids(stream_id, ids)

    async def _ids_before(self, subject: str, seq: int) -> list[bytes]:
        ids: list[bytes] = []
        async with Pull(self.conn, self.conn.config.stream, subject) as pull:
            while pull.pending != 0:
                delivered = await pull.fetch(256)
                for d in delivered:
                    if d.seq >= seq:
                        return ids
                    ids += [entry[0] for entry in decode_message(d.seq, "", d.data, 0).entries]
                if not delivered:
                    break
        return ids

    async def _forget_ids(self, stream_id: str, ids: list[bytes]) -> None:
        # Purged from the bucket's stream, not deleted as keys: a key deleted leaves a
        # marker message behind, bigger than the entry it deletes.
        js = await self.conn.ready()
        subject, bucket = self.writer.ids_subject, self.writer.ids_stream
        for start in range(0, len(ids), _CHUNK):
            chunk = ids[start : start + _CHUNK]
            results = await asyncio.gather(
                *(js.purge_stream(bucket, subject=f"{subject}.{raw.hex()}") for raw in chunk),
                return_exceptions=True,
            )
            for result in results:
                if isinstance(result, (TimeoutError, nats.errors.Error, OSError)):
                    raise translate(result, f"forgetting the event ids of stream {stream_id!r}") from result
                if isinstance(result, BaseException):
                    raise result

    # -- metadata ------------------------------------------------------------------------------

    async def set_metadata(self, stream_id: str, metadata: StreamMetadata) -> None:
        _, _, mode = await self._end(stream_id)
        check_metadata_target(stream_id, mode)
        await self.state.save_stream_metadata(stream_id, metadata)

    async def metadata(self, stream_id: str) -> StreamMetadata:
        return await self.state.load_stream_metadata(stream_id)

    # -- scavenging ----------------------------------------------------------------------------

    async def scavenge(self) -> ScavengeResult:
        events = streams = 0
        for stream_id, metadata in await self.state.streams_with_metadata():
            removed = await self._scavenge(stream_id, metadata)
            if removed:
                events += removed
                streams += 1
        return ScavengeResult(events, streams)

    async def _scavenge(self, stream_id: str, metadata: StreamMetadata) -> int:
        last, version, mode = await self._end(stream_id)
        if last is None or mode == "archived":
            return 0
        subject = self._subject(stream_id)
        first = await self.writer.next_message(subject, stream_id, 1)
        if first is None or first.seq >= last.seq:
            return 0
        if mode is not None:
            keep = last  # a deleted stream keeps only its deletion event
        else:
            below = scavenge_below(metadata, version)
            age = max_age_micros(metadata)
            cutoff = None if age is None else time.time_ns() // 1000 - age
            keep = await self._first_kept(subject, stream_id, first, last, below, cutoff)
        if keep.seq <= first.seq:
            return 0
        await self._purge_before(stream_id, keep.seq)
        return keep.first_version - first.first_version

    async def _first_kept(
        self,
        subject: str,
        stream_id: str,
        first: StoredMessage,
        last: StoredMessage,
        below: int,
        cutoff: int | None,
    ) -> StoredMessage:
        """The stream's first message with an event still shown: one whose last version
        is at least ``below`` and that is not older than ``cutoff``. Both only grow
        along the subject, so a bisection over its sequences finds it."""

        def kept(message: StoredMessage) -> bool:
            return message.last_version >= below and (cutoff is None or message.recorded_at >= cutoff)

        if kept(first):
            return first
        low, high, found = first.seq + 1, last.seq, last
        while low <= high:
            middle = (low + high) // 2
            message = await self.writer.next_message(subject, stream_id, middle)
            if message is None or message.seq >= last.seq:
                high = middle - 1
                continue
            if kept(message):
                found, high = message, middle - 1
            else:
                low = message.seq + 1
        return found
