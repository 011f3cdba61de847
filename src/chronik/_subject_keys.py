"""Loading subjects' keys around the codec: before a write encodes, after a read.

The codec seals and opens personal fields (``chronik.personal``) but does no I/O, so
a store calls these: :func:`write_keys` before it encodes a write (it makes the keys
of subjects met for the first time), :func:`unlock_events` on the events a read
returns (one look-up for the whole page, attached to the events that need it). Both
go to the codec's key store (``codec.subject_keys``: the store's own, or the one
given to ``chronik.connect``), and cost nothing when no personal data is about.
"""

from __future__ import annotations

import inspect
from collections.abc import Collection, Iterable, Iterator, Sequence
from typing import Any

from chronik._sealed_snapshots import open_snapshot, seal_snapshot, snapshot_subjects
from chronik.codec import Codec
from chronik.errors import ConfigurationError, InvalidEventError
from chronik.events import RecordedEvent, Snapshot, StreamWrite
from chronik.personal import KeyRing, SubjectKey

__all__ = [
    "LiveKeys",
    "forget_subject",
    "forget_subject_async",
    "opened_snapshot",
    "opened_snapshot_async",
    "sealed_snapshot",
    "sealed_snapshot_async",
    "subject_keys_of",
    "subject_keys_of_async",
    "unlock_events",
    "unlock_events_async",
    "write_keys",
    "write_keys_async",
]


def _subjects_to_write(codec: Codec, batches: Iterable[object]) -> set[str]:
    found: set[str] = set()
    if not isinstance(batches, Iterable) or isinstance(batches, (str, bytes)):
        return found  # refused by the encoding that follows, which says why
    for events in batches:
        if isinstance(events, StreamWrite):
            events = events.events
        if isinstance(events, Iterator):
            raise InvalidEventError(
                f"events must be a list when personal data may be among them, got {type(events).__name__}"
            )
        if isinstance(events, Sequence) and not isinstance(events, (str, bytes)):
            found |= codec.subjects_to_write(events)
    return found


def _key_store(codec: Codec) -> Any:
    keys = codec.subject_keys
    if keys is None:
        raise ConfigurationError(
            "personal data needs a key store for its subjects' keys, and this store has none: "
            "pass chronik.connect(..., subject_keys=...) a chronik.store.SubjectKeyStore"
        )
    return keys


def _sync_only(keys: Any) -> None:
    if inspect.iscoroutinefunction(getattr(keys, "subject_keys", None)):
        raise ConfigurationError(
            f"{keys!r} is an asyncio key store, and this store does its I/O on threads "
            "(memory, SQLite, the sync face of PostgreSQL): give it a sync SubjectKeyStore"
        )


def write_keys(codec: Codec, batches: Iterable[object], keys: Any = None) -> KeyRing | None:
    """The keys of the subjects whose personal data these batches of events hold,
    made where a subject has none yet; None when they hold none.

    ``batches``: the events of each stream written (``[events]`` for one append), or
    the ``StreamWrite`` values of an ``append_many``. ``keys``: the key store to ask
    instead of the codec's (the same one on a transaction's connection, say).
    """
    if not codec.registry.has_personal_data:
        return None
    subjects = _subjects_to_write(codec, batches)
    if not subjects:
        return None
    keys = keys if keys is not None else _key_store(codec)
    _sync_only(keys)
    ring: dict[str, SubjectKey] = keys.subject_keys(subjects, create=True)
    return ring


async def write_keys_async(codec: Codec, batches: Iterable[object], keys: Any = None) -> KeyRing | None:
    """The asyncio twin of :func:`write_keys` (a sync key store is called directly)."""
    if not codec.registry.has_personal_data:
        return None
    subjects = _subjects_to_write(codec, batches)
    if not subjects:
        return None
    found = (keys if keys is not None else _key_store(codec)).subject_keys(subjects, create=True)
    ring: dict[str, SubjectKey] = await found if inspect.isawaitable(found) else found
    return ring


def _needing(codec: Codec, events: Sequence[RecordedEvent]) -> tuple[list[RecordedEvent], set[str]]:
    needing: list[RecordedEvent] = []
    subjects: set[str] = set()
    if not events or not codec.shredding:
        return needing, subjects
    wanted = codec.subjects_to_unlock
    for event in events:
        found = wanted(event)
        if found:
            subjects |= found
            needing.append(event)
    return needing, subjects


def unlock_events(codec: Codec, events: Sequence[RecordedEvent], keys: Any = None) -> None:
    """Load the subjects' keys that reading ``events`` needs, in one look-up, and give
    them to the events (which decode with them later, whenever they are read).

    ``keys``: as for :func:`write_keys`.
    """
    needing, subjects = _needing(codec, events)
    if not needing:
        return
    keys = keys if keys is not None else _key_store(codec)
    _sync_only(keys)
    ring = keys.subject_keys(subjects)
    for event in needing:
        event._keys = ring


