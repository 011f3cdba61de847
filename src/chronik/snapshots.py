"""Snapshots: when to take one, and how a state becomes one and back.

A snapshot saves replaying a long stream: the handler loads the latest snapshot,
then only the events after it. It is an optimisation, never the truth, so:

- it carries the state's own ``schema_version`` (set in the policy; bump it when
  the state's shape changes) and the model's name as its ``type``. A snapshot whose
  type or schema version differs from the code's is ignored (the stream is replayed
  from its first event) and replaced after the next command;
- a snapshot that matches but no longer decodes is a :class:`SnapshotDecodeError`
  naming the stream, version and type, rather than a silently different state;
- writing one happens after the command's events are committed, and a failure to
  write it is logged, never raised: the command has succeeded.

States are encoded as JSON with msgspec, so they are msgspec Structs, dataclasses
or plain JSON-like values. Nothing here does I/O.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Collection, Iterable, Sequence
from typing import Any

import msgspec

from chronik._model import Model
from chronik.codec import Codec
from chronik.errors import ConfigurationError, SnapshotDecodeError
from chronik.events import RecordedEvent, Snapshot

__all__ = ["SnapshotPolicy", "Snapshotter", "state_subjects"]


@dataclasses.dataclass(frozen=True)
class SnapshotPolicy:
    """When a command handler saves a snapshot of the state it leaves behind.

    ``every=N``: once N events were appended since the last snapshot. ``when``: a
    predicate ``when(state, new_events) -> bool`` asked after each command that
    appended events (for instance "the order was submitted"). Either may trigger.

    ``schema_version`` is the state's; ``name`` the stored type (default: the
    model's name); ``state_type`` what the snapshot decodes into (default: the
    type of the decider's initial state, or the aggregate class).
    """

    every: int | None = None
    when: Callable[[Any, Sequence[Any]], bool] | None = None
    schema_version: int = 1
    name: str | None = None
    state_type: Any = None

    def __post_init__(self) -> None:
        if self.every is not None and (
            isinstance(self.every, bool) or not isinstance(self.every, int) or self.every < 1
        ):
            raise ConfigurationError(f"SnapshotPolicy every must be an int >= 1, got {self.every!r}")
        if self.when is not None and not callable(self.when):
            raise ConfigurationError(f"SnapshotPolicy when must be a function, got {self.when!r}")
        if self.every is None and self.when is None:
            raise ConfigurationError("SnapshotPolicy needs every=N, when=predicate, or both")
        if (
            isinstance(self.schema_version, bool)
            or not isinstance(self.schema_version, int)
            or self.schema_version < 1
        ):
            raise ConfigurationError(
                f"SnapshotPolicy schema_version must be an int >= 1, got {self.schema_version!r}"
            )
        if self.name is not None and (not isinstance(self.name, str) or not self.name):
            raise ConfigurationError(f"SnapshotPolicy name must be a non-empty str, got {self.name!r}")

    def due(self, *, version: int, last_snapshot_version: int, state: Any, new_events: Sequence[Any]) -> bool:
        """Whether to snapshot ``state`` at ``version``, after ``new_events`` were appended."""
        if self.every is not None and version - last_snapshot_version >= self.every:
            return True
        return self.when is not None and bool(new_events) and bool(self.when(state, new_events))


class Snapshotter:
    """A policy bound to one model: encodes its states and restores them."""

    def __init__(self, policy: SnapshotPolicy, model: Model[Any, Any]) -> None:
        if not isinstance(policy, SnapshotPolicy):
            raise ConfigurationError(f"snapshots= takes a SnapshotPolicy, got {policy!r}")
        state_type = policy.state_type if policy.state_type is not None else model.state_type
        if state_type is None:
            raise ConfigurationError(
                f"cannot tell what a snapshot of {model.label} decodes into: "
                "pass SnapshotPolicy(state_type=...) (aggregates must be dataclasses to be snapshotted)"
            )
        try:
            self._decoder: msgspec.json.Decoder[Any] = msgspec.json.Decoder(state_type)
        except TypeError as err:
            raise ConfigurationError(
                f"a snapshot of {model.label} cannot decode into {state_type!r}: {err}"
            ) from err
        self.policy = policy
        self.type = policy.name or model.name
        self.schema_version = policy.schema_version
        self._encoder = msgspec.json.Encoder()

    def encode(self, stream_id: str, version: int, state: Any, subjects: Collection[str] = ()) -> Snapshot:
        """The snapshot of ``state`` at ``version`` (raises if the state cannot be encoded);
        ``subjects``: whose personal data the state holds (it is sealed with their keys)."""
        data = self._encoder.encode(state)
        return Snapshot(
            stream_id, version, self.type, self.schema_version, data, None, tuple(sorted(subjects))
        )

    def matches(self, snapshot: Snapshot) -> bool:
        """Whether ``snapshot`` was written by this code (same type and schema version)."""
        return snapshot.type == self.type and snapshot.schema_version == self.schema_version

    def restore(self, snapshot: Snapshot) -> Any:
        """The state in a matching ``snapshot``; :class:`SnapshotDecodeError` if it is damaged."""
        where = (
            f"snapshot of stream {snapshot.stream_id!r} at version {snapshot.version} "
            f"(type {snapshot.type!r}, schema version {snapshot.schema_version})"
        )
        if (
            isinstance(snapshot.version, bool)
            or not isinstance(snapshot.version, int)
            or snapshot.version < 1
        ):
            raise SnapshotDecodeError(
                f"{where} is damaged: a snapshot's version must be >= 1",
                stream_id=snapshot.stream_id,
                version=0,
                type=snapshot.type,
            )
        try:
            return self._decoder.decode(snapshot.data)
        except (msgspec.DecodeError, msgspec.ValidationError, TypeError) as err:
            raise SnapshotDecodeError(
                f"{where} no longer decodes: {err}. Bump SnapshotPolicy(schema_version=...) when "
                "the state's shape changes; snapshots of another schema version are ignored and replaced",
                stream_id=snapshot.stream_id,
                version=snapshot.version,
                type=snapshot.type,
            ) from err


def state_subjects(
    codec: Codec | None, events: Iterable[RecordedEvent], decided: Sequence[object] = ()
) -> frozenset[str]:
    """The subjects whose personal data a state folded from ``events`` (read) and
    ``decided`` (new) holds: a snapshot of it is sealed with their keys (``codec``: the
    store's; none, or no personal data about, gives none)."""
    if codec is None or not codec.shredding:
        return frozenset()
    found: set[str] = set()
    for event in events:
        found |= codec.live_subjects(event)
    return frozenset(found | codec.subjects_to_write(decided))
