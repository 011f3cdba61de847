"""Projection state and dead letters in memory: a transaction's changes, and reading them;
and the runners' heartbeats.

A transaction stages its changes in :class:`ProjectionChanges`; the commit applies
them under the log's lock, all at once. Reads merge what is committed with what the
transaction staged, so a transaction sees its own changes. Heartbeats are outside
transactions: each is written under the log's lock at once.
"""

from __future__ import annotations

from datetime import UTC, datetime

import msgspec

from chronik.backend import (
    heartbeat_order,
    validate_dead_letter,
    validate_dead_letter_key,
    validate_heartbeat,
    validate_projection,
    validate_projection_state,
    validate_runner_id,
)
from chronik.events import DeadLetter, ProjectionState, RunnerHeartbeat
from chronik.stores.memory.reader import KIND, MemoryLog

__all__ = [
    "ProjectionChanges",
    "dead_letters",
    "delete_heartbeat",
    "heartbeats",
    "projection_states",
    "save_heartbeat",
]

_Version = tuple[str, int]


class ProjectionChanges:
    """One transaction's changes to projection state and dead letters."""

    def __init__(self) -> None:
        self.states: dict[_Version, ProjectionState | None] = {}  # None: deleted
        self.forgotten: set[_Version] = set()  # versions whose committed dead letters go
        self.parked: dict[tuple[str, int, int], DeadLetter] = {}
        self.removed: set[tuple[str, int, int]] = set()  # committed dead letters that go

    def copy(self) -> ProjectionChanges:
        other = ProjectionChanges()
        other.states = dict(self.states)
        other.forgotten = set(self.forgotten)
        other.parked = dict(self.parked)
        other.removed = set(self.removed)
        return other

    def save(self, state: ProjectionState) -> None:
        validate_projection_state(state)
        if state.updated_at is None:
            state = msgspec.structs.replace(state, updated_at=datetime.now(UTC))
        self.states[state.name, state.version] = state

    def delete(self, name: str, version: int) -> None:
        validate_projection(name, version)
        self.states[name, version] = None
        self.forgotten.add((name, version))
        for key in [k for k in self.parked if k[:2] == (name, version)]:
            del self.parked[key]

    def park(self, log: MemoryLog, letter: DeadLetter) -> None:
        """Park ``letter`` unless the same event is parked already (committed or staged)."""
        validate_dead_letter(letter, KIND)
        key = (letter.projection, letter.projection_version, letter.event.position)
        committed = key in log.dead_letters and key[:2] not in self.forgotten and key not in self.removed
        if key in self.parked or committed:
            return
        if letter.parked_at is None:
            letter = msgspec.structs.replace(letter, parked_at=datetime.now(UTC))
        self.parked[key] = letter

    def remove(self, projection: str, version: int, position: int) -> None:
        validate_dead_letter_key(projection, version, position)
        key = (projection, version, position)
        self.parked.pop(key, None)
        self.removed.add(key)

    def apply(self, log: MemoryLog) -> None:
        """Make the changes part of ``log``; the caller holds ``log.lock``."""
        for key, state in self.states.items():
            if state is None:
                log.projections.pop(key, None)
            else:
                log.projections[key] = state
        if self.forgotten:
            for letter in [k for k in log.dead_letters if k[:2] in self.forgotten]:
                del log.dead_letters[letter]
        for removed in self.removed:
            log.dead_letters.pop(removed, None)
        log.dead_letters.update(self.parked)


def projection_states(
    log: MemoryLog, name: str | None, changes: ProjectionChanges | None = None
) -> list[ProjectionState]:
    """States ordered by name and version, as committed (and as ``changes`` leave them)."""
    merged: dict[_Version, ProjectionState | None] = dict(log.projections)
    if changes is not None:
        merged.update(changes.states)
    return [s for key, s in sorted(merged.items()) if s is not None and (name is None or key[0] == name)]


def dead_letters(
    log: MemoryLog, projection: str | None, changes: ProjectionChanges | None = None
) -> list[DeadLetter]:
    """Dead letters in the order they were parked, as committed (and as ``changes`` leave them)."""
    letters = list(log.dead_letters.items())
    if changes is not None:
        letters = [(k, d) for k, d in letters if k[:2] not in changes.forgotten and k not in changes.removed]
        letters.extend(changes.parked.items())
    return [d for _, d in letters if projection is None or d.projection == projection]


def save_heartbeat(log: MemoryLog, heartbeat: RunnerHeartbeat) -> None:
    validate_heartbeat(heartbeat)
    with log.lock:
        log.check_open()
        log.heartbeats[heartbeat.runner_id] = heartbeat


def heartbeats(log: MemoryLog, name: str | None) -> list[RunnerHeartbeat]:
    with log.lock:
        log.check_open()
        found = [b for b in log.heartbeats.values() if name is None or b.name == name]
    return sorted(found, key=heartbeat_order)


def delete_heartbeat(log: MemoryLog, runner_id: str) -> None:
    validate_runner_id(runner_id)
    with log.lock:
        log.check_open()
        log.heartbeats.pop(runner_id, None)
