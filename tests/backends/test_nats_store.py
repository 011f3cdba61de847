"""What the NATS store promises beyond the conformance suite: opening by URL, the
errors a user meets (unreachable server, a name JetStream refuses, an append over
``max_payload``), ids any stream may have, re-sends of appends stored without acknowledgement, and a
projection over it that needs nothing else."""

from __future__ import annotations

import asyncio
import socket
import uuid
from collections.abc import Iterator

import nats
import pytest

import chronik
from chronik import NO_STREAM, NewEvent, StreamWrite
from chronik.backend import prepare_write
from chronik.errors import (
    ConfigurationError,
    EventTooLargeError,
    InvalidInputError,
    NotAChronikStoreError,
    OperationalError,
)
from chronik.projections import CheckpointedTarget, Projection, ProjectionRunner
from chronik.stores.nats import AsyncNatsEventStore, NatsEventStore
from chronik.stores.nats._messages import encode_batch
from chronik.stores.nats._subjects import subject_of_stream

from .conftest import delete_nats_store

pytestmark = pytest.mark.nats


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def _jetstream(url: str, action: str, stream: str) -> None:
    """Make (``add``) or look at a JetStream stream directly, as another program would."""

    async def run() -> None:
        nc = await nats.connect(url)
        try:
            js = nc.jetstream()
            if action == "add":
                await js.add_stream(name=stream, subjects=[f"elsewhere.{stream}.>"])
        finally:
            await nc.close()

    asyncio.run(run())


@pytest.fixture
def foreign_stream(nats_url: str) -> Iterator[str]:
    name = f"foreign_{uuid.uuid4().hex[:10]}"
    _jetstream(nats_url, "add", name)
    yield name
    delete_nats_store(nats_url, name)


def test_connect_opens_and_creates_the_store(nats_store_url: str) -> None:
    with chronik.connect(nats_store_url) as store:
        assert isinstance(store, NatsEventStore) and not chronik.is_async(store)
        result = store.append("order-1", [NewEvent("Placed", {"n": 1})], NO_STREAM)
        assert (result.version, str(result.checkpoint)) == (1, f"nats:{result.position}")
    with chronik.connect(nats_store_url) as again:  # the stream exists now: it is reused
        assert again.stream_info("order-1").version == 1


def test_connect_async_opens_the_same_store(nats_store_url: str) -> None:
    async def main() -> list[str]:
        async with chronik.connect_async(nats_store_url) as store:
            assert isinstance(store, AsyncNatsEventStore) and chronik.is_async(store)
            await store.append("order-2", [NewEvent("Placed", {})])
            return [e.stream_id async for e in store.read_all()]

    assert asyncio.run(main()) == ["order-2"]


def test_several_servers_in_one_url(nats_url: str, nats_stream: str) -> None:
    # The first server listed is down; the client goes on to the next.
    host = nats_url.split("://", 1)[1].split("?")[0].rstrip("/")
    url = f"nats://127.0.0.1:{_free_port()},{host}?stream={nats_stream}&connect_timeout=10"
    with chronik.connect(url) as store:
        store.append("order-1", [NewEvent("Placed", {})])
        assert store.stream_info("order-1").version == 1


def test_an_unreachable_server_is_named(nats_stream: str) -> None:
    url = f"nats://nobody:secret@127.0.0.1:{_free_port()}?stream={nats_stream}&connect_timeout=1"
    with pytest.raises(
        OperationalError, match=r"cannot reach NATS at nats://nobody:\*\*\*@127\.0\.0\.1"
    ) as info:
        chronik.connect(url)
    assert "secret" not in str(info.value)
    assert "connect_timeout=1" in str(info.value)


@pytest.mark.parametrize("name", ["orders.eu", "a*b", "a>b", "with space", "a/b", "x" * 201])
def test_a_stream_name_jetstream_refuses_is_refused_clearly(nats_url: str, name: str) -> None:
    with pytest.raises(ConfigurationError, match=r"stream=.* a chronik stream name is 1 to 200"):
        chronik.connect(nats_url, stream=name)


def test_what_the_server_refuses_at_creation_is_named(nats_url: str, nats_stream: str) -> None:
    # One server cannot hold three replicas.
    with pytest.raises(
        ConfigurationError, match=rf"refused to create the stream '{nats_stream}'.*replicas=3"
    ):
        chronik.connect(nats_url, stream=nats_stream, replicas=3)


