"""The relay against the real brokers: what each message carries, filters, order, dedupe,
both faces, and riding out a broker that goes away (a nats-server of the test's own is
killed and started again; RabbitMQ and Redis are cut off by a proxy the test controls,
never restarted)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

import chronik
from chronik import NewEvent
from chronik.brokers import HEADERS, BlockingPublisher, message_of, publisher_for
from chronik.brokers.kafka import KafkaPublisher
from chronik.brokers.nats import JetStreamPublisher, NatsPublisher
from chronik.brokers.rabbitmq import RabbitMQPublisher
from chronik.brokers.redis import RedisStreamsPublisher
from chronik.errors import BrokerError, ConfigurationError, InvalidInputError, is_transient
from chronik.projections import FailurePolicy
from chronik.relay import Relay, relay_runner
from tests.backends._brokers import (
    Kafka,
    NatsServer,
    Proxy,
    delete_jetstream,
    free_port,
    jetstream_messages,
    kafka_messages,
    kafka_topic,
    nats_received,
    rabbitmq_delete,
    rabbitmq_drain,
    rabbitmq_queue,
    redis_delete,
    redis_entries,
    run,
    unique,
    wait_until,
)

FAST = FailurePolicy(backoff=0.02, max_backoff=0.2)
TRACE = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"


def _store(tmp_path: Path, category: str, streams: int = 3, events: int = 4) -> chronik.Store:
    """Events of ``streams`` streams of ``category``, interleaved, and one of another category."""
    store = chronik.connect(f"sqlite:///{tmp_path / 'relay.db'}")
    for version in range(events):
        for s in range(streams):
            kind = "Placed" if version == 0 else "order.line-added"
            metadata = {"correlation_id": f"req-{s}", "traceparent": TRACE} if version == 0 else {}
            store.append(f"{category}-{s}", [NewEvent(kind, {"n": version}, metadata=metadata)])
    store.append("elsewhere-1", [NewEvent("Placed", {"n": 0})])
    return store


def _expected(store: chronik.Store, category: str) -> list[chronik.RecordedEvent]:
    return list(store.read_all(categories=[category]))


def _all_in_stream_order(ids: list[str], store: chronik.Store, category: str, *, once: bool) -> None:
    """``ids`` (message ids as the broker holds them) are the category's events, each
    once (``once``) or at least once, each stream's in order (streams interleave freely)."""
    events = {str(e.event_id): e for e in _expected(store, category)}
    assert set(ids) == set(events)
    if once:
        assert len(ids) == len(events)
    first = list(dict.fromkeys(ids))
    _in_order_per_stream([(events[i].stream_id, events[i].version) for i in first])


def _in_order_per_stream(pairs: list[tuple[str, int]]) -> None:
    seen: dict[str, int] = {}
    for stream, version in pairs:
        assert version == seen.get(stream, 0) + 1, f"{stream} v{version} after v{seen.get(stream)}"
        seen[stream] = version


# -- what each broker gets ------------------------------------------------------------------------


@pytest.mark.nats
def test_jetstream_gets_each_event_once_with_its_id_and_headers(nats_broker: str, tmp_path: Path) -> None:
    category, stream = unique("ord"), unique("RELAY")
    store = _store(tmp_path, category)
    publisher = JetStreamPublisher(nats_broker, subject=f"{stream}.{{category}}.{{type}}", stream=stream)
    try:
        with BlockingPublisher(publisher) as broker:
            runner = relay_runner(store, Relay("js", categories=[category]), broker, batch_size=5)
            assert runner.run_until_caught_up() == 12
            # The checkpoint moved only after the stream acknowledged: a second run sends nothing.
            assert runner.run_until_caught_up() == 0
            # Sent again (a crash before the checkpoint was saved): the stream drops the copies.
            store.delete_checkpoint(runner.checkpoint_name)
            again = relay_runner(store, Relay("js", categories=[category]), broker)
            assert again.run_until_caught_up() == 12
        messages = run(jetstream_messages(nats_broker, stream))
        events = _expected(store, category)
        _all_in_stream_order([m.headers["Nats-Msg-Id"] for m in messages], store, category, once=True)
        by_place = {(m.headers["chronik-stream"], m.headers["chronik-version"]): m for m in messages}
        first, second = by_place[(f"{category}-0", "1")], by_place[(f"{category}-0", "2")]
        assert first.subject == f"{stream}.{category}.Placed"
        assert second.subject == f"{stream}.{category}.order%2Eline-added"  # one token
        assert set(HEADERS) - {"chronik-causation-id", "tracestate"} <= set(first.headers)
        assert (first.headers["chronik-stream"], first.headers["chronik-version"]) == (f"{category}-0", "1")
        assert first.headers["chronik-position"] == str(events[0].position)
        assert first.headers["chronik-correlation-id"] == "req-0"
        assert first.headers["traceparent"] == TRACE
        assert "traceparent" not in second.headers
        assert first.data == b'{"n":0}'
    finally:
        store.close()
        run(delete_jetstream(nats_broker, stream))


