"""Where a projection's read model and checkpoint live, and how they commit (sync).

GENERATED from ``_async_targets.py`` by ``tools/unasync.py``: do not edit; edit
the async module and run the script. The design is described there.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager
from typing import Any, Generic, Protocol, TypeVar

from chronik.errors import ConfigurationError
from chronik.events import Checkpoint
from chronik.store import (
    CheckpointStore,
    ProjectionStateStore,
    StoreTransaction,
    Transactional,
)

__all__ = [
    "CheckpointedTarget",
    "CheckpointedUnit",
    "ProjectionTarget",
    "TransactionalTarget",
    "Unit",
]

C = TypeVar("C")
C_co = TypeVar("C_co", covariant=True)


class Unit(Protocol[C_co]):
    """One batch's worth of work on a read model; commits when its block ends."""

    @property
    def context(self) -> C_co:
        """What handlers write to."""
        ...

    @property
    def states(self) -> ProjectionStateStore | None:
        """Projection bookkeeping that commits with this unit, if the target has it."""
        ...

    def load_checkpoint(self, name: str) -> Checkpoint | None: ...

    def save_checkpoint(self, name: str, checkpoint: Checkpoint) -> None: ...

    def delete_checkpoint(self, name: str) -> None: ...


class ProjectionTarget(Protocol[C_co]):
    """Where a projection's read model and checkpoint live."""

    @property
    def exactly_once(self) -> bool:
        """Whether the read model's writes and the checkpoint commit together."""
        ...

    def load_checkpoint(self, name: str) -> Checkpoint | None: ...

    def unit(self) -> AbstractContextManager[Unit[C_co]]:
        """Open a unit; it commits when the block ends and is abandoned if it raises."""
        ...


class _TransactionUnit(Generic[C]):
    """A unit that is a store transaction; handlers write to ``context``: the
    transaction itself, or something that works in it (a SQLAlchemy connection)."""

    def __init__(self, tx: StoreTransaction, context: C) -> None:
        self._tx = tx
        self._context = context

    @property
    def context(self) -> C:
        return self._context

    @property
    def states(self) -> ProjectionStateStore | None:
        return self._tx

    def load_checkpoint(self, name: str) -> Checkpoint | None:
        return self._tx.load_checkpoint(name)

    def save_checkpoint(self, name: str, checkpoint: Checkpoint) -> None:
        self._tx.save_checkpoint(name, checkpoint)

    def delete_checkpoint(self, name: str) -> None:
        self._tx.delete_checkpoint(name)


class TransactionalTarget:
    """A read model in the event store's own database, committed with its checkpoint.

    Handlers get the store's transaction (``execute`` your SQL, ``append`` events).
    """

    exactly_once = True

    def __init__(self, store: Transactional) -> None:
        if not isinstance(store, Transactional):
            raise ConfigurationError(
                f"{store!r} has no transactions for a read model to share (it is not Transactional); "
                "use CheckpointedTarget(context, store)"
            )
        self.store = store

    def load_checkpoint(self, name: str) -> Checkpoint | None:
        # A plain read where the store has one: a write transaction would take SQLite's
        # write lock, so status and lag could not be read while another program holds it.
        if isinstance(self.store, CheckpointStore):
            return self.store.load_checkpoint(name)
        with self.store.transaction() as tx:
            return tx.load_checkpoint(name)

    @contextmanager
    def unit(self) -> Iterator[_TransactionUnit[StoreTransaction]]:
        with self.store.transaction() as tx:
            yield _TransactionUnit(tx, tx)

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.store!r})"


class CheckpointedUnit(Generic[C]):
    """Checkpoints saved in the unit are written when it ends well (:meth:`commit`); the
    relay's unit, too (``chronik.relay``), once its batch is published."""

    def __init__(self, context: C, checkpoints: CheckpointStore) -> None:
        self._context = context
        self._checkpoints = checkpoints
        self.saved: dict[str, Checkpoint | None] = {}

    @property
    def context(self) -> C:
        return self._context

    @property
    def states(self) -> ProjectionStateStore | None:
        return None

    def load_checkpoint(self, name: str) -> Checkpoint | None:
        if name in self.saved:
            return self.saved[name]
        return self._checkpoints.load_checkpoint(name)

    def save_checkpoint(self, name: str, checkpoint: Checkpoint) -> None:
        self.saved[name] = checkpoint

    def delete_checkpoint(self, name: str) -> None:
        self.saved[name] = None

    def commit(self) -> None:
        """Write the checkpoints saved (or deleted) in the unit."""
        for name, checkpoint in self.saved.items():
            if checkpoint is not None:
                self._checkpoints.save_checkpoint(name, checkpoint)
            else:
                self._checkpoints.delete_checkpoint(name)


class CheckpointedTarget(Generic[C]):
    """Any read model: handlers write to ``context``; the checkpoint goes to ``checkpoints``
    (usually the event store) after the handlers ran. At-least-once."""

    exactly_once = False

    def __init__(self, context: C, checkpoints: CheckpointStore) -> None:
        if not isinstance(checkpoints, CheckpointStore):
            raise ConfigurationError(
                f"{checkpoints!r} cannot store checkpoints (it lacks the CheckpointStore methods)"
            )
        self.context = context
        self.checkpoints = checkpoints

    def load_checkpoint(self, name: str) -> Checkpoint | None:
        return self.checkpoints.load_checkpoint(name)

    @contextmanager
    def unit(self) -> Iterator[CheckpointedUnit[C]]:
        unit = CheckpointedUnit(self.context, self.checkpoints)
        yield unit
        # Only after every handler of the unit succeeded.
        unit.commit()

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.context!r}, {self.checkpoints!r})"


def default_target(store: object) -> ProjectionTarget[Any]:
    """The target a runner uses when given none: the store's own transactions."""
    if isinstance(store, Transactional):
        return TransactionalTarget(store)
    raise ConfigurationError(
        f"{store!r} has no transactions to keep a read model in: pass target=CheckpointedTarget(...)"
    )
