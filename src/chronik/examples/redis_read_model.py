"""CQRS with two stores: events in SQLite or PostgreSQL, a read model in Redis.

The read model's keys and its checkpoint are written in one Redis transaction
(``MULTI``/``EXEC``), so each batch lands whole or not at all: exactly-once effect
without the read model living in the event store. The checkpoint key is
``WATCH``\\ ed from the moment the runner reads it, so a second runner of the same
projection that commits first makes this one's ``EXEC`` fail
(:class:`~chronik.projections.ProjectionConflictError`) instead of applying the
batch twice.

The model: a hash per order (customer, status, total) and a set of order ids per
customer, under a key prefix of your choosing and the projection's version::

    target = RedisTarget(redis.Redis.from_url(url), prefix="shop:")
    ProjectionRunner(store, redis_orders, target).run_until_caught_up()
    redis_order(client, "shop:", "42")   # {'customer': 'ada', 'status': 'submitted', 'total': 2500}
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any, Protocol

from chronik.errors import ConfigurationError
from chronik.events import Checkpoint, RecordedEvent
from chronik.examples import registry
from chronik.examples.orders import OrderCreated, OrderItemAdded, OrderSubmitted
from chronik.projections import EventHandlers, Projection, ProjectionConflictError
from chronik.store import ProjectionStateStore

if TYPE_CHECKING:
    import redis
    from redis.client import Pipeline

__all__ = ["RedisTarget", "delete_prefix", "redis_order", "redis_orders", "redis_orders_of"]


def _redis() -> Any:
    try:
        import redis
    except ModuleNotFoundError as err:
        raise ConfigurationError(
            f"the Redis read model needs the 'redis' extra: pip install 'chronik[redis]' ({err})"
        ) from err
    return redis


class _Watching(Protocol):
    """The pipeline as ``WATCH`` is called on it: redis-py leaves ``Pipeline.watch``
    unannotated, which strict type checking refuses to call; the pipeline satisfies this."""

    def watch(self, *names: str) -> object: ...


class _RedisUnit:
    """One batch: the checkpoint is read (and watched) first, then MULTI, then EXEC."""

    def __init__(self, pipe: Pipeline, prefix: str) -> None:
        self._pipe = pipe
        self._watching: _Watching = pipe
        self._prefix = prefix
        self._multi = False

    def _key(self, name: str) -> str:
        return f"{self._prefix}checkpoint:{name}"

    def _queueing(self) -> Pipeline:
        if not self._multi:
            self._pipe.multi()
            self._multi = True
        return self._pipe

    @property
    def context(self) -> Pipeline:
        return self._queueing()

    @property
    def states(self) -> ProjectionStateStore | None:
        return None

    def load_checkpoint(self, name: str) -> Checkpoint | None:
        if self._multi:
            raise ConfigurationError("the checkpoint must be read before the read model is written")
        key = self._key(name)
        self._watching.watch(key)
        value = self._pipe.get(key)
        return (
            None if value is None else Checkpoint.parse(value.decode() if isinstance(value, bytes) else value)
        )

    def save_checkpoint(self, name: str, checkpoint: Checkpoint) -> None:
        self._queueing().set(self._key(name), str(checkpoint))

    def delete_checkpoint(self, name: str) -> None:
        self._queueing().delete(self._key(name))

    def execute(self) -> None:
        if self._multi:
            self._pipe.execute()


class RedisTarget:
    """A projection target in Redis: handlers get a pipeline in ``MULTI`` mode."""

    exactly_once = True

    def __init__(self, client: redis.Redis, prefix: str) -> None:
        self.client = client
        self.prefix = prefix

    def load_checkpoint(self, name: str) -> Checkpoint | None:
        value = self.client.get(f"{self.prefix}checkpoint:{name}")
        return (
            None
            if value is None
            else Checkpoint.parse(value.decode() if isinstance(value, bytes) else str(value))
        )

    @contextmanager
    def unit(self) -> Iterator[_RedisUnit]:
        watch_error = _redis().WatchError
        with self.client.pipeline(transaction=True) as pipe:
            unit = _RedisUnit(pipe, self.prefix)
            yield unit
            try:
                unit.execute()
            except watch_error as err:
                raise ProjectionConflictError(
                    f"another runner wrote the checkpoint under {self.prefix!r} first; nothing was applied"
                ) from err

    def __repr__(self) -> str:
        return f"RedisTarget(prefix={self.prefix!r})"


def _order_key(prefix: str, version: int, order_id: str) -> str:
    return f"{prefix}v{version}:order:{order_id}"


def _customer_key(prefix: str, version: int, customer: str) -> str:
    return f"{prefix}v{version}:customer:{customer}"


def make_redis_orders(prefix: str, version: int = 1) -> Projection[Pipeline]:
    """The order summary projection, writing under ``prefix``."""

    def order_id(event: RecordedEvent) -> str:
        return event.stream_id.partition("-")[2]

    # Registered by class, so each handler sees its event's type (``event.data``). (Pipeline
    # is imported for type checkers only, so it is named in an annotation, not subscripted.)
    handlers: EventHandlers[Pipeline] = EventHandlers(registry)

    @handlers.on(OrderCreated)
    def created(event: RecordedEvent[OrderCreated], pipe: Pipeline) -> None:
        data = event.data
        key = _order_key(prefix, version, order_id(event))
        pipe.hset(key, mapping={"customer": data.customer, "status": "open", "total": 0})
        pipe.sadd(_customer_key(prefix, version, data.customer), order_id(event))

    @handlers.on(OrderItemAdded)
    def item_added(event: RecordedEvent[OrderItemAdded], pipe: Pipeline) -> None:
        data = event.data
        pipe.hincrby(_order_key(prefix, version, order_id(event)), "total", data.quantity * data.unit_price)

    @handlers.on(OrderSubmitted)
    def submitted(event: RecordedEvent[OrderSubmitted], pipe: Pipeline) -> None:
        pipe.hset(
            _order_key(prefix, version, order_id(event)),
            mapping={"status": "submitted", "total": event.data.total},
        )

    return Projection(
        "redis_orders",
        handlers,
        version=version,
        categories=("order",),
    )


redis_orders = make_redis_orders
"""Alias: ``redis_orders(prefix)`` builds the projection for a key prefix."""


def redis_order(client: redis.Redis, prefix: str, order_id: str, version: int = 1) -> dict[str, Any] | None:
    """One order's summary as the Redis read model has it."""
    raw: dict[Any, Any] = client.hgetall(_order_key(prefix, version, order_id))
    if not raw:
        return None
    fields = {
        (k.decode() if isinstance(k, bytes) else k): (v.decode() if isinstance(v, bytes) else v)
        for k, v in raw.items()
    }
    return {"customer": fields["customer"], "status": fields["status"], "total": int(fields["total"])}


def redis_orders_of(client: redis.Redis, prefix: str, customer: str, version: int = 1) -> list[str]:
    """A customer's order ids, sorted."""
    members: set[Any] = client.smembers(_customer_key(prefix, version, customer))
    return sorted(m.decode() if isinstance(m, bytes) else m for m in members)


def delete_prefix(client: redis.Redis, prefix: str) -> int:
    """Delete every key under ``prefix`` (the read model and its checkpoints); returns how many."""
    deleted = 0
    batch: list[Any] = []
    for key in client.scan_iter(match=f"{prefix}*", count=500):
        batch.append(key)
        if len(batch) == 500:
            deleted += int(client.delete(*batch))
            batch = []
    if batch:
        deleted += int(client.delete(*batch))
    return deleted
