"""Conference seat availability: a counter per conference, for fast reads.

The write side (:mod:`chronik.examples.conference`) decides each reservation on the
conference's stream; this projection keeps a row per conference with its capacity
and the seats reserved, updated from ``SeatsReserved`` and ``ReservationCancelled``.
It lives in the event store's SQLite file and commits with its checkpoint, and its
handlers are idempotent by position besides (each row remembers the last position
applied), so it also passes the replay-twice projection spec.
"""

from __future__ import annotations

from chronik.events import RecordedEvent
from chronik.examples import registry
from chronik.examples.conference import ConferenceScheduled, ReservationCancelled, SeatsReserved
from chronik.examples.order_projection import Executor
from chronik.projections import EventHandlers, Projection

__all__ = ["seat_availability", "seats_available", "seats_table"]


def _setup(db: Executor) -> None:
    db.execute(
        "CREATE TABLE IF NOT EXISTS seat_availability (conference_id TEXT PRIMARY KEY, name TEXT NOT NULL, "
        "capacity INTEGER NOT NULL, reserved INTEGER NOT NULL, last_position INTEGER NOT NULL)"
    )


def _teardown(db: Executor) -> None:
    db.execute("DROP TABLE IF EXISTS seat_availability")


def _conference_id(event: RecordedEvent) -> str:
    return event.stream_id.partition("-")[2]


# Registered by class, so each handler sees its event's type (``event.data``).
_handlers = EventHandlers[Executor](registry)


@_handlers.on(ConferenceScheduled)
def _scheduled(event: RecordedEvent[ConferenceScheduled], db: Executor) -> None:
    data = event.data
    db.execute(
        "INSERT OR IGNORE INTO seat_availability VALUES (?, ?, ?, 0, ?)",
        (_conference_id(event), data.name, data.capacity, event.position),
    )


def _change(seats: int, event: RecordedEvent, db: Executor) -> None:
    db.execute(
        "UPDATE seat_availability SET reserved = reserved + ?, last_position = ? "
        "WHERE conference_id = ? AND last_position < ?",
        (seats, event.position, _conference_id(event), event.position),
    )


@_handlers.on(SeatsReserved)
def _reserved(event: RecordedEvent[SeatsReserved], db: Executor) -> None:
    _change(event.data.seats, event, db)


@_handlers.on(ReservationCancelled)
def _cancelled(event: RecordedEvent[ReservationCancelled], db: Executor) -> None:
    _change(-event.data.seats, event, db)


seat_availability = Projection(
    "seat_availability",
    _handlers,
    setup=_setup,
    teardown=_teardown,
    categories=("conference",),
    description="seats left per conference",
)


def seats_available(db: Executor, conference_id: str) -> int | None:
    """Seats left at ``conference-<conference_id>``, as the projection has it."""
    row = db.execute(
        "SELECT capacity - reserved FROM seat_availability WHERE conference_id = ?", (conference_id,)
    ).fetchone()
    return None if row is None else int(row[0])


def seats_table(db: Executor) -> dict[str, tuple[int, int]]:
    """Every conference: (capacity, reserved)."""
    rows = db.execute(
        "SELECT conference_id, capacity, reserved FROM seat_availability ORDER BY conference_id"
    )
    return {r[0]: (r[1], r[2]) for r in rows}
