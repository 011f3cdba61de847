"""What the brokers share, without a broker: the message an event becomes, where it goes,
broker URLs, passwords kept out of messages, inbound messages and the inbound policy."""

from __future__ import annotations

import asyncio

import msgspec
import pytest

import chronik
from chronik import NewEvent
from chronik.brokers import InboundMessage, message_of, publisher_for
from chronik.brokers._base import Message, Template, in_stream_order, nats_token, redacted
from chronik.brokers.kafka import KafkaPublisher
from chronik.brokers.nats import JetStreamPublisher, NatsPublisher
from chronik.brokers.rabbitmq import RabbitMQPublisher
from chronik.brokers.redis import RedisStreamsPublisher, marker_key
from chronik.errors import ConfigurationError, InvalidInputError, UndecodableMessageError
from chronik.inbound import InboundPolicy, event_id


def test_an_event_becomes_a_message_with_its_id_and_headers() -> None:
    store = chronik.connect("memory://")
    store.append(
        "order-7", [NewEvent("Placed", {"total": 3}, metadata={"causation_id": "c", "tracestate": "k=v"})]
    )
    event = next(store.read_all())
    message = message_of(event)
    assert (message.id, message.stream_id, message.category, message.type) == (
        str(event.event_id),
        "order-7",
        "order",
        "Placed",
    )
    assert message.body == b'{"total":3}'
    assert message.headers == {
        "chronik-event-id": str(event.event_id),
        "chronik-type": "Placed",
        "chronik-stream": "order-7",
        "chronik-version": "1",
        "chronik-position": str(event.position),
        "chronik-recorded-at": event.recorded_at.isoformat(),
        "chronik-causation-id": "c",
        "tracestate": "k=v",
    }


def test_templates_and_tokens() -> None:
    store = chronik.connect("memory://")
    store.append("order-a b.c", [NewEvent("line.added*", {})])
    message = message_of(next(store.read_all()))
    assert Template("x.{category}.{type}", "subject").render(message, nats_token) == "x.order.line%2Eadded%2A"
    assert Template("{stream}", "key").render(message) == "order-a b.c"
    assert Template("chronik.{category}.{type}", "subject").pattern("*") == "chronik.*.*"
    assert nats_token("ü>") == "%C3%BC%3E" and nats_token("") == "%00"
    with pytest.raises(InvalidInputError, match=r"names \['tenant'\]"):
        Template("{tenant}", "subject")
    with pytest.raises(InvalidInputError, match="not a template"):
        Template("{category", "subject")
    assert marker_key("chronik:order", "e1") == "{chronik:order}:seen:e1"


def test_broker_urls() -> None:
    assert isinstance(publisher_for("nats://127.0.0.1:4222?subject=a.{category}"), NatsPublisher)
    jetstream = publisher_for("nats://127.0.0.1:4222?jetstream=true&stream=S")
    assert isinstance(jetstream, JetStreamPublisher) and jetstream.stream == "S"
    assert isinstance(publisher_for("nats+jetstream://127.0.0.1:4222"), JetStreamPublisher)
    rabbit = publisher_for("rabbitmq://u:secret@127.0.0.1:5672/?exchange=shop.{category}&declare=false")
    assert isinstance(rabbit, RabbitMQPublisher) and rabbit.declare is False
    assert "secret" not in repr(rabbit) and "u:***@127.0.0.1:5672" in repr(rabbit)
    redis = publisher_for("redis://:pw@127.0.0.1:6379/2?key=k:{category}&maxlen=10&health_check_interval=5")
    assert isinstance(redis, RedisStreamsPublisher) and redis.maxlen == 10 and "pw" not in repr(redis)
    kafka = publisher_for("kafka://h1:9092,h2:9092?topic=t.{category}")
    assert isinstance(kafka, KafkaPublisher) and kafka.bootstrap_servers == "h1:9092,h2:9092"
    with pytest.raises(ConfigurationError, match="maxlen=.x. is not a int"):
        publisher_for("redis://127.0.0.1:6379/0?maxlen=x")
    with pytest.raises(ConfigurationError, match="exchange_type must be one of"):
        RabbitMQPublisher(exchange_type="fanout-ish")
    with pytest.raises(ConfigurationError, match="a NATS URL starts with nats://"):
        NatsPublisher("http://127.0.0.1:4222")
    assert redacted("amqp://guest:guest@h:5672/v") == "amqp://guest:***@h:5672/v"
    assert redacted("redis://127.0.0.1:6379/0") == "redis://127.0.0.1:6379/0"