@pytest.mark.nats
def test_core_nats_subscribers_get_every_event_in_order(nats_broker: str, tmp_path: Path) -> None:
    category, prefix = unique("ord"), unique("core")
    store = _store(tmp_path, category)

    async def relay() -> None:
        publisher = NatsPublisher(nats_broker, subject=f"{prefix}.{{category}}.{{stream}}")
        runner = relay_runner(
            chronik.connect_async(f"sqlite:///{tmp_path / 'relay.db'}"),
            Relay("core", categories=[category], types=["Placed"]),
            publisher,
        )
        try:
            assert await runner.run_until_caught_up() == 3
        finally:
            await publisher.close()
            await runner.store.close()

    got = run(nats_received(nats_broker, f"{prefix}.>", 3, relay))
    assert [m.subject for m in got] == [f"{prefix}.{category}.{category}-{s}" for s in range(3)]
    assert [m.headers["Nats-Msg-Id"] for m in got] == [
        str(e.event_id) for e in store.read_all(categories=[category], types=["Placed"])
    ]
    store.close()


@pytest.mark.rabbitmq
def test_rabbitmq_exchange_and_routing_key_come_from_the_category(rabbitmq_url: str, tmp_path: Path) -> None:
    category = unique("ord")
    queue, typed = unique("q"), unique("q")
    store = _store(tmp_path, category)
    run(rabbitmq_queue(rabbitmq_url, category, queue))
    run(rabbitmq_queue(rabbitmq_url, category, typed, binding=f"{category}.order%2Eline-added"))
    try:
        with BlockingPublisher(publisher_for(rabbitmq_url.replace("amqp://", "rabbitmq://"))) as broker:
            runner = relay_runner(store, Relay("rabbit", categories=[category]), broker, batch_size=4)
            assert runner.run_until_caught_up() == 12
        messages = run(rabbitmq_drain(rabbitmq_url, queue))
        _all_in_stream_order([str(m.message_id) for m in messages], store, category, once=True)
        first = next(m for m in messages if m.headers["chronik-stream"] == f"{category}-0")
        assert (first.exchange, first.routing_key, first.type) == (category, f"{category}.Placed", "Placed")
        assert first.correlation_id == "req-0" and first.headers["traceparent"] == TRACE
        assert first.delivery_mode == 2 and first.content_type == "application/json"  # persistent
        assert first.headers["chronik-version"] == "1" and first.body == b'{"n":0}'
        assert len(run(rabbitmq_drain(rabbitmq_url, typed))) == 9  # bound to one routing key
    finally:
        store.close()
        run(rabbitmq_delete(rabbitmq_url, [category], [queue, typed]))


@pytest.mark.redis
def test_redis_streams_get_each_event_once_even_when_it_is_sent_again(redis_url: str, tmp_path: Path) -> None:
    category, prefix = unique("ord"), unique("relay")
    store = _store(tmp_path, category)
    key = f"{prefix}:{category}"
    try:
        with BlockingPublisher(RedisStreamsPublisher(redis_url, key=f"{prefix}:{{category}}")) as broker:
            runner = relay_runner(store, Relay("redis", categories=[category]), broker, batch_size=5)
            assert runner.run_until_caught_up() == 12
            store.delete_checkpoint(runner.checkpoint_name)  # as if it crashed before saving it
            assert (
                relay_runner(store, Relay("redis", categories=[category]), broker).run_until_caught_up() == 12
            )
        entries = redis_entries(redis_url, key)
        events = _expected(store, category)
        assert [fields["id"].decode() for fields in entries] == [str(e.event_id) for e in events]
        fields = entries[0]
        assert fields["data"] == b'{"n":0}' and fields["chronik-type"] == b"Placed"
        assert fields["traceparent"] == TRACE.encode()
    finally:
        store.close()
        redis_delete(redis_url, f"*{prefix}*")


