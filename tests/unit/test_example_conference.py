"""The conference booking example, specified with given/when/then."""

from chronik.examples import registry
from chronik.examples.conference import (
    BookingError,
    CancelReservation,
    ConferenceScheduled,
    NotEnoughSeats,
    ReservationCancelled,
    ReserveSeats,
    ScheduleConference,
    SeatsReserved,
    conference_decider,
)
from chronik.testing.specs import Specification

given = Specification(conference_decider, registry=registry).given
pycon = ConferenceScheduled("PyCon", capacity=3)


def test_a_conference_is_scheduled_once() -> None:
    given().when(ScheduleConference("PyCon", 3)).then(pycon)
    given(pycon).when(ScheduleConference("PyCon", 3)).then_raises(BookingError, match="scheduled already")
    given().when(ScheduleConference("PyCon", 0)).then_raises(BookingError, match="at least one seat")


def test_seats_are_reserved_while_there_are_enough() -> None:
    conference = (
        given(pycon, SeatsReserved("b1", "grace", 1))
        .when(ReserveSeats("b2", "linus", 2))
        .then(SeatsReserved("b2", "linus", 2))
    )
    assert conference.seats_left == 0


def test_a_conference_is_never_oversold() -> None:
    err = (
        given(pycon, SeatsReserved("b1", "grace", 2))
        .when(ReserveSeats("b2", "linus", 2))
        .then_raises(NotEnoughSeats, match="PyCon has 1 seat left; 2 requested")
    )
    assert (err.requested, err.left) == (2, 1)


def test_a_cancelled_reservation_frees_its_seats() -> None:
    full = [pycon, SeatsReserved("b1", "grace", 3)]
    given(full).when(CancelReservation("b1")).then(ReservationCancelled("b1", 3))
    given(*full, ReservationCancelled("b1", 3)).when(ReserveSeats("b2", "linus", 3)).then(
        SeatsReserved("b2", "linus", 3)
    )


def test_bad_reservations_are_refused() -> None:
    given().when(ReserveSeats("b1", "grace")).then_raises(BookingError, match="no such conference")
    given(pycon).when(ReserveSeats("b1", "grace", 0)).then_raises(BookingError, match="at least one")
    given(pycon, SeatsReserved("b1", "grace", 1)).when(ReserveSeats("b1", "grace")).then_raises(
        BookingError, match="exists already"
    )
    given(pycon).when(CancelReservation("b9")).then_raises(BookingError, match="no booking 'b9'")
