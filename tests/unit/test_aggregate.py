"""Aggregates: explicit event classes, handlers marked with @applies, no metaclass."""

from dataclasses import dataclass

import msgspec
import pytest

from chronik import Aggregate, ConfigurationError, applies
from chronik.errors import NotAnEventError, UnhandledEventError
from chronik.handling import as_model


class Opened(msgspec.Struct, frozen=True):
    owner: str


class Deposited(msgspec.Struct, frozen=True):
    amount: int


class BigDeposited(Deposited, frozen=True):
    pass


class Closed(msgspec.Struct, frozen=True):
    pass


@dataclass
class Account(Aggregate):
    category = "account"

    owner: str = ""
    balance: int = 0

    def open(self, owner: str) -> None:
        self.record(Opened(owner))

    def deposit(self, amount: int) -> None:
        self.record(Deposited(amount))

    @applies(Opened)
    def _opened(self, event: Opened) -> None:
        self.owner = event.owner

    @applies(Deposited)
    def _deposited(self, event: Deposited) -> None:
        self.balance += event.amount


def test_record_applies_the_event_and_keeps_it_pending() -> None:
    account = Account()
    account.open("ada")
    account.deposit(5)
    assert (account.owner, account.balance) == ("ada", 5)
    assert account.pending_events == [Opened("ada"), Deposited(5)]
    assert account.version == 0


def test_apply_replays_a_stored_event_without_keeping_it() -> None:
    account = Account()
    account.apply(Opened("ada"))
    assert account.owner == "ada"
    assert account.pending_events == []


def test_bookkeeping_stays_out_of_fields_equality_and_snapshots() -> None:
    one, two = Account(), Account()
    one.deposit(1)
    two.apply(Deposited(1))
    assert one == two
    assert msgspec.json.encode(one) == b'{"owner":"","balance":1}'


def test_a_handler_of_a_base_event_class_applies_its_subclasses() -> None:
    account = Account()
    account.apply(BigDeposited(7))
    assert account.balance == 7


def test_an_event_without_a_handler_is_refused_by_name() -> None:
    with pytest.raises(UnhandledEventError, match=r"Account has no handler for Closed.*@applies\(Closed\)"):
        Account().apply(Closed())


def test_recording_something_that_is_not_an_event_is_refused() -> None:
    with pytest.raises(NotAnEventError, match="recorded 42, a int, which is not an event"):
        Account().record(42)


def test_two_handlers_for_one_event_type_are_refused_when_the_class_is_made() -> None:
    with pytest.raises(ConfigurationError, match="two handlers for Opened: _a and _b"):

        class Twice(Aggregate):
            @applies(Opened)
            def _a(self, event: Opened) -> None: ...

            @applies(Opened)
            def _b(self, event: Opened) -> None: ...


def test_one_method_may_apply_several_event_types() -> None:
    class Log(Aggregate):
        def __init__(self) -> None:
            self.seen: list[object] = []

        @applies(Opened, Closed)
        def _any(self, event: Opened | Closed) -> None:
            self.seen.append(event)

    log = Log()
    log.apply(Opened("x"))
    log.apply(Closed())
    assert log.seen == [Opened("x"), Closed()]


def test_a_subclass_inherits_handlers_and_may_override_them_by_name() -> None:
    @dataclass
    class Doubling(Account):
        def _deposited(self, event: Deposited) -> None:
            self.balance += 2 * event.amount

    account = Doubling()
    account.apply(Opened("ada"))
    account.apply(Deposited(3))
    assert (account.owner, account.balance) == ("ada", 6)


def test_slotted_dataclasses_work_too() -> None:
    @dataclass(slots=True)
    class Slim(Aggregate):
        total: int = 0

        @applies(Deposited)
        def _deposited(self, event: Deposited) -> None:
            self.total += event.amount

    slim = Slim()
    slim.record(Deposited(2))
    assert (slim.total, slim.pending_events) == (2, [Deposited(2)])


def test_applies_takes_classes() -> None:
    with pytest.raises(ConfigurationError, match="takes event classes"):
        applies("Opened")  # type: ignore[call-overload]
    with pytest.raises(ConfigurationError, match="at least one"):
        applies()


def test_an_aggregate_must_be_creatable_without_arguments() -> None:
    @dataclass
    class Needy(Aggregate):
        owner: str

    with pytest.raises(ConfigurationError, match="must work without arguments"):
        as_model(Needy)


def test_pass_the_class_not_an_instance() -> None:
    with pytest.raises(ConfigurationError, match="not an instance"):
        as_model(Account())


def test_the_model_of_an_aggregate() -> None:
    model = as_model(Account)
    assert (model.name, model.label, model.category, model.state_type) == (
        "Account",
        "aggregate Account",
        "account",
        Account,
    )
    plain = as_model(type("Plain", (Aggregate,), {}))
    assert plain.state_type is None  # not a dataclass: cannot be snapshotted as it is
