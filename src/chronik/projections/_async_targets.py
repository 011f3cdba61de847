"""Where a projection's read model and checkpoint live, and how they commit (asyncio).

A target opens *units*: one batch of events, the handlers' writes and the checkpoint
that moves past them. Two built-in targets:

- :class:`AsyncTransactionalTarget`: the read model is in the event store's own
  database (SQLite, PostgreSQL). A unit is one store transaction
  (``async with store.transaction() as tx``), so the writes and the checkpoint
  commit together: a crash at any point neither loses nor doubles an effect.
- :class:`AsyncCheckpointedTarget`: any other read model (a dict, a search index, an
  HTTP service). The checkpoint is saved after the handlers ran, so a crash in
  between replays those events: at-least-once, and handlers must be idempotent by
  ``event.position``.

A read store that has transactions of its own can do better than at-least-once by
writing its checkpoint in them; see ``chronik.examples.redis_read_model``.

The sync module ``_targets.py`` is generated from this one (``tools/unasync.py``).
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from typing import Any, Generic, Protocol, TypeVar

from chronik.errors import ConfigurationError
from chronik.events import Checkpoint
from chronik.store import (
    AsyncCheckpointStore,
    AsyncProjectionStateStore,
    AsyncStoreTransaction,
    AsyncTransactional,
)

__all__ = [
    "AsyncCheckpointedTarget",
    "AsyncCheckpointedUnit",
    "AsyncProjectionTarget",
    "AsyncTransactionalTarget",
    "AsyncUnit",
]

C = TypeVar("C")
C_co = TypeVar("C_co", covariant=True)


class AsyncUnit(Protocol[C_co]):
    """One batch's worth of work on a read model; commits when its block ends."""

    @property
    def context(self) -> C_co:
        """What handlers write to."""
        ...

    @property
    def states(self) -> AsyncProjectionStateStore | None:
        """Projection bookkeeping that commits with this unit, if the target has it."""
        ...

    async def load_checkpoint(self, name: str) -> Checkpoint | None: ...

    async def save_checkpoint(self, name: str, checkpoint: Checkpoint) -> None: ...

    async def delete_checkpoint(self, name: str) -> None: ...


class AsyncProjectionTarget(Protocol[C_co]):
    """Where a projection's read model and checkpoint live."""

    @property
    def exactly_once(self) -> bool:
        """Whether the read model's writes and the checkpoint commit together."""
        ...

    async def load_checkpoint(self, name: str) -> Checkpoint | None: ...

    def unit(self) -> AbstractAsyncContextManager[AsyncUnit[C_co]]:
        """Open a unit; it commits when the block ends and is abandoned if it raises."""
        ...


class _TransactionUnit(Generic[C]):
    """A unit that is a store transaction; handlers write to ``context``: the
    transaction itself, or something that works in it (a SQLAlchemy connection)."""

    def __init__(self, tx: AsyncStoreTransaction, context: C) -> None:
        self._tx = tx
        self._context = context

    @property
    def context(self) -> C:
        return self._context

    @property
    def states(self) -> AsyncProjectionStateStore | None:
        return self._tx

    async def load_checkpoint(self, name: str) -> Checkpoint | None:
        return await self._tx.load_checkpoint(name)

    async def save_checkpoint(self, name: str, checkpoint: Checkpoint) -> None:
        await self._tx.save_checkpoint(name, checkpoint)

    async def delete_checkpoint(self, name: str) -> None:
        await self._tx.delete_checkpoint(name)


class AsyncTransactionalTarget:
    """A read model in the event store's own database, committed with its checkpoint.

    Handlers get the store's transaction (``execute`` your SQL, ``append`` events).
    """

    exactly_once = True

    def __init__(self, store: AsyncTransactional) -> None:
        if not isinstance(store, AsyncTransactional):
            raise ConfigurationError(
                f"{store!r} has no transactions for a read model to share (it is not AsyncTransactional); "
                "use AsyncCheckpointedTarget(context, store)"
            )
        self.store = store

    async def load_checkpoint(self, name: str) -> Checkpoint | None:
        # A plain read where the store has one: a write transaction would take SQLite's
        # write lock, so status and lag could not be read while another program holds it.
        if isinstance(self.store, AsyncCheckpointStore):
            return await self.store.load_checkpoint(name)
        async with self.store.transaction() as tx:
            return await tx.load_checkpoint(name)

    @asynccontextmanager
    async def unit(self) -> AsyncIterator[_TransactionUnit[AsyncStoreTransaction]]:
        async with self.store.transaction() as tx:
            yield _TransactionUnit(tx, tx)

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.store!r})"


class AsyncCheckpointedUnit(Generic[C]):
    """Checkpoints saved in the unit are written when it ends well (:meth:`commit`); the
    relay's unit, too (``chronik.relay``), once its batch is published."""

    def __init__(self, context: C, checkpoints: AsyncCheckpointStore) -> None:
        self._context = context
        self._checkpoints = checkpoints
        self.saved: dict[str, Checkpoint | None] = {}

    @property
    def context(self) -> C:
        return self._context

    @property
    def states(self) -> AsyncProjectionStateStore | None:
        return None

    async def load_checkpoint(self, name: str) -> Checkpoint | None:
        if name in self.saved:
            return self.saved[name]
        return await self._checkpoints.load_checkpoint(name)

    async def save_checkpoint(self, name: str, checkpoint: Checkpoint) -> None:
        self.saved[name] = checkpoint

    async def delete_checkpoint(self, name: str) -> None:
        self.saved[name] = None

    async def commit(self) -> None:
        """Write the checkpoints saved (or deleted) in the unit."""
        for name, checkpoint in self.saved.items():
            if checkpoint is not None:
                await self._checkpoints.save_checkpoint(name, checkpoint)
            else:
                await self._checkpoints.delete_checkpoint(name)


class AsyncCheckpointedTarget(Generic[C]):
    """Any read model: handlers write to ``context``; the checkpoint goes to ``checkpoints``
    (usually the event store) after the handlers ran. At-least-once."""

    exactly_once = False

    def __init__(self, context: C, checkpoints: AsyncCheckpointStore) -> None:
        if not isinstance(checkpoints, AsyncCheckpointStore):
            raise ConfigurationError(
                f"{checkpoints!r} cannot store checkpoints (it lacks the AsyncCheckpointStore methods)"
            )
        self.context = context
        self.checkpoints = checkpoints

    async def load_checkpoint(self, name: str) -> Checkpoint | None:
        return await self.checkpoints.load_checkpoint(name)

    @asynccontextmanager
    async def unit(self) -> AsyncIterator[AsyncCheckpointedUnit[C]]:
        unit = AsyncCheckpointedUnit(self.context, self.checkpoints)
        yield unit
        # Only after every handler of the unit succeeded.
        await unit.commit()

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.context!r}, {self.checkpoints!r})"


def default_target(store: object) -> AsyncProjectionTarget[Any]:
    """The target a runner uses when given none: the store's own transactions."""
    if isinstance(store, AsyncTransactional):
        return AsyncTransactionalTarget(store)
    raise ConfigurationError(
        f"{store!r} has no transactions to keep a read model in: pass target=AsyncCheckpointedTarget(...)"
    )
