"""The relay: the store's log, filtered by category and type, published to a broker.

A :class:`Relay` names what is relayed; :func:`relay_runner` makes the runner that
does it: a projection runner (the same that runs projections and process managers,
with its status, lag, backoff and stop) whose target publishes each batch and saves
the checkpoint once the broker has confirmed it (``_async_target.py``). On a sync
store it takes a sync publisher (:class:`~chronik.brokers.BlockingPublisher` over an
asyncio one), on an asyncio store an asyncio publisher.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any, Final, cast, overload

from chronik._append import normalize_filter
from chronik.brokers._base import AsyncPublisher, Publisher
from chronik.errors import ConfigurationError, InvalidInputError
from chronik.events import RecordedEvent
from chronik.projections import AsyncProjectionRunner, FailurePolicy, Projection, ProjectionRunner
from chronik.relay._async_target import AsyncRelayTarget, Batch
from chronik.relay._target import RelayTarget
from chronik.store import AsyncCheckpointStore, AsyncEventStore, CheckpointStore, EventStore, is_async

__all__ = ["KIND", "Relay", "relay_runner"]

KIND: Final = "relay"


def _collect(event: RecordedEvent, batch: Batch) -> None:
    batch.append(event)


@dataclass(frozen=True)
class Relay:
    """What a relay publishes: events of ``categories`` (None: every category) and of
    ``types`` (None: every type). ``name`` keeps its checkpoint apart from other relays':
    the runner's projection is ``relay.<name>`` (so ``chronik projections status`` lists it)."""

    name: str
    categories: tuple[str, ...] | None = None
    types: tuple[str, ...] | None = None

    def __init__(
        self, name: str, *, categories: Iterable[str] | None = None, types: Iterable[str] | None = None
    ) -> None:
        if not isinstance(name, str) or not name or ":" in name or not name.isprintable():
            raise InvalidInputError(f"relay name must be a non-empty printable str without ':', got {name!r}")
        object.__setattr__(self, "name", name)
        object.__setattr__(self, "categories", normalize_filter(categories, "categories"))
        object.__setattr__(self, "types", normalize_filter(types, "types"))
        if self.types == () or self.categories == ():
            raise InvalidInputError(
                "an empty list of categories or types would relay nothing: pass None for all"
            )

    def projection(self) -> Projection[Batch]:
        """The projection the runner runs: it collects each batch's events for the target."""
        if self.types is None:
            return Projection(f"relay.{self.name}", {}, categories=self.categories, fallback=_collect)
        return Projection(
            f"relay.{self.name}", dict.fromkeys(self.types, _collect), categories=self.categories
        )


@overload
def relay_runner(
    store: EventStore,
    relay: Relay,
    publisher: Publisher,
    *,
    policy: FailurePolicy | None = None,
    **options: Any,
) -> ProjectionRunner[Batch]: ...


@overload
def relay_runner(
    store: AsyncEventStore,
    relay: Relay,
    publisher: AsyncPublisher,
    *,
    policy: FailurePolicy | None = None,
    **options: Any,
) -> AsyncProjectionRunner[Batch]: ...


def relay_runner(
    store: EventStore | AsyncEventStore,
    relay: Relay,
    publisher: Publisher | AsyncPublisher,
    *,
    policy: FailurePolicy | None = None,
    **options: Any,
) -> ProjectionRunner[Batch] | AsyncProjectionRunner[Batch]:
    """The runner that publishes ``relay``'s events from ``store`` to ``publisher``.

    ``policy`` (a :class:`~chronik.projections.FailurePolicy`) sets the backoff while
    the store or the broker is away; other ``options`` go to the runner (``batch_size``,
    ``idle_timeout``, ``partition``, ``on_progress``). Run it as any runner:
    ``run_until_caught_up()``, ``run()``, ``run_in_background()`` and ``stop()``,
    ``status()``. The publisher is the caller's to close.
    """
    if not isinstance(relay, Relay):
        raise InvalidInputError(f"expected a Relay, got {type(relay).__name__}")
    if is_async(store):
        if not isinstance(publisher, AsyncPublisher) or publisher.is_async is not True:
            raise ConfigurationError(
                f"{store!r} is an asyncio store: give it an asyncio publisher, not {publisher!r}"
            )
        if not isinstance(store, AsyncCheckpointStore):
            raise ConfigurationError(
                f"{store!r} cannot store the relay's checkpoint (it is not a CheckpointStore)"
            )
        target = AsyncRelayTarget(publisher, store)
        return AsyncProjectionRunner(
            cast("AsyncEventStore", store), relay.projection(), target, policy=policy, kind=KIND, **options
        )
    if not isinstance(publisher, Publisher) or publisher.is_async is not False:
        raise ConfigurationError(
            f"{store!r} is a sync store: give it a sync publisher (BlockingPublisher({publisher!r}))"
        )
    if not isinstance(store, CheckpointStore):
        raise ConfigurationError(
            f"{store!r} cannot store the relay's checkpoint (it is not a CheckpointStore)"
        )
    return ProjectionRunner(
        cast("EventStore", store),
        relay.projection(),
        RelayTarget(publisher, store),
        policy=policy,
        kind=KIND,
        **options,
    )
