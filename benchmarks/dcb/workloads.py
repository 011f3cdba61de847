"""The decision and the two workloads, written once for every contender.

The decision is the specification's course subscription: a student subscribes to a
course if the course has a seat left and the student is below their limit. Its query
is two items, the course's definition and subscriptions (``course:<id>``) and the
student's subscriptions (``student:<id>``); its condition, that nothing matching them
came after the head it read.

- ``disjoint`` (no conflicts): each writer has courses and students of its own, ten
  seats a course, each student in two of them; every command is a subscription that
  succeeds, and no two writers share a tag.
- ``contended`` (conflicts): every writer's students race for one course whose seats
  run out before the commands do (the last quarter are refused); a decision that
  lost a race reads and decides again.

After the timed part, the job reads every subscription back and checks the rules (no
course over capacity, no student over their limit, every seat taken): a contender
that broke one fails the job instead of reporting a figure.
"""

from __future__ import annotations

import os
import time
import traceback
from collections import Counter
from collections.abc import Iterable, Sequence
from typing import Any, Final

from benchmarks.dcb.contenders import DCBContender, Event, Item, Where, open_contender

__all__ = [
    "CAPACITY",
    "LIMIT",
    "check_rules",
    "commands",
    "courses",
    "decide",
    "fold",
    "run_writer",
    "server_cpu",
    "subscribe",
    "subscribe_items",
    "writer_process",
]

CAPACITY: Final = 10  # seats of a disjoint workload's course
LIMIT: Final = 3  # courses a student may take
CONTENDED_COURSE: Final = "c0"


def subscribe_items(course: str, student: str) -> tuple[Item, Item]:
    return (
        Item(("CourseDefined", "StudentSubscribed"), (f"course:{course}",)),
        Item(("StudentSubscribed",), (f"student:{student}",)),
    )


def fold(events: Iterable[Event], course: str, student: str) -> tuple[int, int, int]:
    """(the course's capacity, its subscriptions, the student's subscriptions)."""
    capacity = in_course = of_student = 0
    course_tag, student_tag = f"course:{course}", f"student:{student}"
    for event in events:
        if event.type == "CourseDefined":
            capacity = event.data["capacity"]
            continue
        in_course += course_tag in event.tags
        of_student += student_tag in event.tags
    return capacity, in_course, of_student


def decide(capacity: int, in_course: int, of_student: int, limit: int) -> bool:
    """Whether the student gets a seat."""
    return in_course < capacity and of_student < limit


def subscribe(contender: DCBContender, course: str, student: str) -> tuple[bool, int]:
    """One command: read, decide, append on the condition, again after a conflict.
    Returns (subscribed, conflicts met)."""
    handled = getattr(contender, "subscribe", None)
    if handled is not None:  # chronik's DCBCommandHandler does all of it
        result: tuple[bool, int] = handled(course, student, LIMIT)
        return result
    items = subscribe_items(course, student)
    conflicts = 0
    while True:
        events, head = contender.read(items)
        if not decide(*fold(events, course, student), LIMIT):
            return False, conflicts
        tags = (f"course:{course}", f"student:{student}")
        event = Event("StudentSubscribed", tags, {"course": course, "student": student})
        if contender.append([event], items, head):
            return True, conflicts
        conflicts += 1


def commands(workload: str, writer: int, count: int) -> list[tuple[str, str]]:
    """Writer ``writer``'s (course, student) commands."""
    if workload == "contended":
        return [(CONTENDED_COURSE, f"w{writer}s{i}") for i in range(count)]
    # Courses 2m and 2m+1 share students 10m..10m+9: ten seats each, two courses a student.
    return [(f"w{writer}c{i // CAPACITY}", f"w{writer}s{(i // 20) * 10 + i % 10}") for i in range(count)]


def courses(workload: str, writers: int, per_writer: int, seats: int) -> list[tuple[str, int]]:
    """The courses to define before the timed part, with their capacity."""
    if workload == "contended":
        return [(CONTENDED_COURSE, seats)]
    return [(f"w{w}c{k}", CAPACITY) for w in range(writers) for k in range(per_writer // CAPACITY)]


def check_rules(contender: DCBContender, workload: str, writers: int, per_writer: int, seats: int) -> None:
    """Raise if a rule was broken or a seat left that a refused command should have had."""
    events, _ = contender.read([Item(("StudentSubscribed",), ())])
    by_course = Counter(t for e in events for t in e.tags if t.startswith("course:"))
    by_student = Counter(t for e in events for t in e.tags if t.startswith("student:"))
    capacity = {f"course:{c}": n for c, n in courses(workload, writers, per_writer, seats)}
    over = {c: n for c, n in by_course.items() if n > capacity.get(c, 0)}
    if over:
        raise AssertionError(f"courses over capacity: {dict(list(over.items())[:5])}")
    if any(n > LIMIT for n in by_student.values()):
        raise AssertionError("a student is over their limit")
    want = min(seats, writers * per_writer) if workload == "contended" else writers * per_writer
    if len(events) != want:
        raise AssertionError(f"{len(events)} subscriptions stored, {want} expected")


def server_cpu(pid: int | None) -> float | None:
    """CPU seconds the PostgreSQL backend ``pid`` has used (Linux /proc), or None."""
    if pid is None:
        return None
    try:
        with open(f"/proc/{pid}/stat", encoding="ascii") as stat:
            fields = stat.read().rsplit(")", 1)[1].split()
    except OSError:
        return None
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def run_writer(contender: DCBContender, plan: Sequence[tuple[str, str]], wait: Any) -> dict[str, Any]:
    """Run one writer's commands once ``wait()`` returns; what it did and what it took."""
    pid = contender.backend_pid()
    contender.read([Item(("CourseDefined",), ("course:warm-up",))])  # connect before the clock
    wait()
    server = server_cpu(pid)
    began, cpu = time.monotonic(), time.process_time()
    subscribed = refused = conflicts = 0
    for course, student in plan:
        ok, lost = subscribe(contender, course, student)
        subscribed += ok
        refused += not ok
        conflicts += lost
    ended = time.monotonic()
    after = server_cpu(pid)
    return {
        "began": began,
        "ended": ended,
        "cpu_s": time.process_time() - cpu,
        "server_cpu_s": None if server is None or after is None else after - server,
        "subscribed": subscribed,
        "refused": refused,
        "conflicts": conflicts,
    }


def writer_process(request: dict[str, Any], index: int, ready: Any, start: Any, results: Any) -> None:
    """A writer process of a job (``job.py``): its commands, then its outcome on ``results``."""
    where = Where(**request["where"])
    try:
        contender = open_contender(request["contender"], where, create=False)
        try:
            plan = commands(request["workload"], index, request["per_writer"])

            def wait() -> None:
                ready.put(index)
                start.wait()

            results.put(("ok", run_writer(contender, plan, wait)))
        finally:
            contender.close()
    except BaseException as err:
        ready.put(index)  # never leave the job waiting for this writer
        results.put(("error", f"{type(err).__name__}: {err}\n{traceback.format_exc()}"))