def test_a_stream_that_is_not_a_chronik_store_is_left_alone(nats_url: str, foreign_stream: str) -> None:
    with pytest.raises(NotAChronikStoreError, match="is not a chronik store"):
        chronik.connect(nats_url, stream=foreign_stream)


def test_create_false_needs_the_stream(nats_url: str, nats_stream: str) -> None:
    with pytest.raises(ConfigurationError, match="create=false"):
        chronik.connect(f"{nats_url}?stream={nats_stream}&create=false")


def test_bad_options_are_refused(nats_url: str) -> None:
    with pytest.raises(ConfigurationError, match="unknown option 'replica'"):
        chronik.connect(f"{nats_url}?replica=3")
    with pytest.raises(ConfigurationError, match="storage='disk'"):
        chronik.connect(f"{nats_url}?storage=disk")
    with pytest.raises(ConfigurationError, match="takes no path"):
        chronik.connect("nats://127.0.0.1:4222/orders")


def test_an_append_over_max_payload_is_refused_before_sending(nats_store_url: str) -> None:
    with chronik.connect(nats_store_url) as store:
        # Each event is under max_event_size; together they are over the server's
        # max_payload (1 MiB by default), and an append is one message.
        batch = [NewEvent("Chunk", {"s": "x" * 300_000}) for _ in range(4)]
        with pytest.raises(EventTooLargeError, match="max_payload") as info:
            store.append("blob-1", batch)
        assert info.value.stream_id == "blob-1"
        assert info.value.limit == 1024 * 1024
        assert store.head() is None
        store.append("blob-1", batch[:3])  # under the limit: one atomic message
        assert [e.version for e in store.read_stream("blob-1")] == [1, 2, 3]


def test_any_stream_id_round_trips(nats_store_url: str) -> None:
    ids = ["a.b*c>-d e", "-leading", "no_dash", "日本-🙂.x", "order-*", "order->", "order-a.b"]
    with chronik.connect(nats_store_url) as store:
        for n, stream_id in enumerate(ids):
            store.append(stream_id, [NewEvent("E", {"n": n})])
        assert [e.stream_id for e in store.read_all()] == ids
        assert sorted(i.stream_id for i in store.list_streams()) == sorted(ids)
        assert [i.stream_id for i in store.list_streams(category="order")] == [
            "order-*",
            "order->",
            "order-a.b",
        ]
        # Wildcards in an id are not wildcards: each stream is read alone.
        assert [e.data["n"] for e in store.read_stream("order-*")] == [4]
        assert [e.stream_id for e in store.read_all(categories=["order"])] == ids[4:]
        assert [e.stream_id for e in store.read_all(categories=["a.b*c>"])] == [ids[0]]


def test_a_resend_of_an_append_stored_without_acknowledgement_is_never_stored_twice(
    nats_store_url: str,
) -> None:
    # What a cluster losing its leader can do to a writer: the batch is stored, the
    # acknowledgement never arrives, and the new leader no longer knows the message id.
    # The writer retries with the same ids; whatever its expected version, the retry
    # must find the first attempt, not store the batch again.
    batch = [NewEvent("E", {"n": i}, event_id=chronik.uuid7()) for i in range(3)]
    ids = [e.event_id for e in batch if e.event_id is not None]

    async def publish_then_die() -> None:
        store = AsyncNatsEventStore(nats_store_url)
        write = prepare_write(store.codec, "order-1", batch, chronik.ANY)
        await store._writer.reserve("order-1", 0, ids)  # what append does before publishing
        js = await store._conn.ready()
        subject = subject_of_stream(store.config.prefix, "order-1")
        headers = {"Nats-Expected-Last-Subject-Sequence": "0"}  # no Nats-Msg-Id: forgotten
        await js.publish(subject, encode_batch(1, write.events), headers=headers)
        await store.close()

    asyncio.run(publish_then_die())
    with chronik.connect(nats_store_url) as store:
        first = store.append("order-1", batch, chronik.ANY)
        stored = store.read_stream("order-1")
        assert (first.next_expected_version, first.position) == (3, stored[-1].position)
        assert store.append("order-1", batch, NO_STREAM) == first
        assert store.append("order-1", batch) == first
        store.append("order-1", [NewEvent("E", {"n": 3})])
        assert store.append("order-1", batch, chronik.ANY) == first  # not the last message any more
        assert [e.event_id for e in store.read_stream("order-1")][:3] == ids
        assert store.stream_info("order-1").version == 4


