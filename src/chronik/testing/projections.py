"""Given/then specifications for projections: events in, read-model state out.

A specification appends the ``given`` events to a fresh store, runs the projection
over them with a real runner, reads the read model, and compares. Then it replays
the same events into the read model once more, as a subscription may after a crash
between a handler and its checkpoint, and checks that the state did not change::

    spec = ProjectionSpec(orders, read=lambda tx: tx.execute("SELECT id, total FROM orders").fetchall())

    def test_totals() -> None:
        spec.given(("order-1", OrderPlaced(30)), ("order-1", OrderPlaced(12))).then([("order-1", 42)])

By default the read model lives in a SQLite file of a temporary directory and the
handlers get its transaction (``tx.execute(...)``), as they do with a
``TransactionalTarget``. With ``context=dict`` (any factory), handlers write to a
fresh object instead and ``read`` gets that object.

A projection whose handlers are deliberately not idempotent (they must then only
run where writes and checkpoint commit together) passes ``idempotent=False``.
"""

from __future__ import annotations

import tempfile
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Generic, TypeVar, cast

import chronik
from chronik.codec import EventRegistry
from chronik.events import RecordedEvent
from chronik.projections import (
    CheckpointedTarget,
    FailurePolicy,
    Projection,
    ProjectionFailedError,
    ProjectionRunner,
    ProjectionTarget,
    TransactionalTarget,
)
from chronik.store import CheckpointStore, EventStore, Transactional

__all__ = ["ProjectionGiven", "ProjectionSpec"]

C = TypeVar("C")
X = TypeVar("X", bound=BaseException)


class ProjectionSpec(Generic[C]):
    """The starting point of given/then tests for one projection."""

    def __init__(
        self,
        projection: Projection[C],
        read: Callable[[C], object],
        *,
        context: Callable[[], C] | None = None,
        registry: EventRegistry | None = None,
        idempotent: bool = True,
    ) -> None:
        self.projection = projection
        self.read = read
        self.context = context
        self.registry = registry
        self.idempotent = idempotent

    def given(self, *events: tuple[str, object]) -> ProjectionGiven[C]:
        """The events in the log, as ``(stream_id, event)`` pairs, in order."""
        if len(events) == 1 and isinstance(events[0], list):
            events = tuple(events[0])
        for pair in events:
            if not (isinstance(pair, tuple) and len(pair) == 2 and isinstance(pair[0], str)):
                raise TypeError(f"given() takes (stream_id, event) pairs, got {pair!r}")
        return ProjectionGiven(self, list(events))


class _Scene(Generic[C]):
    def __init__(
        self, spec: ProjectionSpec[C], store: EventStore, target: ProjectionTarget[C], obj: Any
    ) -> None:
        self.spec = spec
        self.store = store
        self.target = target
        self.obj = obj

    def read(self) -> object:
        if self.obj is not None:
            return self.spec.read(self.obj)
        with self.target.unit() as unit:
            return self.spec.read(unit.context)

    def replay(self, events: Sequence[RecordedEvent]) -> None:
        with self.target.unit() as unit:
            for event in events:
                self.spec.projection.handle(event, unit.context)


class ProjectionGiven(Generic[C]):
    """A specification with its events; check the read model with :meth:`then`."""

    def __init__(self, spec: ProjectionSpec[C], events: list[tuple[str, object]]) -> None:
        self._spec = spec
        self._events = events

    @contextmanager
    def _scene(self) -> Iterator[_Scene[C]]:
        spec = self._spec
        with tempfile.TemporaryDirectory(prefix="chronik-spec-") as directory:
            obj: Any = None
            target: ProjectionTarget[C]
            if spec.context is None:
                store = chronik.connect(f"sqlite:///{Path(directory) / 'spec.db'}", registry=spec.registry)
                assert isinstance(store, Transactional)
                target = cast("ProjectionTarget[C]", TransactionalTarget(store))
            else:
                store = chronik.connect("memory://", registry=spec.registry)
                obj = spec.context()
                assert isinstance(store, CheckpointStore)
                target = CheckpointedTarget(obj, store)
            try:
                for stream_id, event in self._events:
                    store.append(stream_id, [event])
                yield _Scene(spec, store, target, obj)
            finally:
                store.close()

    def then(self, expected: object) -> object:
        """Run the projection over the events; the read model must read as ``expected``,
        and still so after the same events are replayed into it."""
        with self._scene() as scene:
            runner = ProjectionRunner(scene.store, self._spec.projection, scene.target)
            runner.run_until_caught_up()
            actual = scene.read()
            if actual != expected:
                raise AssertionError(_mismatch("the read model is not as expected", expected, actual))
            if self._spec.idempotent:
                scene.replay(list(scene.store.read_all()))
                again = scene.read()
                if again != actual:
                    raise AssertionError(
                        _mismatch(
                            "replaying the same events changed the read model: the handlers are not "
                            "idempotent (make them idempotent by event.position, or pass idempotent=False "
                            "if they only ever run where writes and checkpoint commit together)",
                            actual,
                            again,
                        )
                    )
            return actual

    def then_raises(self, error: type[X]) -> X:
        """A handler must fail on one of the events with ``error``; returns it."""
        with self._scene() as scene:
            runner = ProjectionRunner(
                scene.store,
                self._spec.projection,
                scene.target,
                policy=FailurePolicy(retries=0),
            )
            try:
                runner.run_until_caught_up()
            except ProjectionFailedError as failed:
                cause = failed.__cause__
                if isinstance(cause, error):
                    return cause
                raise AssertionError(
                    f"expected {error.__name__}, the projection failed with {cause!r}"
                ) from failed
            raise AssertionError(f"expected {error.__name__}, but every event was handled")


def _mismatch(title: str, expected: object, actual: object) -> str:
    return f"{title}\n  expected: {expected!r}\n  actual:   {actual!r}"