def test_every_url_is_shown_without_its_password_by_the_one_redaction() -> None:
    from chronik import _options, backend

    assert backend.redacted is redacted is _options.redacted  # stores, brokers, web and CLI share it
    assert redacted("nats://ada:s3cret@a:4222,b:4222") == "nats://ada:***@a:4222,b:4222"  # several hosts
    assert (
        redacted("postgresql://ada:s3cret@127.0.0.1:notaport/db")
        == "postgresql://ada:***@127.0.0.1:notaport/db"
    )
    assert redacted("redis://:pw@127.0.0.1:6379/0") == "redis://:***@127.0.0.1:6379/0"
    assert redacted("amqp://a:p@ss@h/v?x=1") == "amqp://a:***@h/v?x=1"  # the last @ ends it, as urllib has it
    assert (
        redacted("postgresql://h/db?user=ada&password=s3cret&x=1")
        == "postgresql://h/db?user=ada&password=***&x=1"
    )
    assert redacted("nats://ada@h:4222/?x=a@b") == "nats://ada@h:4222/?x=a@b"  # a user and no password
    assert redacted("sqlite:///orders.db") == "sqlite:///orders.db"


def test_an_inbound_message_decodes_or_says_it_is_poison() -> None:
    class PlaceOrder(msgspec.Struct):
        order_id: str

    message = InboundMessage("m1", b'{"order_id": "9"}', {"traceparent": "00-a-b-01"}, "test")
    assert message.decode(PlaceOrder) == PlaceOrder("9")
    assert message.metadata == {"correlation_id": "m1", "traceparent": "00-a-b-01"}
    correlated = InboundMessage("m2", b"{}", {"chronik-correlation-id": "req-1"}, "test")
    assert correlated.metadata == {"correlation_id": "req-1"}
    with pytest.raises(UndecodableMessageError, match="message m1 from test"):
        message.decode(int)
    assert event_id(message) == event_id(message) != event_id(message, 1) != event_id(correlated)


def test_the_inbound_policy_is_validated() -> None:
    assert InboundPolicy().tries == 3
    with pytest.raises(InvalidInputError):
        InboundPolicy(tries=0)
    with pytest.raises(InvalidInputError):
        InboundPolicy(backoff=-1)


def test_a_stream_s_next_message_waits_for_the_one_before_it() -> None:
    messages = [
        Message(f"{stream}{n}", stream, "order", "T", {}, b"{}")
        for n in range(1, 4)
        for stream in ("a", "b", "c")
    ]
    sent: list[str] = []
    waiting: set[str] = set()

    async def send(message: Message) -> None:
        assert message.stream_id not in waiting  # the one before it is confirmed
        waiting.add(message.stream_id)
        await asyncio.sleep(0.001)
        waiting.discard(message.stream_id)
        if message.id == "b2":
            raise ConnectionError("lost")
        sent.append(message.id)

    with pytest.raises(ConnectionError):
        asyncio.run(in_stream_order(messages, send, in_flight=2))
    # Each stream has a prefix of its messages: b stopped at b2, the others went on.
    assert sorted(sent) == ["a1", "a2", "a3", "b1", "c1", "c2", "c3"]
    assert [m for m in sent if m[0] == "a"] == ["a1", "a2", "a3"]
