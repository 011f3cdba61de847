"""chronik through its decider API: a ``DCBDecider`` with typed events and ``DCBCommandHandler``.

The labelled row under chronik's column: what a user writing ``docs/dcb.md``'s course
example gets, events decoded into msgspec structs, retries in the handler (as many as
a run needs: the benchmark measures decisions, not the give-up rule). The rule is
``workloads.decide``'s, the same as every other contender's.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Final

import msgspec

import chronik
from benchmarks.dcb.contenders import Chronik, Event, Item, Where, chronik_url
from chronik import DCBCommandHandler, DCBDecider

__all__ = ["ChronikHandler", "CourseDefined", "StudentSubscribed", "registry"]

registry = chronik.EventRegistry()
RETRIES: Final = 10_000


@registry.event("CourseDefined")
class CourseDefined(msgspec.Struct, frozen=True):
    course: str
    capacity: int


@registry.event("StudentSubscribed")
class StudentSubscribed(msgspec.Struct, frozen=True):
    course: str
    student: str


class Subscribe(msgspec.Struct, frozen=True):
    course: str
    student: str


class Seats(msgspec.Struct, frozen=True):
    capacity: int = 0
    in_course: int = 0
    of_student: int = 0


class ChronikHandler(Chronik):
    label = "chronik: DCBCommandHandler with a DCBDecider (typed events)"

    def __init__(self, where: Where, shared: Any = None) -> None:
        store = shared if shared is not None else chronik.connect(chronik_url(where), registry=registry)
        super().__init__(where, store)
        self.owned = shared is None

    def subscribe(self, course: str, student: str, limit: int) -> tuple[bool, int]:
        """Handle one subscription; (subscribed, conflicts met)."""
        from benchmarks.dcb.workloads import decide, subscribe_items

        items = subscribe_items(course, student)
        query = self.query(items)

        def evolve(seats: Seats, event: object) -> Seats:
            if isinstance(event, CourseDefined):
                return msgspec.structs.replace(seats, capacity=event.capacity)
            assert isinstance(event, StudentSubscribed)
            return Seats(
                seats.capacity,
                seats.in_course + (event.course == course),
                seats.of_student + (event.student == student),
            )

        def decide_seats(command: Subscribe, seats: Seats) -> list[object]:
            if not decide(seats.capacity, seats.in_course, seats.of_student, limit):
                return []
            return [StudentSubscribed(command.course, command.student)]

        decider: DCBDecider[Subscribe, object, Seats] = DCBDecider(
            query=lambda _: query,
            decide=decide_seats,
            evolve=evolve,
            initial_state=Seats(),
            tags=lambda e: [f"course:{e.course}", f"student:{e.student}"],  # type: ignore[attr-defined]
        )
        result = DCBCommandHandler(self.store, decider, retries=RETRIES).handle(Subscribe(course, student))
        return result.appended, result.attempts - 1

    def read(self, items: Sequence[Item]) -> tuple[list[Event], int | None]:
        read = self.store.read_query(self.query(items))
        return [Event(e.type, e.tags, msgspec.to_builtins(e.data)) for e in read.events], read.head