@pytest.mark.kafka
def test_kafka_topics_keyed_by_stream_keep_each_stream_in_one_partition(
    kafka: Callable[..., Kafka], tmp_path: Path
) -> None:
    broker = kafka()
    category = unique("ord")
    store = _store(tmp_path, category)
    run(kafka_topic(broker.servers, category, partitions=3))
    with BlockingPublisher(publisher_for(f"kafka://{broker.servers}")) as publisher:
        runner = relay_runner(store, Relay("kafka", categories=[category]), publisher, batch_size=5)
        assert runner.run_until_caught_up() == 12
    records = run(kafka_messages(broker.servers, category))
    events = {str(e.event_id): e for e in _expected(store, category)}
    headers = [{k: v.decode() for k, v in r.headers} for r in records]
    assert sorted(h["chronik-event-id"] for h in headers) == sorted(events)
    partitions: dict[str, set[int]] = {}
    for record, header in zip(records, headers, strict=True):
        event = events[header["chronik-event-id"]]
        assert record.key == event.stream_id.encode() and record.value == msgspec_json(event.data)
        assert (header["chronik-stream"], header["chronik-version"]) == (event.stream_id, str(event.version))
        partitions.setdefault(event.stream_id, set()).add(record.partition)
    assert all(len(p) == 1 for p in partitions.values())  # a stream's events share a partition
    _in_order_per_stream([(h["chronik-stream"], int(h["chronik-version"])) for h in headers])
    first = headers[[h["chronik-version"] for h in headers].index("1")]
    assert first["traceparent"] == TRACE
    store.close()


def msgspec_json(value: object) -> bytes:
    import msgspec

    return msgspec.json.encode(value)


# -- the runner's faces and refusals -------------------------------------------------------------


def test_the_relay_is_a_validated_value_and_refuses_the_wrong_face(tmp_path: Path) -> None:
    with pytest.raises(InvalidInputError):
        Relay("a:b")
    with pytest.raises(InvalidInputError, match="relay nothing"):
        Relay("x", categories=[])
    store = chronik.connect(f"sqlite:///{tmp_path / 'x.db'}")
    publisher = RedisStreamsPublisher("redis://127.0.0.1:1/0")
    with pytest.raises(ConfigurationError, match="BlockingPublisher"):
        relay_runner(store, Relay("x"), publisher)  # type: ignore[call-overload]
    with pytest.raises(ConfigurationError, match="no broker"):
        publisher_for("mqtt://127.0.0.1:1883")
    with pytest.raises(ConfigurationError, match="unknown option 'exchang'"):
        publisher_for("rabbitmq://guest:guest@127.0.0.1:5672/?exchang=x")
    with pytest.raises(InvalidInputError, match="may use"):
        NatsPublisher(subject="x.{tenant}")
    store.close()


def test_an_unreachable_broker_is_a_transient_broker_error(tmp_path: Path) -> None:
    store = _store(tmp_path, "order")
    with BlockingPublisher(RedisStreamsPublisher("redis://127.0.0.1:1/0", timeout=1)) as broker:
        runner = relay_runner(store, Relay("down"), broker, policy=FAST)
        runner.run_in_background()
        wait_until(lambda: _attempts(runner) >= 2, "retries")
        status = runner.status()
        assert status.state == "retrying" and status.kind == "relay"
        assert status.retrying is not None and "BrokerError" in status.retrying.error
        assert status.lag is not None and status.lag.events == 13  # nothing published, nothing lost
        runner.stop()
    with pytest.raises(BrokerError) as caught:
        event = next(store.read_all())
        run(RedisStreamsPublisher("redis://127.0.0.1:1/0", timeout=1).publish([message_of(event)]))
    assert is_transient(caught.value)
    store.close()


def _attempts(runner: Any) -> int:
    """How many tries in a row failed, while the runner is retrying (else 0)."""
    status = runner.status(lag=False)
    return status.retrying.attempts if status.state == "retrying" and status.retrying else 0


# -- riding out a broker that goes away -----------------------------------------------------------


