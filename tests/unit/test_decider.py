"""Deciders: three plain values, checked when they are made."""

import msgspec
import pytest

from chronik import ConfigurationError, Decider
from chronik.handling import as_model


class Incremented(msgspec.Struct, frozen=True):
    by: int


class Increment(msgspec.Struct, frozen=True):
    by: int


def decide(command: Increment, total: int) -> list[Incremented]:
    return [Incremented(command.by)] if command.by else []


def evolve(total: int, event: Incremented) -> int:
    return total + event.by


counter = Decider(decide=decide, evolve=evolve, initial_state=0, category="counter")


def test_fold_replays_events_from_the_initial_state() -> None:
    assert counter.fold([]) == 0
    assert counter.fold([Incremented(2), Incremented(3)]) == 5


def test_a_decider_is_positional_in_the_order_decide_evolve_initial_state() -> None:
    assert Decider(decide, evolve, 0) == Decider(decide=decide, evolve=evolve, initial_state=0)


@pytest.mark.parametrize("category", ["", "order-line", 7, "tab\there"])
def test_a_category_is_the_part_of_a_stream_id_before_the_first_dash(category: object) -> None:
    with pytest.raises(ConfigurationError, match="category"):
        Decider(decide, evolve, 0, category=category)  # type: ignore[arg-type]


def test_decide_and_evolve_must_be_functions() -> None:
    with pytest.raises(ConfigurationError, match="evolve must be a function"):
        Decider(decide, 3, 0)  # type: ignore[arg-type]


def test_the_model_name_defaults_to_the_category() -> None:
    assert as_model(counter).name == "counter"
    assert as_model(counter).label == "decider 'counter'"
    assert as_model(Decider(decide, evolve, 0)).name == "decider"
    assert as_model(Decider(decide, evolve, 0, name="tally")).name == "tally"


def test_the_snapshot_state_type_is_the_type_of_the_initial_state() -> None:
    assert as_model(counter).state_type is int
    assert as_model(Decider(decide_maybe, evolve_maybe, None)).state_type is None


def decide_maybe(command: Increment, total: int | None) -> list[Incremented]:
    return []


def evolve_maybe(total: int | None, event: Incremented) -> int | None:
    return (total or 0) + event.by


def test_anything_else_is_not_a_model() -> None:
    with pytest.raises(ConfigurationError, match="Decider or a chronik.Aggregate subclass"):
        as_model(decide)
