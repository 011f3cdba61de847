"""Traces across the real brokers: each message the relay publishes is a PRODUCER span in
the trace of its event, and the message carries that span's context; an inbound consumer
on the far side handles it in a CONSUMER span whose parent is that one, so the command it
runs and the events that command appends join the sender's trace. And the relay's lag in
the lag gauges. Recorded by the SDK's in-memory exporter and metric reader."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.trace import SpanKind, StatusCode

import chronik
import chronik.telemetry
from chronik import NewEvent
from chronik.brokers import AsyncPublisher, AsyncSource, BlockingPublisher, InboundMessage
from chronik.brokers.kafka import KafkaPublisher
from chronik.brokers.nats import JetStreamPublisher, JetStreamSource, NatsPublisher
from chronik.brokers.rabbitmq import RabbitMQPublisher, RabbitMQSource
from chronik.brokers.redis import RedisStreamsPublisher, RedisStreamsSource
from chronik.errors import OperationalError
from chronik.inbound import Inbound, InboundPolicy, command_handler
from chronik.relay import Relay, relay_runner
from tests._shipping import ShipOrder, shipping, shipping_registry
from tests.backends._brokers import (
    BOTH_WAYS,
    Kafka,
    broker_of,
    delete_jetstream,
    kafka_messages,
    kafka_topic,
    nats_received,
    rabbitmq_delete,
    rabbitmq_queue,
    redis_delete,
    redis_entries,
    run,
    unique,
)
from tests.conftest import Recorded

FAST = InboundPolicy(tries=2, backoff=0.01, max_backoff=0.05)


def ship(message: InboundMessage) -> tuple[str, ShipOrder]:
    """The far side's route (a warehouse, ``tests/_shipping.py``): a shipment for each message."""
    return f"shipment-{message.id}", ShipOrder(message.headers["chronik-stream"])


# -- each broker, both ways -----------------------------------------------------------------------


@dataclass
class Broker:
    """A broker as these tests use it: the relay's publisher to it, for a category; a
    source of what arrived; the send spans' destination and system."""

    publisher: Callable[[str], AsyncPublisher]
    source: Callable[[str], AsyncSource]
    destination: Callable[[str], str]
    system: str
    cleanup: list[Callable[[], None]] = field(default_factory=list)


def _jetstream(url: str) -> Broker:
    stream = unique("TRACES")
    made = Broker(
        lambda category: JetStreamPublisher(url, subject=f"{stream}.{{category}}.{{type}}", stream=stream),
        lambda category: JetStreamSource(url, stream=stream, durable="shipping", ack_wait=5.0),
        lambda category: f"{stream}.{category}.OrderPlaced",
        "nats",
    )
    made.cleanup.append(lambda: run(delete_jetstream(url, stream, f"{stream}-dead-letter")))
    return made


def _rabbitmq(url: str) -> Broker:
    queue = unique("shipping")
    exchanges: list[str] = []

    def publisher(category: str) -> AsyncPublisher:
        # The far side's queue, bound before anything is published (RabbitMQ drops
        # messages no queue is bound for).
        run(rabbitmq_queue(url, category, queue))
        exchanges.append(category)
        return RabbitMQPublisher(url)

    made = Broker(
        publisher, lambda category: RabbitMQSource(url, queue=queue), lambda category: category, "rabbitmq"
    )
    made.cleanup.append(lambda: run(rabbitmq_delete(url, exchanges, [queue, f"{queue}.dead-letter"])))
    return made


def _redis(url: str) -> Broker:
    prefix = unique("traces")
    made = Broker(
        lambda category: RedisStreamsPublisher(url, key=f"{prefix}:{{category}}"),
        lambda category: RedisStreamsSource(url, key=f"{prefix}:{category}", group="shipping"),
        lambda category: f"{prefix}:{category}",
        "redis",
    )
    made.cleanup.append(lambda: redis_delete(url, f"*{prefix}*"))
    return made


@pytest.fixture(params=BOTH_WAYS)
def broker(request: pytest.FixtureRequest) -> Iterator[Broker]:
    made = broker_of(request, _jetstream, _rabbitmq, _redis)
    yield made
    for clean in made.cleanup:
        clean()


