"""Snapshots, checkpoints, projection states, dead letters and runners' heartbeats: the
``<stream>-state`` bucket.

A JetStream key-value bucket (history 1, the stream's replicas and storage), so a
projection over a NATS store needs nothing else. Keys::

    snap.<stream id>                    the latest snapshot of a stream
    meta.<stream id>                    a stream's metadata (``lifecycle.py``)
    ckpt.<name>                         a named checkpoint
    proj.<name>.<version>               a projection version's state
    dead.<name>.<version>.<position>    a parked event
    beat.<name>.<runner id>             a runner's heartbeat

(names and ids encoded as in ``_subjects``). A key is one subject of the bucket's
stream; writing one is publishing on it, reading one is "get the last message on
it", and a listing is a consumer delivering the last message of each subject, in
sequence order. A dead letter is created only when its key is absent or deleted, so
parking the same event again changes nothing and the listing keeps the order in
which events were parked. There are no transactions across keys: a projection over
NATS saves its checkpoint after its read model's writes (at least once, idempotent
handlers), as with any read model outside the store.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Final

import msgspec
import nats.errors
import nats.js.errors

from chronik.backend import (
    heartbeat_order,
    position_after,
    validate_checkpoint_name,
    validate_dead_letter,
    validate_dead_letter_key,
    validate_heartbeat,
    validate_projection,
    validate_projection_state,
    validate_runner_id,
    validate_stream_id,
)
from chronik.errors import InvalidCheckpointError
from chronik.events import Checkpoint, DeadLetter, ProjectionState, RunnerHeartbeat, Snapshot
from chronik.lifecycle import StreamMetadata, max_age_micros
from chronik.stores.nats._connection import WRONG_LAST_SEQUENCE, Connection, Pull, translate
from chronik.stores.nats._messages import KIND
from chronik.stores.nats._subjects import decode_token, encode_token

__all__ = ["StateBucket"]

_DELETED: Final = ("DEL", "PURGE")


class _StoredMetadata(msgspec.Struct, frozen=True, omit_defaults=True):
    """A stream's metadata as kept: ``max_age`` in microseconds."""

    max_count: int | None = None
    max_age: int | None = None
    truncate_before: int | None = None

    @classmethod
    def of(cls, metadata: StreamMetadata) -> _StoredMetadata:
        return cls(metadata.max_count, max_age_micros(metadata), metadata.truncate_before)


def _metadata(value: bytes) -> StreamMetadata:
    stored = msgspec.json.decode(value, type=_StoredMetadata)
    age = None if stored.max_age is None else timedelta(microseconds=stored.max_age)
    return StreamMetadata(max_count=stored.max_count, max_age=age, truncate_before=stored.truncate_before)


_encode = msgspec.json.Encoder().encode
_snapshot = msgspec.json.Decoder(Snapshot).decode
_state = msgspec.json.Decoder(ProjectionState).decode
_letter = msgspec.json.Decoder(DeadLetter).decode
_heartbeat = msgspec.json.Decoder(RunnerHeartbeat).decode


