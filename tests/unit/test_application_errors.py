"""The application layer's errors: in the tree, named by stream, version and type, picklable."""

import pickle

import pytest

import chronik
import chronik.errors
from chronik import errors
from chronik.errors import (
    ChronikError,
    NotAnEventError,
    RetriesExhaustedError,
    SnapshotDecodeError,
    UnhandledEventError,
    WrongCategoryError,
)

SAMPLES = [
    WrongCategoryError("account-1", "account", "order", "decider 'order'"),
    NotAnEventError("decided 42", stream_id="order-1", version=3, type="int"),
    RetriesExhaustedError("order-1", 4, version=9, type="decider 'order'"),
    SnapshotDecodeError("no longer decodes", stream_id="order-1", version=5, type="Order"),
    UnhandledEventError("no handler", stream_id="order-1", version=2, type="OrderShipped"),
]


@pytest.mark.parametrize("err", SAMPLES, ids=lambda e: type(e).__name__)
def test_each_names_stream_version_and_type_and_survives_pickling(err: ChronikError) -> None:
    copy = pickle.loads(pickle.dumps(err))
    assert type(copy) is type(err)
    assert str(copy) == str(err)
    for attribute in ("stream_id", "version", "type"):
        assert getattr(copy, attribute) == getattr(err, attribute)


@pytest.mark.parametrize("err", SAMPLES, ids=lambda e: type(e).__name__)
def test_each_is_drawn_in_the_error_tree_and_exported(err: ChronikError) -> None:
    name = type(err).__name__
    assert errors.__doc__ is not None and f"── {name} " in errors.__doc__
    assert getattr(errors, name) is type(err)
    assert name in errors.__all__


def test_where_they_sit_in_the_tree() -> None:
    assert issubclass(WrongCategoryError, chronik.InvalidInputError)
    assert issubclass(NotAnEventError, chronik.errors.InvalidEventError)
    assert issubclass(RetriesExhaustedError, chronik.ConcurrencyError)
    assert issubclass(SnapshotDecodeError, chronik.DecodeError)
    assert issubclass(UnhandledEventError, ChronikError)


def test_messages_say_what_to_do() -> None:
    assert str(SAMPLES[0]) == (
        "stream 'account-1' is in category 'account', but decider 'order' handles category 'order' "
        "(stream ids like 'order-42')"
    )
    assert str(SAMPLES[2]) == (
        "stream 'order-1': decider 'order' command still conflicted with other writers after 4 attempts "
        "(the stream had moved on to version 9); nothing was written. Retry later, or raise the "
        "handler's retries="
    )