def _ids(span: ReadableSpan) -> tuple[int, int]:
    assert span.context is not None
    return span.context.trace_id, span.context.span_id


def _parent(span: ReadableSpan) -> int | None:
    return None if span.parent is None else span.parent.span_id


def _relay(store: chronik.Store, category: str, publisher: AsyncPublisher) -> int:
    with BlockingPublisher(publisher) as blocking:
        relayed = relay_runner(store, Relay("traces", categories=[category]), blocking).run_until_caught_up()
    return relayed


def _orders(store: chronik.Store, category: str, telemetry: Recorded) -> int:
    """Two events appended in a request's trace, and one outside any trace: the request's trace id."""
    with telemetry.tracer.start_as_current_span("POST /orders/1") as request:
        store.append(f"{category}-1", [NewEvent("OrderPlaced", {"total": 30}), NewEvent("OrderPlaced", {})])
    chronik.telemetry.configure(enabled=False)
    store.append(f"{category}-2", [NewEvent("OrderPlaced", {"total": 5})])  # no trace context
    chronik.telemetry.configure(tracer_provider=telemetry.provider, meter_provider=None)
    return request.get_span_context().trace_id


def test_a_trace_goes_through_the_relay_and_the_broker_into_the_far_sides_command(
    broker: Broker, tmp_path: Path, telemetry: Recorded
) -> None:
    category = unique("ord")
    with chronik.connect(f"sqlite:///{tmp_path}/shop.db") as store:
        trace_id = _orders(store, category, telemetry)
        traced, untraced = store.read_stream(f"{category}-1"), store.read_stream(f"{category}-2")
        assert _relay(store, category, broker.publisher(category)) == 3

    # Each publish is a PRODUCER span whose parent is the span that appended the event.
    (append,) = telemetry.spans(f"append {category}")
    sends = {dict(s.attributes or {})["messaging.message.id"]: s for s in telemetry.spans("send ")}
    # An event appended outside any trace is published in the relay's batch span alone (as
    # a projection handles it): replaying old history makes no span per event.
    assert set(sends) == {str(e.event_id) for e in traced}
    (batch,) = telemetry.spans("relay batch relay.traces")
    for event in traced:
        send = sends[str(event.event_id)]
        assert send.kind is SpanKind.PRODUCER
        assert send.name == f"send {broker.destination(category)}"
        attributes = dict(send.attributes or {})
        assert attributes["messaging.system"] == broker.system
        assert attributes["messaging.destination.name"] == broker.destination(category)
        assert attributes["messaging.operation.type"] == "send"
        assert (attributes["chronik.stream"], attributes["chronik.version"]) == (
            event.stream_id,
            event.version,
        )
        assert (attributes["chronik.position"], attributes["chronik.event_type"]) == (
            event.position,
            event.type,
        )
    for event in traced:
        send = sends[str(event.event_id)]
        assert _ids(send)[0] == trace_id and _parent(send) == _ids(append)[1]
        assert [link.context.span_id for link in send.links] == [_ids(batch)[1]]  # the relay's batch

    # The far side: each message handled in a CONSUMER span whose parent is its publish span.
    with chronik.connect(f"sqlite:///{tmp_path}/shipping.db", registry=shipping_registry) as far:
        source = broker.source(category)
        handler = command_handler(chronik.CommandHandler(far, shipping), ship)
        assert Inbound(source, handler, policy=FAST, idle_timeout=0.5).run_until_idle() == 3
        shipments = {e.stream_id.removeprefix("shipment-"): e for e in far.read_all()}
    assert set(shipments) == {str(e.event_id) for e in traced + untraced}
    processes = {dict(s.attributes or {})["messaging.message.id"]: s for s in telemetry.spans("process ")}
    assert set(processes) == set(shipments)
    # The untraced event's message came without a trace context: its handling is a trace of its own.
    alone = processes.pop(str(untraced[0].event_id))
    assert alone.parent is None and _ids(alone)[0] != trace_id
    handles = {_parent(s): s for s in telemetry.spans("handle shipment")}
    for message_id, process in processes.items():
        send = sends[message_id]
        assert process.kind is SpanKind.CONSUMER
        attributes = dict(process.attributes or {})
        assert attributes["messaging.system"] == broker.system
        assert attributes["messaging.operation.type"] == "process"
        assert _parent(process) == _ids(send)[1] and _ids(process)[0] == _ids(send)[0]
        # The command it ran, and the event that command appended, are in the same trace.
        handle = handles[_ids(process)[1]]
        assert _ids(handle)[0] == _ids(send)[0]
        scheduled = shipments[message_id]
        assert scheduled.metadata["traceparent"].startswith(f"00-{_ids(send)[0]:032x}-")
        assert scheduled.metadata["causation_id"] == message_id
    # So the request's trace holds the order's append, the publishes and the shipments.
    in_trace = {s.name.split(" ")[0] for s in telemetry.spans() if _ids(s)[0] == trace_id}
    assert {"POST", "append", "send", "process", "handle"} <= in_trace
    assert all(_ids(s)[0] == trace_id for s in processes.values())


