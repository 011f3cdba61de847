"""Conformance: append hooks (``AppendHooks`` / ``AsyncAppendHooks``), the machinery of
inline projections, and ``chronik.projections.add_inline_projection`` on the sync face.
"""

from __future__ import annotations

import random
import threading
import uuid
from collections.abc import Sequence

import pytest

from chronik import InvalidInputError, NewEvent, StreamWrite
from chronik.events import Checkpoint, RecordedEvent
from chronik.store import (
    AppendHooks,
    AsyncAppendHooks,
    AsyncHookTransaction,
    EventStore,
    HookTransaction,
    LogPage,
)
from chronik.testing.bridge import BlockingStore
from chronik.testing.conformance._base import (
    ConformanceBase,
    OpenStore,
    StoreFactory,
    capabilities,
    event,
    face_of,
    native,
    needs,
    new_stream,
    run,
)
from chronik.testing.conformance._transactions import transaction

__all__ = ["AppendHookTests"]

PAGE = 100


class _Tally:
    """What a tally hook saw: the positions handed to it, in order."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.checkpoint_name = f"hook:{name}"
        self.seen: list[int] = []
        self.lock = threading.Lock()

    def took(self, events: Sequence[RecordedEvent]) -> Checkpoint | None:
        if any(e.type == "Boom" for e in events):
            raise ValueError("boom")
        with self.lock:
            self.seen.extend(e.position for e in events)
        return events[-1].checkpoint if events else None


class _SyncHook:
    """A sync append hook: catches up from its checkpoint, then takes every append."""

    def __init__(self, tally: _Tally) -> None:
        self.tally = tally

    @property
    def name(self) -> str:
        return self.tally.name

    def installed(self, tx: HookTransaction) -> None:
        after = tx.load_checkpoint(self.tally.checkpoint_name)
        while True:
            page: LogPage = tx.read_page(after, PAGE, None, None)
            self.tally.took(page.events)
            if page.checkpoint is None or page.checkpoint == after:
                break
            after = page.checkpoint
        if after is not None:
            tx.save_checkpoint(self.tally.checkpoint_name, after)

    def appended(self, tx: HookTransaction, events: Sequence[RecordedEvent]) -> None:
        last = self.tally.took(events)
        if last is not None:
            tx.save_checkpoint(self.tally.checkpoint_name, last)


class _AsyncHook:
    """The asyncio twin of :class:`_SyncHook`."""

    def __init__(self, tally: _Tally) -> None:
        self.tally = tally

    @property
    def name(self) -> str:
        return self.tally.name

    async def installed(self, tx: AsyncHookTransaction) -> None:
        after = await tx.load_checkpoint(self.tally.checkpoint_name)
        while True:
            page = await tx.read_page(after, PAGE, None, None)
            self.tally.took(page.events)
            if page.checkpoint is None or page.checkpoint == after:
                break
            after = page.checkpoint
        if after is not None:
            await tx.save_checkpoint(self.tally.checkpoint_name, after)

    async def appended(self, tx: AsyncHookTransaction, events: Sequence[RecordedEvent]) -> None:
        last = self.tally.took(events)
        if last is not None:
            await tx.save_checkpoint(self.tally.checkpoint_name, last)


def _install(store: EventStore, name: str = "tally") -> _Tally:
    tally = _Tally(name)
    if isinstance(store, BlockingStore):
        inner = store.async_store
        assert isinstance(inner, AsyncAppendHooks)
        run(store, inner.add_append_hook(_AsyncHook(tally)))
    else:
        assert isinstance(store, AppendHooks)
        store.add_append_hook(_SyncHook(tally))
    return tally


def _remove(store: EventStore, name: str) -> None:
    native(store).remove_append_hook(name)


def _positions(store: EventStore) -> list[int]:
    return [e.position for e in store.read_all()]


@needs("append_hooks")
class AppendHookTests(ConformanceBase):
    """Hooks run inside every append's own transaction; a failing one fails the append."""

    def _checkpoint(self, store: EventStore, tally: _Tally) -> Checkpoint | None:
        checkpoint: Checkpoint | None = face_of(store).load_checkpoint(tally.checkpoint_name)
        return checkpoint

    def test_install_catches_up_on_stored_events(self, store: EventStore) -> None:
        store.append(new_stream("hook"), [event(n=i) for i in range(3)])
        store.append(new_stream("hook"), [event(n=3)])
        tally = _install(store)
        assert tally.seen == _positions(store)
        if "checkpoints" in capabilities(store):
            assert self._checkpoint(store, tally) == store.head()
        store.append(new_stream("hook"), [event(n=4)])
        assert tally.seen == _positions(store)

    def test_every_append_runs_the_hook_in_its_transaction(self, store: EventStore) -> None:
        tally = _install(store)
        assert tally.seen == []
        a, b = new_stream("hook"), new_stream("hook")
        result = store.append(a, [event(), event()])
        assert tally.seen == _positions(store)
        declared = capabilities(store)
        if "checkpoints" in declared:
            assert self._checkpoint(store, tally) == result.checkpoint
        store.append_many([StreamWrite(a, [event()]), StreamWrite(b, [event(), event()])])
        assert tally.seen == _positions(store)
        if "transactions" in declared:
            with transaction(store) as tx:  # appends in a transaction run it too
                tx.append(b, [event()])
                tx.append(a, [event()])
            assert tally.seen == _positions(store)
        if "checkpoints" in declared:
            assert self._checkpoint(store, tally) == store.head()
        # Re-sending stored events writes nothing, and so runs nothing.
        [last] = store.read_stream(a, 3, 3)
        store.append(a, [NewEvent(last.type, {"n": 0}, event_id=last.event_id)])
        assert tally.seen == _positions(store)

    def test_a_failing_hook_fails_the_append_with_nothing_written(self, store: EventStore) -> None:
        stream = new_stream("hook")
        store.append(stream, [event()])
        tally = _install(store)
        head = store.head()
        with pytest.raises(ValueError, match="boom"):
            store.append(stream, [event(), NewEvent("Boom", {})])
        with pytest.raises(ValueError, match="boom"):
            store.append_many(
                [StreamWrite(new_stream("hook"), [event()]), StreamWrite(stream, [NewEvent("Boom", {})])]
            )
        assert store.head() == head
        assert store.stream_info(stream).version == 1
        if "checkpoints" in capabilities(store):
            assert self._checkpoint(store, tally) == head
        store.append(stream, [event()], 1)
        assert tally.seen == _positions(store)

    def test_a_name_is_installed_once_and_removed(self, store: EventStore) -> None:
        tally = _install(store)
        with pytest.raises(InvalidInputError, match="already installed"):
            _install(store)
        store.append(new_stream("hook"), [event()])
        _remove(store, "tally")
        _remove(store, "never-installed")  # nothing to remove: no error
        store.append(new_stream("hook"), [event()])
        assert tally.seen == _positions(store)[:1]
        again = _install(store)  # the name is free again; it catches up from its checkpoint
        if "checkpoints" in capabilities(store):
            assert again.seen == _positions(store)[1:]

    def test_concurrent_writers_stay_in_step(self, store: EventStore) -> None:
        tally = _install(store)
        category = f"step{uuid.uuid4().hex[:8]}"
        errors: list[BaseException] = []

        def write(i: int) -> None:
            rng = random.Random(i)
            try:
                for _ in range(12):
                    stream = f"{category}-hot" if rng.random() < 0.3 else f"{category}-{i}"
                    store.append(stream, [event(writer=i) for _ in range(rng.randint(1, 3))])
            except BaseException as err:
                errors.append(err)

        threads = [threading.Thread(target=write, args=(i,)) for i in range(6)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(120)
        assert errors == []
        assert tally.seen == _positions(store), "the hook did not see the log exactly once, in order"
        if "checkpoints" in capabilities(store):
            assert self._checkpoint(store, tally) == store.head()

    def test_inline_projection(
        self, store: EventStore, open_store: OpenStore, store_factory: StoreFactory
    ) -> None:
        import chronik.projections
        from chronik.projections import (
            Projection,
            ProjectionFailedError,
            add_inline_projection,
            remove_inline_projection,
        )

        projected: list[tuple[str, int]] = []

        def added(event: RecordedEvent, context: list[tuple[str, int]]) -> None:
            if event.data.get("bad"):
                raise ValueError("cannot project it")
            context.append((event.stream_id, event.version))

        projection = Projection("counted", {"Added": added})
        stream = new_stream("acc")
        store.append(stream, [NewEvent("Added", {}), NewEvent("Other", {})])
        if isinstance(store, BlockingStore):
            add_async = getattr(chronik.projections, "add_inline_projection_async", None)
            if add_async is None:
                pytest.skip("chronik.projections has no inline projections for asyncio stores")
            run(store, add_async(native(store), projection, projected))
        else:
            add_inline_projection(store, projection, projected)
        assert projected == [(stream, 1)]  # caught up when installed
        store.append(stream, [NewEvent("Added", {})])
        assert projected == [(stream, 1), (stream, 3)]
        with pytest.raises(ProjectionFailedError, match="version 4"):
            store.append(stream, [NewEvent("Added", {"bad": True})])
        assert store.stream_info(stream).version == 3  # the append was rolled back with it
        if "projection_state" in capabilities(store):
            [state] = face_of(store).projection_states("counted")
            assert (state.status, state.active) == ("live", True)
        if store_factory.shared:
            # A writer without the projection (a second handle) does not make it skip
            # events: the next append that runs it catches up on them first.
            open_store().append(stream, [NewEvent("Added", {})])
            store.append(stream, [NewEvent("Added", {})])
            assert projected == [(stream, 1), (stream, 3), (stream, 4), (stream, 5)]
        remove_inline_projection(native(store), projection)
        before = list(projected)
        store.append(stream, [NewEvent("Added", {})])
        assert projected == before
