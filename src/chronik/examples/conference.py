"""Conference seat booking, written as a decider: it never oversells.

Every reservation of a conference goes through one stream, ``conference-<id>``,
which is the consistency boundary: a reservation is decided against the seats left
at the version the handler loaded, and the append expects that version. When two
reservations race, one append fails, and the handler decides the loser again on the
new state, where it may find the conference full. So however many commands run at
once, the seats reserved never exceed the capacity.
"""

from __future__ import annotations

from typing import assert_never

import msgspec

from chronik.decider import Decider
from chronik.examples import registry

__all__ = [
    "BookingError",
    "CancelReservation",
    "Conference",
    "ConferenceCommand",
    "ConferenceEvent",
    "ConferenceScheduled",
    "NotEnoughSeats",
    "ReservationCancelled",
    "ReserveSeats",
    "ScheduleConference",
    "SeatsReserved",
    "conference_decider",
    "decide",
    "evolve",
]


@registry.event("ConferenceScheduled")
class ConferenceScheduled(msgspec.Struct, frozen=True):
    name: str
    capacity: int


@registry.event("SeatsReserved")
class SeatsReserved(msgspec.Struct, frozen=True):
    booking_id: str
    attendee: str
    seats: int


@registry.event("ReservationCancelled")
class ReservationCancelled(msgspec.Struct, frozen=True):
    booking_id: str
    seats: int


ConferenceEvent = ConferenceScheduled | SeatsReserved | ReservationCancelled


class ScheduleConference(msgspec.Struct, frozen=True):
    name: str
    capacity: int


class ReserveSeats(msgspec.Struct, frozen=True):
    booking_id: str
    attendee: str
    seats: int = 1


class CancelReservation(msgspec.Struct, frozen=True):
    booking_id: str


ConferenceCommand = ScheduleConference | ReserveSeats | CancelReservation


class Conference(msgspec.Struct, frozen=True):
    name: str = ""
    capacity: int = 0
    reservations: dict[str, int] = {}  # booking id -> seats; replaced, never changed in place

    @property
    def scheduled(self) -> bool:
        return self.capacity > 0

    @property
    def seats_left(self) -> int:
        return self.capacity - sum(self.reservations.values())


class BookingError(Exception):
    """A command that the rules of booking refuse."""


class NotEnoughSeats(BookingError):
    """Fewer seats are left than a reservation asks for."""

    def __init__(self, conference: str, requested: int, left: int) -> None:
        self.requested = requested
        self.left = left
        super().__init__(
            f"{conference} has {left} seat{'' if left == 1 else 's'} left; {requested} requested"
        )


def decide(command: ConferenceCommand, conference: Conference) -> list[ConferenceEvent]:
    """The events ``command`` causes, or a :class:`BookingError`."""
    match command:
        case ScheduleConference():
            if conference.scheduled:
                raise BookingError(f"{conference.name} is scheduled already")
            if command.capacity < 1:
                raise BookingError(f"a conference needs at least one seat, not {command.capacity}")
            return [ConferenceScheduled(command.name, command.capacity)]
        case ReserveSeats():
            if not conference.scheduled:
                raise BookingError("there is no such conference")
            if command.seats < 1:
                raise BookingError(f"reserve at least one seat, not {command.seats}")
            if command.booking_id in conference.reservations:
                raise BookingError(f"booking {command.booking_id!r} exists already")
            if command.seats > conference.seats_left:
                raise NotEnoughSeats(conference.name, command.seats, conference.seats_left)
            return [SeatsReserved(command.booking_id, command.attendee, command.seats)]
        case CancelReservation():
            seats = conference.reservations.get(command.booking_id)
            if seats is None:
                raise BookingError(f"there is no booking {command.booking_id!r}")
            return [ReservationCancelled(command.booking_id, seats)]
    assert_never(command)


def evolve(conference: Conference, event: ConferenceEvent) -> Conference:
    """The conference after ``event``."""
    match event:
        case ConferenceScheduled():
            return Conference(event.name, event.capacity)
        case SeatsReserved():
            reservations = {**conference.reservations, event.booking_id: event.seats}
            return msgspec.structs.replace(conference, reservations=reservations)
        case ReservationCancelled():
            reservations = {k: v for k, v in conference.reservations.items() if k != event.booking_id}
            return msgspec.structs.replace(conference, reservations=reservations)
    assert_never(event)


conference_decider = Decider(decide=decide, evolve=evolve, initial_state=Conference(), category="conference")
"""Conferences live in streams ``conference-<id>``."""