@pytest.mark.nats
def test_core_nats_publishes_are_spans_and_subscribers_get_their_context(
    nats_broker: str, tmp_path: Path, telemetry: Recorded
) -> None:
    category, prefix = unique("ord"), unique("core")
    with chronik.connect(f"sqlite:///{tmp_path}/shop.db") as store:
        trace_id = _orders(store, category, telemetry)
        publisher = NatsPublisher(nats_broker, subject=f"{prefix}.{{category}}.{{stream}}")

        async def relay() -> None:
            assert await asyncio.to_thread(_relay, store, category, publisher) == 3

        got = run(nats_received(nats_broker, f"{prefix}.>", 3, relay))
    sends = {dict(s.attributes or {})["messaging.message.id"]: s for s in telemetry.spans("send ")}
    traced = [m for m in got if m.headers["chronik-stream"] == f"{category}-1"]
    assert len(got) == 3 and {m.headers["Nats-Msg-Id"] for m in traced} == set(sends)
    (untraced,) = [m for m in got if m not in traced]
    assert "traceparent" not in untraced.headers  # appended outside any trace: none to carry on
    for msg in traced:
        send = sends[msg.headers["Nats-Msg-Id"]]
        trace, span = _ids(send)
        assert msg.headers["traceparent"].startswith(f"00-{trace:032x}-{span:016x}-")
        # The subject names the stream: the span is named by the template, kept in an attribute.
        assert send.name == f"send {prefix}.{{category}}.{{stream}}"
        attributes = dict(send.attributes or {})
        assert attributes["messaging.destination.name"] == msg.subject
        assert attributes["messaging.destination.template"] == f"{prefix}.{{category}}.{{stream}}"
    assert len(sends) == 2 and all(_ids(s)[0] == trace_id for s in sends.values())


@pytest.mark.kafka
def test_kafka_publishes_are_spans_whose_context_the_records_carry(
    kafka: Callable[..., Kafka], tmp_path: Path, telemetry: Recorded
) -> None:
    broker = kafka()
    category = unique("ord")
    run(kafka_topic(broker.servers, category, partitions=2))
    with chronik.connect(f"sqlite:///{tmp_path}/shop.db") as store:
        trace_id = _orders(store, category, telemetry)
        assert _relay(store, category, KafkaPublisher(broker.servers)) == 3
    sends = {dict(s.attributes or {})["messaging.message.id"]: s for s in telemetry.spans("send ")}
    records = run(kafka_messages(broker.servers, category))
    assert len(records) == 3
    for record in records:
        headers = {k: v.decode() for k, v in record.headers}
        if headers["chronik-stream"] == f"{category}-2":  # appended outside any trace
            assert "traceparent" not in headers and headers["chronik-event-id"] not in sends
            continue
        send = sends[headers["chronik-event-id"]]
        trace, span = _ids(send)
        assert headers["traceparent"].startswith(f"00-{trace:032x}-{span:016x}-")
        attributes = dict(send.attributes or {})
        assert (attributes["messaging.system"], attributes["messaging.destination.name"]) == (
            "kafka",
            category,
        )
        assert attributes["messaging.kafka.message.key"] == headers["chronik-stream"]
    assert len(sends) == 2 and all(_ids(s)[0] == trace_id for s in sends.values())


# -- inbound: tries and dead letters in the message's span -----------------------------------------


