"""The examples of the DCB specification (dcb.events), written with DCBDecider and
DCBCommandHandler, on memory, SQLite and PostgreSQL: course subscriptions (course
capacity and a per-student limit), unique user names re-usable after an account is
closed, invoice numbers without gaps, opt-in tokens; and the handler under 16
concurrent writers on PostgreSQL."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterator
from pathlib import Path

import msgspec
import pytest

import chronik
from chronik import DCBCommandHandler, DCBDecider, Query, QueryItem
from chronik.errors import ConfigurationError, DecisionRetriesExhaustedError

registry = chronik.EventRegistry()


# -- course subscriptions: a course's capacity and a student's limit ---------------------


@registry.event("CourseDefined")
class CourseDefined(msgspec.Struct, frozen=True):
    course: str
    capacity: int


@registry.event("StudentSubscribed")
class StudentSubscribed(msgspec.Struct, frozen=True):
    student: str
    course: str


class Subscribe(msgspec.Struct, frozen=True):
    student: str
    course: str


class Seats(msgspec.Struct, frozen=True):
    capacity: int | None = None
    subscriptions: tuple[tuple[str, str], ...] = ()


STUDENT_LIMIT = 2


def course_query(c: Subscribe) -> Query:
    return Query(
        QueryItem(types=["CourseDefined", "StudentSubscribed"], tags=[f"course:{c.course}"]),
        QueryItem(types=["StudentSubscribed"], tags=[f"student:{c.student}"]),
    )


def course_evolve(state: Seats, event: object) -> Seats:
    if isinstance(event, CourseDefined):
        return msgspec.structs.replace(state, capacity=event.capacity)
    assert isinstance(event, StudentSubscribed)
    return msgspec.structs.replace(state, subscriptions=(*state.subscriptions, (event.student, event.course)))


def course_decide(c: Subscribe, state: Seats) -> list[object]:
    if state.capacity is None:
        raise ValueError(f"no course {c.course}")
    if (c.student, c.course) in state.subscriptions:
        return []
    if sum(1 for _, course in state.subscriptions if course == c.course) >= state.capacity:
        raise ValueError(f"course {c.course} is full")
    if sum(1 for student, _ in state.subscriptions if student == c.student) >= STUDENT_LIMIT:
        raise ValueError(f"student {c.student} has {STUDENT_LIMIT} courses")
    return [StudentSubscribed(c.student, c.course)]


def course_tags(event: object) -> list[str]:
    if isinstance(event, StudentSubscribed):
        return [f"course:{event.course}", f"student:{event.student}"]
    assert isinstance(event, CourseDefined)
    return [f"course:{event.course}"]


subscriptions: DCBDecider[Subscribe, object, Seats] = DCBDecider(
    query=course_query, decide=course_decide, evolve=course_evolve, initial_state=Seats(), tags=course_tags
)


class DefineCourse(msgspec.Struct, frozen=True):
    course: str
    capacity: int


courses: DCBDecider[DefineCourse, object, bool] = DCBDecider(
    query=lambda c: Query.of(types=["CourseDefined"], tags=[f"course:{c.course}"]),
    decide=lambda c, defined: [] if defined else [CourseDefined(c.course, c.capacity)],
    evolve=lambda _, __: True,
    initial_state=False,
    tags=course_tags,
)


# -- unique user names, free again once the account is closed ----------------------------


@registry.event("AccountRegistered")
class AccountRegistered(msgspec.Struct, frozen=True):
    user: str
    username: str


@registry.event("AccountClosed")
class AccountClosed(msgspec.Struct, frozen=True):
    user: str
    username: str


class Register(msgspec.Struct, frozen=True):
    user: str
    username: str


class Close(msgspec.Struct, frozen=True):
    user: str
    username: str


def name_query(c: Register | Close) -> Query:
    return Query.of(types=["AccountRegistered", "AccountClosed"], tags=[f"username:{c.username}"])


def name_decide(c: Register | Close, owner: str | None) -> list[object]:
    if isinstance(c, Close):
        if owner != c.user:
            raise ValueError(f"{c.user} does not hold {c.username!r}")
        return [AccountClosed(c.user, c.username)]
    if owner is not None:
        raise ValueError(f"user name {c.username!r} is taken")
    return [AccountRegistered(c.user, c.username)]


usernames: DCBDecider[Register | Close, object, str | None] = DCBDecider(
    query=name_query,
    decide=name_decide,
    evolve=lambda _, e: e.user if isinstance(e, AccountRegistered) else None,
    initial_state=None,
    tags=lambda e: [f"username:{e.username}", f"user:{e.user}"],  # type: ignore[attr-defined]
)


# -- invoice numbers without gaps ----------------------------------------------------------


@registry.event("InvoiceCreated")
class InvoiceCreated(msgspec.Struct, frozen=True):
    number: int
    customer: str


class CreateInvoice(msgspec.Struct, frozen=True):
    customer: str


invoices: DCBDecider[CreateInvoice, InvoiceCreated, int] = DCBDecider(
    query=lambda _: Query.of(types=["InvoiceCreated"]),
    decide=lambda c, last: [InvoiceCreated(last + 1, c.customer)],
    evolve=lambda last, e: max(last, e.number),
    initial_state=0,
    tags=lambda e: [f"invoice:{e.number}", f"customer:{e.customer}"],
)


# -- opt-in tokens: a sign-up confirmed once, with the token it was sent -------------------


@registry.event("SignUpInitiated")
class SignUpInitiated(msgspec.Struct, frozen=True):
    email: str
    token: str


@registry.event("SignUpConfirmed")
class SignUpConfirmed(msgspec.Struct, frozen=True):
    email: str
    token: str


class Confirm(msgspec.Struct, frozen=True):
    email: str
    token: str


class Token(msgspec.Struct, frozen=True):
    sent: bool = False
    used: bool = False


def confirm_decide(c: Confirm, token: Token) -> list[object]:
    if not token.sent:
        raise ValueError("no such token for this e-mail")
    if token.used:
        raise ValueError("token already used")
    return [SignUpConfirmed(c.email, c.token)]


tokens: DCBDecider[Confirm, object, Token] = DCBDecider(
    query=lambda c: Query.of(
        types=["SignUpInitiated", "SignUpConfirmed"], tags=[f"email:{c.email}", f"token:{c.token}"]
    ),
    decide=confirm_decide,
    evolve=lambda t, e: Token(sent=True, used=t.used or isinstance(e, SignUpConfirmed)),
    initial_state=Token(),
    tags=lambda e: [f"email:{e.email}", f"token:{e.token}"],  # type: ignore[attr-defined]
)


# -- on every store ----------------------------------------------------------------------


@pytest.fixture(params=["memory", "sqlite", "postgres"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[chronik.Store]:
    if request.param == "memory":
        url = "memory://"
    elif request.param == "sqlite":
        url = f"sqlite:///{tmp_path / 'dcb.db'}"
    else:
        url = request.getfixturevalue("postgres_store_url")
    with chronik.connect(url, registry=registry) as opened:
        yield opened


def test_course_capacity_and_student_limit(store: chronik.Store) -> None:
    DCBCommandHandler(store, courses).handle(DefineCourse("c1", 2))
    for course in ("c2", "c3"):
        DCBCommandHandler(store, courses).handle(DefineCourse(course, 10))
    handler = DCBCommandHandler(store, subscriptions)
    assert handler.handle(Subscribe("s1", "c1")).appended
    assert not handler.handle(Subscribe("s1", "c1")).appended  # already in
    handler.handle(Subscribe("s2", "c1"))
    with pytest.raises(ValueError, match="course c1 is full"):
        handler.handle(Subscribe("s3", "c1"))
    handler.handle(Subscribe("s1", "c2"))
    with pytest.raises(ValueError, match="student s1 has 2 courses"):
        handler.handle(Subscribe("s1", "c3"))
    with pytest.raises(ValueError, match="no course c9"):
        handler.handle(Subscribe("s3", "c9"))
    seats = store.read_query(Query.of(types=["StudentSubscribed"], tags=["course:c1"]))
    assert [e.data.student for e in seats] == ["s1", "s2"]
    assert seats.events[0].tags == ("course:c1", "student:s1")


def test_user_names_are_unique_and_free_again_after_closing(store: chronik.Store) -> None:
    handler = DCBCommandHandler(store, usernames)
    handler.handle(Register("u1", "ada"))
    with pytest.raises(ValueError, match="'ada' is taken"):
        handler.handle(Register("u2", "ada"))
    handler.handle(Register("u2", "grace"))
    handler.handle(Close("u1", "ada"))
    assert handler.handle(Register("u2", "ada")).appended
    with pytest.raises(ValueError, match="u1 does not hold 'ada'"):
        handler.handle(Close("u1", "ada"))


def test_invoice_numbers_have_no_gaps(store: chronik.Store) -> None:
    handler = DCBCommandHandler(store, invoices)
    results = [handler.handle(CreateInvoice(f"k{i % 2}")) for i in range(5)]
    assert [r.events[0].number for r in results] == [1, 2, 3, 4, 5]  # type: ignore[attr-defined]
    assert [e.data.number for e in store.read_query(Query.of(types=["InvoiceCreated"]))] == [1, 2, 3, 4, 5]


def test_an_opt_in_token_confirms_once(store: chronik.Store) -> None:
    store.append_if([registry.new_event(SignUpInitiated("a@x", "t1"), tags=["email:a@x", "token:t1"])], None)
    handler = DCBCommandHandler(store, tokens)
    with pytest.raises(ValueError, match="no such token"):
        handler.handle(Confirm("a@x", "t2"))
    with pytest.raises(ValueError, match="no such token"):
        handler.handle(Confirm("b@x", "t1"))
    assert handler.handle(Confirm("a@x", "t1")).appended
    with pytest.raises(ValueError, match="already used"):
        handler.handle(Confirm("a@x", "t1"))


def test_the_asyncio_handler_decides_the_same(tmp_path: Path) -> None:
    async def main() -> None:
        async with chronik.connect_async(f"sqlite:///{tmp_path / 'a.db'}", registry=registry) as store:
            handler = chronik.AsyncDCBCommandHandler(store, usernames)
            await handler.handle(Register("u1", "ada"))
            with pytest.raises(ValueError, match="taken"):
                await handler.handle(Register("u2", "ada"))
            numbers = chronik.AsyncDCBCommandHandler(store, invoices)
            assert (await numbers.handle(CreateInvoice("k"))).events == (InvoiceCreated(1, "k"),)

    asyncio.run(main())


def test_a_handler_needs_a_store_with_the_dcb_power() -> None:
    with chronik.connect("memory://") as store:
        with pytest.raises(ConfigurationError, match="an asyncio store with read_query and append_if"):
            chronik.AsyncDCBCommandHandler(store, invoices)
        with pytest.raises(ConfigurationError, match="retries must be an int >= 0"):
            DCBCommandHandler(store, invoices, retries=-1)


def test_a_conflict_is_decided_again_and_gives_up_after_the_retries(store: chronik.Store) -> None:
    # A decide that appends behind its own handler's back: every attempt conflicts.
    def decide(c: CreateInvoice, last: int) -> list[InvoiceCreated]:
        store.append_if([registry.new_event(InvoiceCreated(last + 1, "other"))], None)
        return [InvoiceCreated(last + 1, c.customer)]

    stubborn = DCBDecider(query=invoices.query, decide=decide, evolve=invoices.evolve, initial_state=0)
    with pytest.raises(DecisionRetriesExhaustedError, match="after 3 attempts"):
        DCBCommandHandler(store, stubborn, retries=2).handle(CreateInvoice("k"))
    calls: list[int] = []

    def once(c: CreateInvoice, last: int) -> list[InvoiceCreated]:
        if not calls:
            calls.append(last)
            store.append_if([registry.new_event(InvoiceCreated(last + 1, "other"))], None)
        return [InvoiceCreated(last + 1, c.customer)]

    flaky = DCBDecider(query=invoices.query, decide=once, evolve=invoices.evolve, initial_state=0)
    result = DCBCommandHandler(store, flaky).handle(CreateInvoice("k"))
    assert result.attempts == 2 and result.events == (InvoiceCreated(5, "k"),)


def test_sixteen_handlers_on_postgres_break_no_rule(postgres_store_url: str) -> None:
    with chronik.connect(postgres_store_url, registry=registry) as store:
        DCBCommandHandler(store, courses).handle(DefineCourse("c1", 5))
        DCBCommandHandler(store, courses).handle(DefineCourse("c2", 100))
    errors: list[BaseException] = []
    barrier = threading.Barrier(16)

    def run(who: int) -> None:
        try:
            with chronik.connect(postgres_store_url, registry=registry) as store:
                handler = DCBCommandHandler(store, subscriptions, retries=100)
                names = DCBCommandHandler(store, usernames, retries=100)
                numbers = DCBCommandHandler(store, invoices, retries=100)
                barrier.wait()
                for course in ("c1", "c2"):
                    try:
                        handler.handle(Subscribe(f"s{who % 8}", course))
                    except ValueError:
                        pass  # full, or the student's limit
                try:
                    names.handle(Register(f"u{who}", "ada"))
                except ValueError:
                    pass
                for _ in range(3):
                    numbers.handle(CreateInvoice(f"k{who}"))
        except BaseException as err:  # reported below
            errors.append(err)

    threads = [threading.Thread(target=run, args=(i,)) for i in range(16)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    with chronik.connect(postgres_store_url, registry=registry) as store:
        c1 = store.read_query(Query.of(types=["StudentSubscribed"], tags=["course:c1"]))
        assert len(c1) == 5
        assert len({e.data.student for e in c1}) == 5
        c2 = store.read_query(Query.of(types=["StudentSubscribed"], tags=["course:c2"]))
        assert sorted(e.data.student for e in c2) == sorted({f"s{i}" for i in range(8)})
        assert len(store.read_query(Query.of(types=["AccountRegistered"], tags=["username:ada"]))) == 1
        numbers = [e.data.number for e in store.read_query(Query.of(types=["InvoiceCreated"]))]
        assert numbers == list(range(1, 49))