async def unlock_events_async(codec: Codec, events: Sequence[RecordedEvent], keys: Any = None) -> None:
    """The asyncio twin of :func:`unlock_events`."""
    needing, subjects = _needing(codec, events)
    if not needing:
        return
    found = (keys if keys is not None else _key_store(codec)).subject_keys(subjects)
    ring = await found if inspect.isawaitable(found) else found
    for event in needing:
        event._keys = ring


def subject_keys_of(codec: Codec, subjects: Collection[str], create: bool) -> dict[str, SubjectKey]:
    """``subject_keys`` of the codec's key store: a store's ``SubjectKeyStore`` methods
    go to it, so that one given to ``chronik.connect`` answers for the store."""
    keys = _key_store(codec)
    _sync_only(keys)
    found: dict[str, SubjectKey] = keys.subject_keys(subjects, create=create)
    return found


async def subject_keys_of_async(
    codec: Codec, subjects: Collection[str], create: bool
) -> dict[str, SubjectKey]:
    """The asyncio twin of :func:`subject_keys_of`."""
    found = _key_store(codec).subject_keys(subjects, create=create)
    keys: dict[str, SubjectKey] = await found if inspect.isawaitable(found) else found
    return keys


def forget_subject(codec: Codec, subject: str) -> None:
    """``forget`` of the codec's key store (see :func:`subject_keys_of`)."""
    keys = _key_store(codec)
    _sync_only(keys)
    keys.forget(subject)


async def forget_subject_async(codec: Codec, subject: str) -> None:
    """The asyncio twin of :func:`forget_subject`."""
    done = _key_store(codec).forget(subject)
    if inspect.isawaitable(done):
        await done


def opened_snapshot(codec: Codec, snapshot: Snapshot | None, keys: Any) -> Snapshot | None:
    """A loaded snapshot with its state opened (at rest, and with its subjects' keys,
    asked of ``keys``: the store's ``SubjectKeyStore`` on the caller's face); None when
    there is none, or when one of its subjects was forgotten since (or ``keys`` is None)."""
    if snapshot is None:
        return None
    data, subjects = snapshot_subjects(codec.sealer, snapshot)
    if not subjects:
        return open_snapshot(snapshot, data, subjects, {})
    if keys is None:
        return None
    _sync_only(keys)
    found: dict[str, SubjectKey] = keys.subject_keys([s for s, _ in subjects])
    return open_snapshot(snapshot, data, subjects, found)


async def opened_snapshot_async(codec: Codec, snapshot: Snapshot | None, keys: Any) -> Snapshot | None:
    """The asyncio twin of :func:`opened_snapshot`."""
    if snapshot is None:
        return None
    data, subjects = snapshot_subjects(codec.sealer, snapshot)
    if not subjects:
        return open_snapshot(snapshot, data, subjects, {})
    if keys is None:
        return None
    found = keys.subject_keys([s for s, _ in subjects])
    ring: dict[str, SubjectKey] = await found if inspect.isawaitable(found) else found
    return open_snapshot(snapshot, data, subjects, ring)


def sealed_snapshot(codec: Codec, snapshot: Snapshot, keys: Any) -> Snapshot | None:
    """``snapshot`` sealed for saving with the keys of its ``subjects`` (asked of
    ``keys``, as for :func:`opened_snapshot`); None (save none) when one of them has no
    key now: forgotten meanwhile, its data may be in the state."""
    subjects = sorted(set(snapshot.subjects))
    found: dict[str, SubjectKey] = {}
    if subjects:
        if keys is None:
            return None
        _sync_only(keys)
        found = keys.subject_keys(subjects)
    if len(found) < len(subjects):
        return None
    return seal_snapshot(codec.sealer, snapshot, list(found.values()))


async def sealed_snapshot_async(codec: Codec, snapshot: Snapshot, keys: Any) -> Snapshot | None:
    """The asyncio twin of :func:`sealed_snapshot`."""
    subjects = sorted(set(snapshot.subjects))
    found: dict[str, SubjectKey] = {}
    if subjects:
        if keys is None:
            return None
        asked = keys.subject_keys(subjects)
        found = await asked if inspect.isawaitable(asked) else asked
    if len(found) < len(subjects):
        return None
    return seal_snapshot(codec.sealer, snapshot, list(found.values()))


class LiveKeys:
    """A :class:`~chronik.personal.KeyRing` that asks the codec's (sync) key store at
    each look-up: for a store whose keys are in its own memory, where a look-up costs
    a dict's, so events need nothing loaded in advance."""

    def __init__(self, codec: Codec) -> None:
        self._codec = codec

    def get(self, subject: str, /) -> SubjectKey | None:
        keys = _key_store(self._codec)
        _sync_only(keys)
        found: dict[str, SubjectKey] = keys.subject_keys([subject])
        return found.get(subject)
