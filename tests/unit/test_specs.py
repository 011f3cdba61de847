"""Given/when/then specifications: they pass when they should, and fail legibly."""

from collections.abc import Iterable
from dataclasses import dataclass

import msgspec
import pytest

from chronik import Aggregate, Decider, EventRegistry, applies
from chronik.errors import NotAnEventError
from chronik.testing.specs import Specification


class Added(msgspec.Struct, frozen=True):
    item: str


class Cleared(msgspec.Struct, frozen=True):
    pass


class Add(msgspec.Struct, frozen=True):
    item: str


class Clear(msgspec.Struct, frozen=True):
    pass


class Broken(msgspec.Struct, frozen=True):
    returns: object


class CartError(Exception):
    pass


Command = Add | Clear | Broken
Event = Added | Cleared


def decide(command: Command, items: tuple[str, ...]) -> Iterable[Event]:
    if isinstance(command, Broken):
        return command.returns  # type: ignore[return-value]
    if isinstance(command, Clear):
        return [Cleared()] if items else []
    if command.item in items:
        raise CartError(f"{command.item} is in the cart already")
    return [Added(command.item)]


def evolve(items: tuple[str, ...], event: Event) -> tuple[str, ...]:
    return () if isinstance(event, Cleared) else (*items, event.item)


EMPTY: tuple[str, ...] = ()
cart = Decider(decide=decide, evolve=evolve, initial_state=EMPTY)
given = Specification(cart).given


def test_then_checks_the_decided_events_and_returns_the_new_state() -> None:
    assert given(Added("tea")).when(Add("cake")).then(Added("cake")) == ("tea", "cake")
    assert given([Added("tea")]).when(Clear()).then([Cleared()]) == ()


def test_then_raises_returns_the_error() -> None:
    err = given(Added("tea")).when(Add("tea")).then_raises(CartError, match="in the cart")
    assert str(err) == "tea is in the cart already"


def test_then_nothing() -> None:
    assert given().when(Clear()).then_nothing() == ()


def test_a_mismatch_shows_expected_and_actual_side_by_side() -> None:
    with pytest.raises(AssertionError) as info:
        given(Added("tea")).when(Add("cake")).then(Added("scone"), Cleared())
    assert str(info.value) == (
        "the command decided other events than expected\n"
        "  given Added(item='tea')\n"
        "  when  Add(item='cake')\n"
        "\n"
        "  #  expected             | actual\n"
        "  1  Added(item='scone')  | Added(item='cake')   <- differs\n"
        "  2  Cleared()            | (none)   <- differs"
    )


def test_long_events_are_shown_one_above_the_other() -> None:
    long = "x" * 70
    with pytest.raises(AssertionError) as info:
        given().when(Add(long)).then(Added(long + "y"))
    message = str(info.value)
    assert (
        f"  1  expected: Added(item='{long}y')\n     actual:   Added(item='{long}')   <- differs" in message
    )


def test_an_unexpected_error_fails_then_with_the_error_as_cause() -> None:
    with pytest.raises(AssertionError, match=r"decide 1 event, but it raised CartError: tea is") as info:
        given(Added("tea")).when(Add("tea")).then(Added("tea"))
    assert isinstance(info.value.__cause__, CartError)


def test_then_raises_fails_when_nothing_is_raised_or_something_else_is() -> None:
    with pytest.raises(AssertionError, match=r"raise CartError, but it decided:\n  1  Added\(item='tea'\)"):
        given().when(Add("tea")).then_raises(CartError)
    with pytest.raises(AssertionError, match="raise KeyError, but it raised CartError"):
        given(Added("tea")).when(Add("tea")).then_raises(KeyError)
    with pytest.raises(AssertionError, match="does not match 'absent'"):
        given(Added("tea")).when(Add("tea")).then_raises(CartError, match="absent")


def test_then_nothing_fails_when_events_are_decided() -> None:
    with pytest.raises(AssertionError, match=r"decide nothing, but it decided:\n  1  Cleared\(\)"):
        given(Added("tea")).when(Clear()).then_nothing()


def test_a_decision_that_is_not_a_list_of_events_is_reported() -> None:
    with pytest.raises(
        AssertionError, match="it raised NotAnEventError: decider 'decider' must decide a list"
    ):
        given().when(Broken(None)).then_nothing()
    err = given().when(Broken(Added("x"))).then_raises(NotAnEventError)
    assert "wrap the event in a list: [Added(item='x')]" in str(err)
    err = given().when(Broken([Added("x"), "oops"])).then_raises(NotAnEventError)
    assert "event 2 is 'oops', a str, which is not an event" in str(err)
    assert (err.stream_id, err.version, err.type) == ("(spec)", 0, "str")


def test_with_a_registry_events_must_be_registered() -> None:
    registry = EventRegistry()
    registry.register(Added, "Added")
    strict = Specification(cart, registry=registry).given
    strict().when(Add("tea")).then(Added("tea"))
    err = strict(Added("tea")).when(Clear()).then_raises(NotAnEventError)
    assert "of type Cleared, which is not registered" in str(err)


# -- aggregates ----------------------------------------------------------------------


@dataclass
class Cart(Aggregate):
    items: tuple[str, ...] = ()

    def add(self, item: str) -> None:
        if item in self.items:
            raise CartError(f"{item} is in the cart already")
        self.record(Added(item))

    def clear(self) -> None:
        if self.items:
            self.record(Cleared())

    @applies(Added)
    def _added(self, event: Added) -> None:
        self.items = (*self.items, event.item)

    @applies(Cleared)
    def _cleared(self, event: Cleared) -> None:
        self.items = ()


given_cart = Specification(Cart).given


def test_aggregate_specs_take_a_function_of_the_aggregate() -> None:
    cart = given_cart(Added("tea")).when(lambda cart: cart.add("cake")).then(Added("cake"))
    assert cart.items == ("tea", "cake")
    assert cart.version == 1  # the given events; the decided one is not stored
    given_cart(Added("tea")).when(lambda cart: cart.add("tea")).then_raises(CartError)
    given_cart().when(Cart.clear).then_nothing()


def test_aggregate_spec_failures_name_the_command() -> None:
    with pytest.raises(AssertionError, match="when  Cart.clear"):
        given_cart(Added("tea")).when(Cart.clear).then_nothing()
    with pytest.raises(AssertionError, match=r"when  a lambda on Cart at test_specs.py:\d+"):
        given_cart().when(lambda cart: cart.add("x")).then()


def test_a_given_event_without_a_handler_is_a_setup_error() -> None:
    with pytest.raises(Exception, match="given event 1, Add\\(item='x'\\), has no handler in aggregate Cart"):
        given_cart(Add("x")).when(Cart.clear).then_nothing()


def test_an_aggregate_command_must_be_callable() -> None:
    with pytest.raises(ValueError, match="a function that takes the aggregate"):
        given_cart().when(Add("x"))  # type: ignore[arg-type]
