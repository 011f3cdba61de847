"""Inbound messages from the real brokers into a command handler: each command applied once
however often it is delivered, acknowledged only after its events committed, poison
messages dead-lettered without blocking the queue, and a message whose handling keeps
failing transiently left for the broker to deliver again."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import msgspec
import pytest

import chronik
from chronik.brokers import InboundMessage
from chronik.brokers.nats import JetStreamSource
from chronik.brokers.rabbitmq import RabbitMQSource
from chronik.brokers.redis import RedisStreamsSource
from chronik.errors import OperationalError
from chronik.inbound import AsyncInbound, Inbound, InboundPolicy, command_handler, event_id
from tests.backends._brokers import (
    BOTH_WAYS,
    broker_of,
    delete_jetstream,
    jetstream_messages,
    rabbitmq_delete,
    rabbitmq_drain,
    redis_delete,
    redis_entries,
    run,
    unique,
    wait_until,
)

FAST = InboundPolicy(tries=3, backoff=0.01, max_backoff=0.05)


class PlaceOrder(msgspec.Struct, frozen=True):
    order_id: str
    quantity: int


registry = chronik.EventRegistry()


@registry.event("OrderPlaced")
class OrderPlaced(msgspec.Struct, frozen=True):
    quantity: int


def decide(command: PlaceOrder, placed: bool) -> list[OrderPlaced]:
    if command.quantity <= 0:
        raise ValueError(f"quantity must be positive, got {command.quantity}")
    return [] if placed else [OrderPlaced(command.quantity)]


orders = chronik.Decider(decide, lambda state, event: True, False, category="order")


def route(message: InboundMessage) -> tuple[str, PlaceOrder]:
    command = message.decode(PlaceOrder)
    return f"order-{command.order_id}", command


@dataclass
class Broker:
    """One broker as the tests see it: a source, how to send it a message (body, id), and
    what reached its dead-letter place as (id, body, error)."""

    source: Callable[[], Any]
    send: Callable[[bytes, str], None]
    dead_letters: Callable[[], list[tuple[str, bytes, str]]]
    redelivers_duplicates: bool  # the broker keeps a second copy sent with the same id
    cleanup: list[Callable[[], None]] = field(default_factory=list)


def _jetstream(url: str) -> Broker:
    import nats

    stream, subject = unique("IN"), unique("in")

    def send(body: bytes, message_id: str) -> None:
        async def go() -> None:
            nc = await nats.connect(url)
            await nc.jetstream().publish(f"{subject}.commands", body, headers={"Nats-Msg-Id": message_id})
            await nc.close()

        run(go())

    def dead() -> list[tuple[str, bytes, str]]:
        return [
            (m.headers["Nats-Msg-Id"], m.data, m.headers["chronik-error"])
            for m in run(jetstream_messages(url, f"{stream}-dead-letter"))
        ]

    def source() -> JetStreamSource:
        return JetStreamSource(url, stream=stream, durable="orders", subject=f"{subject}.>", ack_wait=1.0)

    async def prepare() -> None:  # the stream exists before anything is sent to it
        first = source()
        assert await first.receive(1, 0.01) == []
        await first.close()

    run(prepare())
    broker = Broker(source, send, dead, redelivers_duplicates=False)
    broker.cleanup.append(lambda: run(delete_jetstream(url, stream, f"{stream}-dead-letter")))
    return broker


def _rabbitmq(url: str) -> Broker:
    import aio_pika

    queue = unique("in")

    def send(body: bytes, message_id: str) -> None:
        async def go() -> None:
            conn = await aio_pika.connect(url)
            channel = await conn.channel()
            await channel.declare_queue(queue, durable=True)
            await channel.default_exchange.publish(aio_pika.Message(body, message_id=message_id), queue)
            await conn.close()

        run(go())

    def dead() -> list[tuple[str, bytes, str]]:
        return [
            (str(m.message_id), m.body, str(m.headers["chronik-error"]))
            for m in run(rabbitmq_drain(url, f"{queue}.dead-letter"))
        ]

    broker = Broker(lambda: RabbitMQSource(url, queue=queue), send, dead, redelivers_duplicates=True)
    broker.cleanup.append(lambda: run(rabbitmq_delete(url, [], [queue, f"{queue}.dead-letter"])))
    return broker


def _redis(url: str) -> Broker:
    import redis

    key = unique("in")

    def send(body: bytes, message_id: str) -> None:
        client = redis.Redis.from_url(url)
        client.xadd(key, {"id": message_id, "data": body})
        client.close()

    def dead() -> list[tuple[str, bytes, str]]:
        return [
            (f["id"].decode(), f["data"], f["chronik-error"].decode())
            for f in redis_entries(url, f"{key}:dead-letter")
        ]

    def source() -> RedisStreamsSource:
        return RedisStreamsSource(url, key=key, group="orders", claim_idle=1.0)

    broker = Broker(source, send, dead, redelivers_duplicates=True)
    broker.cleanup.append(lambda: redis_delete(url, f"{key}*"))
    return broker


@pytest.fixture(params=BOTH_WAYS)
def broker(request: pytest.FixtureRequest) -> Iterator[Broker]:
    made = broker_of(request, _jetstream, _rabbitmq, _redis)
    yield made
    for clean in made.cleanup:
        clean()


def _attempts(inbound: Inbound) -> int:
    retrying = inbound.status().retrying
    return 0 if retrying is None else retrying.attempts


def _command(order_id: str, quantity: int = 1) -> bytes:
    return msgspec.json.encode(PlaceOrder(order_id, quantity))


def test_commands_are_applied_once_and_poison_goes_to_the_dead_letter_place(
    broker: Broker, tmp_path: Path
) -> None:
    store = chronik.connect(f"sqlite:///{tmp_path / 'in.db'}", registry=registry)
    handler = chronik.CommandHandler(store, orders)
    handle = command_handler(handler, route)
    crashed: list[str] = []

    def crash_after_commit_once(message: InboundMessage) -> Any:
        result = handle(message)
        if message.id == "m1" and not crashed:
            crashed.append(message.id)  # committed, then "the process died" before the ack
            raise OperationalError("connection lost after commit", transient=True)
        return result

    broker.send(_command("1"), "m1")
    broker.send(b"{not json", "m2")  # undecodable: dead-lettered at once
    broker.send(_command("3", quantity=0), "m3")  # the decider refuses it, every time
    broker.send(_command("1"), "m1")  # the same command again, with the same id
    broker.send(_command("4"), "m4")  # after the poison: the queue was not blocked
    inbound = Inbound(broker.source(), crash_after_commit_once, policy=FAST, idle_timeout=0.5)
    assert inbound.run_until_idle() == (5 if broker.redelivers_duplicates else 4)
    status = inbound.status()
    assert (status.handled, status.dead_lettered) == ((3 if broker.redelivers_duplicates else 2), 2)
    assert crashed == ["m1"]
    assert [e.data for e in store.read_stream("order-1")] == [OrderPlaced(1)]  # once, not three times
    assert [e.data for e in store.read_stream("order-4")] == [OrderPlaced(1)]
    assert store.stream_info("order-3").version == 0
    event = store.read_stream("order-1")[0]
    assert event.metadata["causation_id"] == "m1" and event.metadata["correlation_id"] == "m1"
    dead = {message_id: (body, error) for message_id, body, error in broker.dead_letters()}
    assert set(dead) == {"m2", "m3"}
    assert dead["m2"][0] == b"{not json" and "UndecodableMessageError" in dead["m2"][1]
    assert "quantity must be positive" in dead["m3"][1] and "after 3 tries" in dead["m3"][1]
    # Nothing is left unacknowledged: a new consumer finds nothing to do.
    again = Inbound(broker.source(), handle, policy=FAST, idle_timeout=0.3)
    assert again.run_until_idle() == 0
    store.close()


def test_a_message_whose_handling_keeps_failing_transiently_is_delivered_again(
    broker: Broker, tmp_path: Path
) -> None:
    store = chronik.connect(f"sqlite:///{tmp_path / 'in.db'}", registry=registry)
    handle = command_handler(chronik.CommandHandler(store, orders), route)

    def store_is_away(message: InboundMessage) -> None:
        raise OperationalError("the server is restarting", transient=True)

    broker.send(_command("5"), "m5")
    stuck = Inbound(broker.source(), store_is_away, policy=FAST, idle_timeout=0.2)
    stuck.run_in_background()
    wait_until(lambda: _attempts(stuck) >= 3, "retries")
    status = stuck.status()
    assert status.state == "retrying" and status.retrying is not None
    assert "the server is restarting" in status.retrying.error and status.dead_lettered == 0
    stuck.stop(timeout=30)
    assert stuck.status().state == "stopped" and stuck.error is None
    # Not acknowledged, so delivered again (JetStream after ack_wait, Redis from the
    # pending list, RabbitMQ as soon as the channel closed): applied this time.
    fresh = Inbound(broker.source(), handle, policy=FAST, idle_timeout=2.0)
    assert fresh.run_until_idle() == 1
    assert [e.data for e in store.read_stream("order-5")] == [OrderPlaced(1)]
    store.close()


def test_the_asyncio_face_with_an_async_command_handler(broker: Broker, tmp_path: Path) -> None:
    broker.send(_command("6", 2), "m6")
    broker.send(_command("7", 3), "m7")

    async def go() -> None:
        store = chronik.connect_async(f"sqlite:///{tmp_path / 'in.db'}", registry=registry)
        handle = command_handler(chronik.AsyncCommandHandler(store, orders), route)
        source = broker.source()
        inbound = AsyncInbound(source, handle, policy=FAST, idle_timeout=0.5)
        assert await inbound.run_until_idle() == 2
        await source.close()
        assert [e.data for e in await store.read_stream("order-7")] == [OrderPlaced(3)]
        await store.close()

    run(go())


def test_events_appended_by_a_plain_function_get_ids_from_the_message(broker: Broker, tmp_path: Path) -> None:
    store = chronik.connect(f"sqlite:///{tmp_path / 'in.db'}", registry=registry)

    def record(message: InboundMessage) -> None:
        payload = message.decode(dict[str, Any])
        event = registry.new_event(OrderPlaced(payload["quantity"]), event_id=event_id(message))
        store.append(f"order-{payload['order_id']}", [event])

    body = _command("8", 4)
    broker.send(body, "m8")
    broker.send(body, "m8")
    Inbound(broker.source(), record, policy=FAST, idle_timeout=0.5).run_until_idle()
    assert [e.data for e in store.read_stream("order-8")] == [
        OrderPlaced(4)
    ]  # the second append wrote nothing
    store.close()
