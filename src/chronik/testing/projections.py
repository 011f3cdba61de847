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
``TransactionalTarget``. ``url="postgresql://..."`` runs it on that PostgreSQL
server instead, in a fresh schema that is dropped afterwards: a projection written
for PostgreSQL is tested where it runs. With ``context=dict`` (any factory),
handlers write to a fresh object instead and ``read`` gets that object; with
``target=`` (a function of the store, such as ``lambda store:
SQLAlchemyTarget(metadata, store)``) they write wherever that target says, and
``read`` gets its unit's context.

A projection whose handlers are deliberately not idempotent (they must then only
run where writes and checkpoint commit together) passes ``idempotent=False``.
"""

from __future__ import annotations

import tempfile
import uuid
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Generic, TypeVar, cast
from urllib.parse import urlsplit

import chronik
from chronik.codec import EventRegistry
from chronik.errors import ConfigurationError
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
from chronik.store import CheckpointStore, EventStore, SQLDatabase, Transactional

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
        url: str | None = None,
        target: Callable[[EventStore], ProjectionTarget[C]] | None = None,
    ) -> None:
        if context is not None and target is not None:
            raise ConfigurationError("ProjectionSpec takes a context or a target, not both")
        if url is not None and urlsplit(url).scheme.lower() not in ("postgresql", "postgres"):
            raise ConfigurationError(
                "ProjectionSpec runs on a fresh SQLite file (url=None) or in a fresh schema of a "
                f"PostgreSQL server (url='postgresql://...'), got url={url!r}"
            )
        self.projection = projection
        self.read = read
        self.context = context
        self.registry = registry
        self.idempotent = idempotent
        self.url = url
        self.target = target

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
        """Hand the events to the handlers once more, in one unit; a failure says so."""
        projection = self.spec.projection
        try:
            with self.target.unit() as unit:
                for event in events:
                    try:
                        projection.handle(event, unit.context)
                    except Exception as err:
                        raise _ReplayFailed(
                            f"the handler of {event.type!r} at {event.stream_id!r} "
                            f"v{event.version} raised {err!r}"
                        ) from err
        except _ReplayFailed as failed:
            raise AssertionError(_replay_failed(str(failed))) from failed.__cause__
        except Exception as err:
            raise AssertionError(_replay_failed(f"committing it raised {err!r}")) from err


class _ReplayFailed(Exception):
    pass


def _replay_failed(what: str) -> str:
    return (
        "replaying the same events failed (the check that handlers are idempotent: a subscription "
        "may hand an event over again after a crash between a handler and its checkpoint): "
        f"{what}. Make the handlers idempotent (an upsert, or by event.position), or pass "
        "idempotent=False if they only ever run where writes and checkpoint commit together"
    )


class ProjectionGiven(Generic[C]):
    """A specification with its events; check the read model with :meth:`then`."""

    def __init__(self, spec: ProjectionSpec[C], events: list[tuple[str, object]]) -> None:
        self._spec = spec
        self._events = events

    @contextmanager
    def _scene(self) -> Iterator[_Scene[C]]:
        spec = self._spec
        memory = spec.context is not None and spec.url is None
        with _fresh_store(spec.url, spec.registry, memory=memory) as store:
            obj: Any = None
            target: ProjectionTarget[C]
            if spec.target is not None:
                target = spec.target(store)
            elif spec.context is not None:
                obj = spec.context()
                assert isinstance(store, CheckpointStore)
                target = CheckpointedTarget(obj, store)
            else:
                assert isinstance(store, Transactional)
                target = cast("ProjectionTarget[C]", TransactionalTarget(store))
            try:
                for stream_id, event in self._events:
                    store.append(stream_id, [event])
                yield _Scene(spec, store, target, obj)
            finally:
                close = getattr(target, "close", None)
                if callable(close):
                    close()

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


@contextmanager
def _fresh_store(url: str | None, registry: EventRegistry | None, *, memory: bool) -> Iterator[EventStore]:
    """A store no one else uses: in memory, in a temporary SQLite file, or in a new
    schema of the PostgreSQL server at ``url``, dropped afterwards."""
    if url is None:
        if memory:
            with chronik.connect("memory://", registry=registry) as store:
                yield store
            return
        with (
            tempfile.TemporaryDirectory(prefix="chronik-spec-") as directory,
            chronik.connect(f"sqlite:///{Path(directory) / 'spec.db'}", registry=registry) as store,
        ):
            yield store
        return
    schema = f"chronik_spec_{uuid.uuid4().hex[:12]}"
    with chronik.connect(url, registry=registry, schema=schema) as store:
        try:
            yield store
        finally:
            assert isinstance(store, SQLDatabase)
            conn = store.connect_dbapi()
            try:
                conn.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')
                conn.commit()
            finally:
                conn.close()


def _mismatch(title: str, expected: object, actual: object) -> str:
    return f"{title}\n  expected: {expected!r}\n  actual:   {actual!r}"