def test_reserved_ids_whose_publish_never_stored_anything_do_not_count(nats_store_url: str) -> None:
    # An append that reserved its ids and then lost the race (or died before publishing)
    # stored nothing: sending the same ids again appends them, once.
    batch = [NewEvent("E", {"n": i}, event_id=chronik.uuid7()) for i in range(2)]

    async def reserve_then_die() -> None:
        store = AsyncNatsEventStore(nats_store_url)
        await store._writer.reserve("order-1", 0, [e.event_id for e in batch if e.event_id])
        await store.close()

    asyncio.run(reserve_then_die())
    with chronik.connect(nats_store_url) as store:
        store.append("order-1", [NewEvent("E", {})])
        assert store.append("order-1", batch, 1).next_expected_version == 3
        assert store.append("order-1", batch, 1).next_expected_version == 3
        assert [e.version for e in store.read_stream("order-1")] == [1, 2, 3]


def test_read_stream_bounds_on_a_stream_of_many_messages(nats_store_url: str) -> None:
    with chronik.connect(nats_store_url) as store:
        for n in range(0, 30, 3):
            store.append("acc-1", [NewEvent("E", {"n": n + i}) for i in range(3)])
            store.append("acc-2", [NewEvent("E", {})])
        assert [e.version for e in store.read_stream("acc-1", 5, 8)] == [5, 6, 7, 8]
        assert [e.version for e in store.read_stream("acc-1", 5, limit=2)] == [5, 6]
        assert [e.version for e in store.read_stream("acc-1", 2, 7, backwards=True, limit=4)] == [7, 6, 5, 4]
        assert [e.version for e in store.read_stream("acc-1", 29)] == [29, 30]
        assert [e.data["n"] for e in store.read_stream("acc-1")] == list(range(30))


def test_read_stream_finds_every_range_of_a_long_stream(nats_store_url: str) -> None:
    # read_stream bisects the log to find where to start, then reads a few messages by
    # direct gets or many with a consumer: every range comes back whole and in order.
    with chronik.connect(nats_store_url) as store:
        size = 0
        for n in range(40):
            count = 1 + n % 4
            store.append("acc-1", [NewEvent("E", {"v": size + 1 + i}) for i in range(count)])
            size += count
            store.append(f"acc-{2 + n % 3}", [NewEvent("E", {})])
        versions = list(range(1, size + 1))
        for low in (1, 2, 7, 50, size - 1, size):
            for high in (None, low, low + 3, low + 30, size):
                for limit in (None, 1, 5, 40):
                    top = size if high is None else min(high, size)
                    forward = [v for v in versions if low <= v <= top]
                    got = store.read_stream("acc-1", low, high, limit=limit)
                    assert [e.data["v"] for e in got] == forward[:limit], (low, high, limit)
                    got = store.read_stream("acc-1", low, high, backwards=True, limit=limit)
                    assert [e.version for e in got] == forward[::-1][:limit], (low, high, limit)


def test_a_projection_over_nats_needs_nothing_else(nats_store_url: str) -> None:
    totals: dict[str, int] = {}

    def added(event: chronik.RecordedEvent, context: dict[str, int]) -> None:
        context[event.stream_id] = context.get(event.stream_id, 0) + event.data["n"]

    projection = Projection("totals", {"Added": added})
    with chronik.connect(nats_store_url) as store:
        for n in range(1, 6):
            store.append(f"cart-{n % 2}", [NewEvent("Added", {"n": n})])
        runner = ProjectionRunner(store, projection, CheckpointedTarget(totals, store))
        assert runner.run_until_caught_up() == 5
        assert totals == {"cart-0": 6, "cart-1": 9}
    # Another process, later: the checkpoint is in the store's bucket.
    with chronik.connect(nats_store_url) as store:
        store.append("cart-1", [NewEvent("Added", {"n": 10})])
        runner = ProjectionRunner(store, projection, CheckpointedTarget(totals, store))
        assert runner.run_until_caught_up() == 1
        assert totals == {"cart-0": 6, "cart-1": 19}


def test_tagged_events_are_refused_not_dropped(nats_store_url: str) -> None:
    with chronik.connect(nats_store_url) as store:
        tagged = NewEvent("Enrolled", {"student": "s7"}, tags=["course:c1"])
        with pytest.raises(InvalidInputError, match="does not store tags"):
            store.append("enrolment-1", [tagged])
        with pytest.raises(InvalidInputError, match="does not store tags"):
            store.append_many([StreamWrite("enrolment-1", [tagged])])
        assert not store.stream_info("enrolment-1").exists