@pytest.mark.redis
def test_a_messages_span_holds_its_tries_and_says_when_it_was_dead_lettered(
    redis_url: str, telemetry: Recorded, caplog: pytest.LogCaptureFixture
) -> None:
    import redis

    caplog.set_level(logging.DEBUG, logger="chronik.inbound")

    key = unique("traces")
    client = redis.Redis.from_url(redis_url)
    sender = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"
    client.xadd(key, {"id": "flaky", "data": b"{}", "traceparent": sender})
    client.xadd(key, {"id": "poison", "data": b"{}"})
    failures = {"flaky": 1}

    def handle(message: InboundMessage) -> None:
        if message.id == "poison":
            raise ValueError("never handled")
        if failures[message.id]:
            failures[message.id] -= 1
            raise OperationalError("the store is restarting", transient=True)

    try:
        source = RedisStreamsSource(redis_url, key=key, group="g")
        assert Inbound(source, handle, policy=FAST, idle_timeout=0.3).run_until_idle() == 2
        spans = {
            dict(s.attributes or {})["messaging.message.id"]: s for s in telemetry.spans(f"process {key}")
        }
        flaky, poison = spans["flaky"], spans["poison"]
        assert flaky.status.status_code is StatusCode.UNSET
        assert _ids(flaky)[0] == 0x0AF7651916CD43DD8448EB211C80319C and _parent(flaky) == 0xB7AD6B7169203331
        assert [(e.name, dict(e.attributes or {})) for e in flaky.events] == [
            ("chronik.retry", {"error.type": "OperationalError", "chronik.attempt": 1})
        ]
        assert poison.status.status_code is StatusCode.ERROR
        attributes = dict(poison.attributes or {})
        assert attributes["error.type"] == "ValueError"
        assert attributes["chronik.dead_letter_reason"] == "ValueError: never handled (after 2 tries)"
        assert [e.name for e in poison.events] == ["chronik.retry", "exception"]
        assert poison.parent is None  # it came without a trace context: a trace of its own
        assert [f["id"] for f in redis_entries(redis_url, f"{key}:dead-letter")] == [b"poison"]
        # And its log lines name the consumer, the message and the try, as fields.
        logged = [
            (r.levelname, r.__dict__.get("message_id"), r.__dict__.get("attempt"))
            for r in caplog.records
            if r.name == "chronik.inbound"
        ]
        assert logged == [
            ("WARNING", "flaky", 1),  # the transient fault, ridden out
            ("DEBUG", "flaky", 2),  # handled at the second try
            ("WARNING", "poison", 1),
            ("ERROR", "poison", None),  # dead-lettered
            ("WARNING", None, None),  # the consumer recovered from the transient fault
        ]
        assert {r.__dict__["inbound"] for r in caplog.records if r.name == "chronik.inbound"} == {source.name}
    finally:
        client.close()
        redis_delete(redis_url, f"{key}*")


# -- the relay's lag -------------------------------------------------------------------------------


@pytest.mark.redis
def test_the_relays_lag_is_in_the_lag_gauges(redis_url: str, tmp_path: Path, telemetry: Recorded) -> None:
    prefix = unique("traces")
    try:
        with (
            chronik.connect(f"sqlite:///{tmp_path}/shop.db") as store,
            BlockingPublisher(RedisStreamsPublisher(redis_url, key=f"{prefix}:{{category}}")) as publisher,
        ):
            store.append("order-1", [NewEvent("OrderPlaced", {})])
            runner = relay_runner(store, Relay("orders", categories=["order"]), publisher)
            assert runner.run_until_caught_up() == 1
            labels = {"chronik.kind": "relay", "chronik.name": "relay.orders", "chronik.version": 1}
            assert telemetry.points("chronik.lag.events") == [(labels, 0)]
            store.append("order-1", [NewEvent("OrderPaid", {}), NewEvent("OrderShipped", {})])
            store.append("customer-1", [NewEvent("CustomerRegistered", {})])  # not relayed
            assert telemetry.points("chronik.lag.events") == [(labels, 2)]
            ((attributes, seconds),) = telemetry.points("chronik.lag.seconds")
            assert attributes == labels and seconds >= 0
            assert runner.run_until_caught_up() == 2
            assert telemetry.points("chronik.lag.events") == [(labels, 0)]
    finally:
        redis_delete(redis_url, f"*{prefix}*")
