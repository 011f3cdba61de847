"""Seat booking never oversells, with many threads reserving at once on one SQLite file."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest

import chronik
from chronik import CommandHandler, CommandResult, RetriesExhaustedError
from chronik.examples import registry
from chronik.examples.conference import (
    Conference,
    NotEnoughSeats,
    ReserveSeats,
    ScheduleConference,
    SeatsReserved,
    conference_decider,
)

THREADS = 12
CAPACITY = 5


def _race(url: str, retries: int) -> list[CommandResult[Conference] | Exception]:
    """Every thread opens its own store on the file and reserves one seat, all at once."""
    setup = chronik.connect(url, registry=registry)
    CommandHandler(setup, conference_decider).handle("conference-1", ScheduleConference("PyCon", CAPACITY))
    setup.close()
    start = threading.Barrier(THREADS, timeout=60)
    outcomes: list[CommandResult[Conference] | Exception] = []
    lock = threading.Lock()

    def reserve(n: int) -> None:
        store = chronik.connect(url, registry=registry)
        try:
            bookings = CommandHandler(store, conference_decider, retries=retries)
            start.wait()
            try:
                outcome: CommandResult[Conference] | Exception = bookings.handle(
                    "conference-1", ReserveSeats(f"b{n}", f"attendee {n}")
                )
            except Exception as err:
                outcome = err
            with lock:
                outcomes.append(outcome)
        finally:
            store.close()

    threads = [threading.Thread(target=reserve, args=(n,)) for n in range(THREADS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return outcomes


def _reserved(url: str) -> int:
    store = chronik.connect(url, registry=registry)
    try:
        return sum(
            e.data.seats for e in store.read_stream("conference-1") if isinstance(e.data, SeatsReserved)
        )
    finally:
        store.close()


def test_concurrent_reservations_never_oversell(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path}/booking.db"
    # A command can lose at most once to each other writer, so THREADS attempts always suffice.
    outcomes = _race(url, retries=THREADS)
    booked = [o for o in outcomes if isinstance(o, CommandResult)]
    refused = [o for o in outcomes if isinstance(o, NotEnoughSeats)]
    assert len(outcomes) == THREADS
    assert (len(booked), len(refused)) == (CAPACITY, THREADS - CAPACITY)
    assert _reserved(url) == CAPACITY
    assert sorted(o.version for o in booked) == list(range(2, CAPACITY + 2))


@pytest.mark.parametrize("retries", [0, 1])
def test_with_few_retries_some_give_up_but_none_oversells(tmp_path: Path, retries: int) -> None:
    url = f"sqlite:///{tmp_path}/booking.db"
    outcomes = _race(url, retries=retries)
    booked = [o for o in outcomes if isinstance(o, CommandResult)]
    assert all(isinstance(o, CommandResult | NotEnoughSeats | RetriesExhaustedError) for o in outcomes)
    assert 1 <= len(booked) <= CAPACITY
    assert _reserved(url) == len(booked)
