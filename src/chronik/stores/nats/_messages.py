"""One JetStream message per append, and the positions of the events in it (no I/O).

An append's events travel and are stored as one message, so the batch is atomic
(JetStream 2.9 has no atomic multi-message publish). Its payload is MessagePack::

    [first_version, [[event_id (16 bytes), type, schema_version, data, metadata], ...]]

``data`` and ``metadata`` are the events' JSON bytes as the codec made them.

Positions. A message's JetStream sequence orders it in the log; the events inside it
are ordered by their index. Event ``i`` of ``n`` in message ``seq`` is at position
``seq * 1_000_000 - (n - 1 - i)``: the *last* event of every message is at exactly
``seq * 1_000_000``. So positions strictly increase through the log, a single-event
append at sequence 17 is at position 17000000, and the checkpoint "after message
``seq``" is known without reading the message (a filtered reader that the server let
skip messages, and ``head()``, need exactly that). A message holds at most
:data:`MAX_BATCH` events.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Final, NamedTuple

import msgspec

from chronik.codec import Codec, EncodedEvent
from chronik.errors import EventDecodeError, InvalidEventError
from chronik.events import RecordedEvent
from chronik.lifecycle import STREAM_DELETED, DeleteMode

__all__ = [
    "KIND",
    "MAX_BATCH",
    "SLOT",
    "StoredMessage",
    "decode_message",
    "encode_batch",
    "first_position",
    "sequence_of",
]

KIND: Final = "nats"
SLOT: Final = 1_000_000
MAX_BATCH: Final = SLOT

_Entry = tuple[bytes, str, int, bytes, bytes | None]
_MODES: Final[dict[str, DeleteMode]] = {"soft": "soft", "hard": "hard", "archived": "archived"}
_encode = msgspec.msgpack.Encoder().encode
_decode = msgspec.msgpack.Decoder(tuple[int, list[_Entry]]).decode


class StoredMessage(NamedTuple):
    """A message of the log, decoded as far as routing needs (payloads stay JSON bytes)."""

    seq: int
    stream_id: str
    first_version: int
    entries: list[_Entry]
    recorded_at: int  # microseconds since the Unix epoch (the server's clock)

    @property
    def last_version(self) -> int:
        return self.first_version + len(self.entries) - 1

    @property
    def last_position(self) -> int:
        return self.seq * SLOT

    @property
    def deleted(self) -> DeleteMode | None:
        """How the stream is deleted, when this message is its deletion event
        (``chronik.lifecycle``): a stream's state is its last message."""
        if len(self.entries) != 1 or self.entries[0][1] != STREAM_DELETED:
            return None
        try:
            mode = msgspec.json.decode(self.entries[0][3]).get("mode")
        except (msgspec.DecodeError, AttributeError):
            return None
        return _MODES.get(mode) if isinstance(mode, str) else None

    def events(self, codec: Codec, after_position: int = 0) -> list[RecordedEvent]:
        """Its events at positions after ``after_position``, as recorded events."""
        n = len(self.entries)
        base = self.seq * SLOT - (n - 1)
        skip = max(0, after_position - base + 1)
        stream_id, first, at = self.stream_id, self.first_version, self.recorded_at
        return [
            RecordedEvent(stream_id, first + i, base + i, KIND, e[0], e[1], e[2], e[3], e[4], at, codec)
            for i, e in enumerate(self.entries[skip:], skip)
        ]


def encode_batch(first_version: int, events: Sequence[EncodedEvent]) -> bytes:
    if len(events) > MAX_BATCH:
        raise InvalidEventError(
            f"an append to a NATS store holds at most {MAX_BATCH} events, got {len(events)}"
        )
    return _encode(
        (
            first_version,
            [(e.event_id.bytes, e.type, e.schema_version, e.data, e.metadata) for e in events],
        )
    )


def decode_message(seq: int, stream_id: str, payload: bytes, recorded_at: int) -> StoredMessage:
    try:
        first, entries = _decode(payload)
    except msgspec.DecodeError as err:
        raise EventDecodeError(
            f"message {seq} of stream {stream_id!r} is not a chronik batch: {err}", stream_id=stream_id
        ) from err
    return StoredMessage(seq, stream_id, first, entries, recorded_at)


def sequence_of(position: int) -> int:
    """The sequence of the message holding the event at ``position``."""
    return -(-position // SLOT)


def first_position(seq: int, count: int) -> int:
    return seq * SLOT - (count - 1)