def _ride_out(
    tmp_path: Path,
    category: str,
    broker: Any,
    cut: Callable[[], None],
    restore: Callable[[], None],
) -> chronik.Store:
    """Relay while the broker is cut off and back: retrying, then caught up by itself."""
    store = _store(tmp_path, category)
    runner = relay_runner(store, Relay("outage", categories=[category]), broker, policy=FAST, batch_size=3)
    runner.run_in_background()
    wait_until(lambda: runner.status(lag=False).state == "caught_up", "the first catch-up")
    cut()
    for s in range(3):
        store.append(f"{category}-{s}", [NewEvent("Shipped", {"n": 9})])
    wait_until(lambda: _attempts(runner) >= 2, "the relay to retry")
    status = runner.status()
    assert status.lag is not None and status.lag.events == 3  # behind by what it could not publish
    restore()
    wait_until(lambda: runner.status(lag=False).state == "caught_up", "the relay to recover", 60)
    assert runner.status().lag.events == 0  # type: ignore[union-attr]
    runner.stop()
    assert runner.error is None
    return store


@pytest.mark.nats
@pytest.mark.slow
def test_jetstream_restart_is_ridden_out(nats_server: NatsServer, tmp_path: Path) -> None:
    category, stream = unique("ord"), unique("RELAY")
    publisher = JetStreamPublisher(
        nats_server.url, subject=f"{stream}.{{category}}", stream=stream, timeout=1
    )

    def restart() -> None:
        nats_server.start()

    with BlockingPublisher(publisher) as broker:
        store = _ride_out(tmp_path, category, broker, nats_server.kill, restart)
    messages = run(jetstream_messages(nats_server.url, stream))
    _all_in_stream_order([m.headers["Nats-Msg-Id"] for m in messages], store, category, once=True)
    store.close()


@pytest.mark.rabbitmq
@pytest.mark.slow
def test_rabbitmq_outage_is_ridden_out(
    rabbitmq_url: str, proxy: Callable[[str, int], Proxy], tmp_path: Path
) -> None:
    category, queue = unique("ord"), unique("q")
    run(rabbitmq_queue(rabbitmq_url, category, queue))
    gate = proxy("127.0.0.1", 5672)
    try:
        url = rabbitmq_url.replace("127.0.0.1:5672", f"127.0.0.1:{gate.port}")
        with BlockingPublisher(RabbitMQPublisher(url, timeout=2)) as broker:
            store = _ride_out(tmp_path, category, broker, gate.cut, gate.restore)
        messages = run(rabbitmq_drain(rabbitmq_url, queue))
        # Nothing lost; a batch cut part-way may come twice.
        _all_in_stream_order([str(m.message_id) for m in messages], store, category, once=False)
        store.close()
    finally:
        run(rabbitmq_delete(rabbitmq_url, [category], [queue]))


@pytest.mark.kafka
@pytest.mark.slow
def test_kafka_outage_is_ridden_out(
    kafka: Callable[..., Kafka], proxy: Callable[[str, int], Proxy], tmp_path: Path
) -> None:
    port = free_port()
    gate = proxy("127.0.0.1", port)
    broker = kafka(advertise=gate.port, port=port)  # clients always go through the proxy
    category = unique("ord")
    with BlockingPublisher(KafkaPublisher(broker.servers, timeout=2)) as publisher:
        store = _ride_out(tmp_path, category, publisher, gate.cut, gate.restore)
    records = run(kafka_messages(broker.servers, category))
    headers = [{k: v.decode() for k, v in r.headers} for r in records]
    first = {
        h["chronik-event-id"]: (h["chronik-stream"], int(h["chronik-version"])) for h in reversed(headers)
    }
    assert set(first) == {str(e.event_id) for e in _expected(store, category)}  # nothing lost
    # Each stream's events in order (a batch cut part-way may come twice, in its partition).
    seen = list(dict.fromkeys((h["chronik-stream"], int(h["chronik-version"])) for h in headers))
    _in_order_per_stream(seen)
    store.close()


@pytest.mark.redis
@pytest.mark.slow
def test_redis_outage_is_ridden_out(
    redis_url: str, proxy: Callable[[str, int], Proxy], tmp_path: Path
) -> None:
    category, prefix = unique("ord"), unique("relay")
    gate = proxy("127.0.0.1", 6379)
    try:
        url = redis_url.replace("127.0.0.1:6379", f"127.0.0.1:{gate.port}")
        publisher = RedisStreamsPublisher(url, key=f"{prefix}:{{category}}", timeout=1)
        with BlockingPublisher(publisher) as broker:
            store = _ride_out(tmp_path, category, broker, gate.cut, gate.restore)
        ids = [fields["id"].decode() for fields in redis_entries(redis_url, f"{prefix}:{category}")]
        assert ids == [str(e.event_id) for e in _expected(store, category)]  # each once, in order
        store.close()
    finally:
        redis_delete(redis_url, f"*{prefix}*")
