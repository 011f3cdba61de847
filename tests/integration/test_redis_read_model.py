"""CQRS with two stores: events in SQLite, the read model in the real Redis."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

import chronik
from chronik.examples import registry
from chronik.examples.orders import AddItem, CreateOrder, SubmitOrder, order_decider
from chronik.examples.redis_read_model import (
    RedisTarget,
    delete_prefix,
    redis_order,
    redis_orders,
    redis_orders_of,
)
from chronik.handling import CommandHandler
from chronik.projections import ProjectionConflictError, ProjectionRunner
from chronik.store import EventStore
from chronik.testing.services import REDIS, unavailable

redis = pytest.importorskip("redis")
pytestmark = pytest.mark.redis

URL = REDIS.url


@pytest.fixture
def client() -> Iterator[Any]:
    client = redis.Redis.from_url(URL)
    try:
        client.ping()
    except redis.RedisError as err:
        client.close()
        unavailable(f"Redis is not reachable at {URL} (set {REDIS.variable}): {err}")
    yield client
    client.close()


@pytest.fixture
def prefix(client: Any) -> Iterator[str]:
    prefix = f"chronik-test-{uuid.uuid4().hex}:"
    yield prefix
    delete_prefix(client, prefix)
    assert not list(client.scan_iter(match=f"{prefix}*"))


@pytest.fixture
def store(tmp_path: Path) -> Iterator[EventStore]:
    store = chronik.connect(f"sqlite:///{tmp_path}/shop.db", registry=registry)
    yield store
    store.close()


def _orders(store: EventStore, first: int, count: int) -> None:
    handler = CommandHandler(store, order_decider)
    for n in range(first, first + count):
        handler.handle(f"order-{n}", CreateOrder("ada" if n % 2 else "grace"))
        handler.handle(f"order-{n}", AddItem("book", 1 + n % 3, 1000))
        if n % 4 == 0:
            handler.handle(f"order-{n}", SubmitOrder())


def test_read_model_and_checkpoint_in_one_redis_transaction(
    client: Any, prefix: str, store: EventStore
) -> None:
    _orders(store, 1, 20)
    target = RedisTarget(client, prefix)
    projection = redis_orders(prefix)
    runner = ProjectionRunner(store, projection, target, batch_size=7)
    assert runner.run_until_caught_up() == 45
    assert redis_order(client, prefix, "4") == {"customer": "grace", "status": "submitted", "total": 2000}
    assert redis_order(client, prefix, "5") == {"customer": "ada", "status": "open", "total": 3000}
    assert redis_orders_of(client, prefix, "ada") == sorted(str(n) for n in range(1, 21, 2))
    assert target.load_checkpoint(projection.checkpoint_name) == store.head()
    # The checkpoint lives in Redis, next to the model, not in the event store.
    assert store.load_checkpoint(projection.checkpoint_name) is None  # type: ignore[attr-defined]

    _orders(store, 21, 2)
    again = ProjectionRunner(store, projection, RedisTarget(client, prefix))
    assert again.lag().events == 4
    assert again.run_until_caught_up() == 4
    assert redis_order(client, prefix, "21") == {"customer": "ada", "status": "open", "total": 1000}
    assert redis_order(client, prefix, "4") == {"customer": "grace", "status": "submitted", "total": 2000}


def test_a_batch_is_all_or_nothing(client: Any, prefix: str, store: EventStore) -> None:
    _orders(store, 1, 3)
    target = RedisTarget(client, prefix)
    projection = redis_orders(prefix)
    unit_manager = target.unit()
    unit = unit_manager.__enter__()
    assert unit.load_checkpoint(projection.checkpoint_name) is None
    unit.context.hset(f"{prefix}v1:order:99", mapping={"customer": "x", "status": "open", "total": 1})
    # Another runner commits a checkpoint in between: this unit's EXEC must fail whole.
    client.set(f"{prefix}checkpoint:{projection.checkpoint_name}", "sqlite:1")
    with pytest.raises(ProjectionConflictError):
        unit_manager.__exit__(None, None, None)
    assert redis_order(client, prefix, "99") is None
