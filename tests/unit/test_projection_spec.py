"""The projection spec: given events, expect state, and prove idempotency by replaying."""

from __future__ import annotations

from typing import Any

import pytest

from chronik import NewEvent, RecordedEvent
from chronik.projections import Projection
from chronik.testing.projections import ProjectionSpec

Model = dict[str, Any]


def _idempotent(event: RecordedEvent, model: Model) -> None:
    last, total = model.get(event.stream_id, (0, 0))
    if event.position > last:
        model[event.stream_id] = (event.position, total + event.data["n"])


def _naive(event: RecordedEvent, model: Model) -> None:
    model[event.stream_id] = model.get(event.stream_id, 0) + event.data["n"]


def _totals(model: Model) -> dict[str, int]:
    return {k: v[1] if isinstance(v, tuple) else v for k, v in model.items()}


GIVEN = (
    ("a-1", NewEvent("Added", {"n": 2})),
    ("a-1", NewEvent("Added", {"n": 3})),
    ("a-2", NewEvent("Added", {"n": 1})),
)


def test_expected_state() -> None:
    spec = ProjectionSpec(Projection("sums", {"Added": _idempotent}), _totals, context=dict)
    assert spec.given(*GIVEN).then({"a-1": 5, "a-2": 1}) == {"a-1": 5, "a-2": 1}
    with pytest.raises(AssertionError, match="not as expected"):
        spec.given(*GIVEN).then({"a-1": 6, "a-2": 1})


def test_replaying_catches_handlers_that_are_not_idempotent() -> None:
    spec = ProjectionSpec(Projection("sums", {"Added": _naive}), _totals, context=dict)
    with pytest.raises(AssertionError, match="not idempotent"):
        spec.given(*GIVEN).then({"a-1": 5, "a-2": 1})
    lenient = ProjectionSpec(Projection("sums", {"Added": _naive}), _totals, context=dict, idempotent=False)
    lenient.given(*GIVEN).then({"a-1": 5, "a-2": 1})


def test_then_raises() -> None:
    def picky(event: RecordedEvent, model: Model) -> None:
        if event.data["n"] == 3:
            raise ValueError("no threes")

    spec = ProjectionSpec(Projection("picky", {"Added": picky}), _totals, context=dict)
    err = spec.given(*GIVEN).then_raises(ValueError)
    assert str(err) == "no threes"
    with pytest.raises(AssertionError, match="every event was handled"):
        spec.given(GIVEN[0]).then_raises(ValueError)