class StateBucket:
    """The store's records beside its log, in one key-value bucket."""

    def __init__(self, conn: Connection, bucket: str | None = None) -> None:
        self.conn = conn
        bucket = bucket or conn.config.state_bucket
        self.stream = f"KV_{bucket}"
        self.subject = f"$KV.{bucket}"

    # -- keys -------------------------------------------------------------------------------

    async def _get(self, key: str) -> bytes | None:
        raw = await self.conn.last_message(self.stream, f"{self.subject}.{key}")
        if raw is None or (raw.headers or {}).get("KV-Operation") in _DELETED:
            return None
        return raw.data or b""

    async def _put(self, key: str, value: bytes, *, create: bool = False) -> bool:
        """Write ``key``; with ``create``, only if it is absent or deleted (False if not)."""
        subject = f"{self.subject}.{key}"
        headers: dict[str, str] | None = None
        if create:
            last = await self.conn.last_message(self.stream, subject)
            if last is not None and (last.headers or {}).get("KV-Operation") not in _DELETED:
                return False
            headers = {"Nats-Expected-Last-Subject-Sequence": str(0 if last is None else last.seq)}
        js = await self.conn.ready()
        try:
            await js.publish(subject, value, headers=headers)
        except nats.js.errors.APIError as err:
            if create and err.err_code == WRONG_LAST_SEQUENCE:
                return False  # created meanwhile by someone else
            raise translate(err, f"writing {key!r}") from err
        except (nats.errors.Error, TimeoutError, OSError) as err:
            raise translate(err, f"writing {key!r}") from err
        return True

    async def _purge(self, key: str) -> None:
        js = await self.conn.ready()
        headers = {"KV-Operation": "PURGE", "Nats-Rollup": "sub"}
        try:
            await js.publish(f"{self.subject}.{key}", b"", headers=headers)
        except (nats.errors.Error, TimeoutError, OSError) as err:
            raise translate(err, f"deleting {key!r}") from err

    async def _list(self, prefix: str) -> list[tuple[str, bytes]]:
        """Every live key under ``prefix`` and its value, in the order they were written."""
        found: list[tuple[str, bytes]] = []
        async with Pull(self.conn, self.stream, f"{self.subject}.{prefix}.>", last_per_subject=True) as pull:
            while pull.pending != 0:
                delivered = await pull.fetch(256)
                if not delivered:
                    break
                for message in delivered:
                    if (message.headers or {}).get("KV-Operation") not in _DELETED:
                        found.append((message.subject[len(self.subject) + 1 :], message.data))
        return found

    # -- snapshots and checkpoints ------------------------------------------------------------

    async def save_snapshot(self, snapshot: Snapshot) -> None:
        stream_id = validate_stream_id(snapshot.stream_id)
        if snapshot.recorded_at is None:
            snapshot = msgspec.structs.replace(snapshot, recorded_at=datetime.now(UTC))
        await self._put(f"snap.{encode_token(stream_id)}", _encode(snapshot))

    async def load_snapshot(self, stream_id: str) -> Snapshot | None:
        value = await self._get(f"snap.{encode_token(validate_stream_id(stream_id))}")
        return None if value is None else _snapshot(value)

    async def delete_snapshot(self, stream_id: str) -> None:
        await self._purge(f"snap.{encode_token(stream_id)}")

    # -- stream metadata (lifecycle.py) ---------------------------------------------------------

    async def load_stream_metadata(self, stream_id: str) -> StreamMetadata:
        value = await self._get(f"meta.{encode_token(stream_id)}")
        return StreamMetadata() if value is None else _metadata(value)

    async def save_stream_metadata(self, stream_id: str, metadata: StreamMetadata) -> None:
        key = f"meta.{encode_token(stream_id)}"
        if metadata == StreamMetadata():
            await self._purge(key)
        else:
            await self._put(key, _encode(_StoredMetadata.of(metadata)))

    async def streams_with_metadata(self) -> list[tuple[str, StreamMetadata]]:
        """Every stream that has metadata (deleted ones among them), with it."""
        return [
            (decode_token(key[len("meta.") :]), _metadata(value)) for key, value in await self._list("meta")
        ]

    async def save_checkpoint(self, name: str, checkpoint: Checkpoint) -> None:
        validate_checkpoint_name(name)
        if not isinstance(checkpoint, Checkpoint):
            raise InvalidCheckpointError(f"checkpoint must be a Checkpoint, got {type(checkpoint).__name__}")
        position_after(checkpoint, KIND)
        await self._put(f"ckpt.{encode_token(name)}", str(checkpoint).encode())

    async def load_checkpoint(self, name: str) -> Checkpoint | None:
        value = await self._get(f"ckpt.{encode_token(validate_checkpoint_name(name))}")
        return None if value is None else Checkpoint.parse(value.decode())

    async def delete_checkpoint(self, name: str) -> None:
        await self._purge(f"ckpt.{encode_token(validate_checkpoint_name(name))}")

    # -- projection states and dead letters ---------------------------------------------------

    async def save_projection_state(self, state: ProjectionState) -> None:
        validate_projection_state(state)
        if state.updated_at is None:
            state = msgspec.structs.replace(state, updated_at=datetime.now(UTC))
        await self._put(f"proj.{encode_token(state.name)}.{state.version}", _encode(state))

    async def projection_states(self, name: str | None = None) -> list[ProjectionState]:
        prefix = "proj" if name is None else f"proj.{encode_token(name)}"
        states = [_state(value) for _, value in await self._list(prefix)]
        return sorted(states, key=lambda s: (s.name, s.version))

    async def delete_projection_state(self, name: str, version: int) -> None:
        validate_projection(name, version)
        token = encode_token(name)
        await self._purge(f"proj.{token}.{version}")
        for key, _ in await self._list(f"dead.{token}.{version}"):
            await self._purge(key)

    async def delete_dead_letter(self, projection: str, version: int, position: int) -> None:
        validate_dead_letter_key(projection, version, position)
        await self._purge(f"dead.{encode_token(projection)}.{version}.{position}")

    async def park_event(self, letter: DeadLetter) -> None:
        validate_dead_letter(letter, KIND)
        if letter.parked_at is None:
            letter = msgspec.structs.replace(letter, parked_at=datetime.now(UTC))
        key = f"dead.{encode_token(letter.projection)}.{letter.projection_version}.{letter.event.position}"
        await self._put(key, _encode(letter), create=True)

    async def dead_letters(self, projection: str | None = None) -> list[DeadLetter]:
        prefix = "dead" if projection is None else f"dead.{encode_token(projection)}"
        return [_letter(value) for _, value in await self._list(prefix)]

    # -- runners' heartbeats -----------------------------------------------------------------

    async def save_heartbeat(self, heartbeat: RunnerHeartbeat) -> None:
        validate_heartbeat(heartbeat)
        key = f"beat.{encode_token(heartbeat.name)}.{encode_token(heartbeat.runner_id)}"
        await self._put(key, _encode(heartbeat))

    async def heartbeats(self, name: str | None = None) -> list[RunnerHeartbeat]:
        prefix = "beat" if name is None else f"beat.{encode_token(name)}"
        return sorted((_heartbeat(value) for _, value in await self._list(prefix)), key=heartbeat_order)

    async def delete_heartbeat(self, runner_id: str) -> None:
        # Keyed by name first (so one projection's are listed alone): find it by its id.
        token = encode_token(validate_runner_id(runner_id))
        for key, _ in await self._list("beat"):
            if key.rsplit(".", 1)[-1] == token:
                await self._purge(key)
