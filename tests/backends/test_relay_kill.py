"""``chronik relay`` SIGKILLed mid-run and started again, for each broker: nothing is lost,
an event comes twice only if it was after the stored checkpoint when the process died
(and then with the same message id), and each stream's events arrive in order (one
rewind at most, to the checkpoint)."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

import chronik
from chronik import NewEvent, StreamWrite
from tests.backends._brokers import (
    Kafka,
    delete_jetstream,
    jetstream_messages,
    kafka_count,
    kafka_messages,
    rabbitmq_count,
    rabbitmq_delete,
    rabbitmq_drain,
    rabbitmq_queue,
    redis_delete,
    redis_entries,
    run,
    unique,
    wait_until,
)

pytestmark = pytest.mark.slow

STREAMS = 20
EVENTS = 3000  # before the kill; 100 more are appended while the relay is down
KILL_AT = 300  # messages the broker has when the relay is killed
CHECKPOINT = "projection:relay.kill:v1"


@dataclass
class Target:
    """A broker as the test sees it: the URL to relay to, how many messages it holds, and
    every message as (message id, stream id, version), in the order it holds them."""

    url: str
    count: Callable[[], int]
    collect: Callable[[], list[tuple[str, str, int]]]
    deduplicates: bool  # the broker itself drops a message sent again
    cleanup: list[Callable[[], None]] = field(default_factory=list)


def _write(store: chronik.Store, category: str, rounds: int, base: int) -> None:
    for r in range(rounds):  # one event of each stream a round: the streams interleave in the log
        store.append_many(
            [StreamWrite(f"{category}-{s}", [NewEvent("Happened", {"n": base + r})]) for s in range(STREAMS)]
        )


def _relay(db: Path, to: str, category: str, *extra: str) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [
            *(sys.executable, "-m", "chronik", "relay", "--to", to, "--category", category),
            *("--name", "kill", "--batch-size", "25", "--url", f"sqlite:///{db}", *extra),
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )


def _kill_and_restart(tmp_path: Path, category: str, target: Target) -> None:
    db = tmp_path / "kill.db"
    store = chronik.connect(f"sqlite:///{db}")
    _write(store, category, EVENTS // STREAMS, 0)
    first = _relay(db, target.url, category)
    try:
        wait_until(lambda: target.count() >= KILL_AT or first.poll() is not None, "the relay to start")
        first.send_signal(signal.SIGKILL)
        first.wait()
    finally:
        if first.poll() is None:
            first.kill()
    output, _ = first.communicate()
    assert first.returncode == -signal.SIGKILL, output.decode()
    stored = store.load_checkpoint(CHECKPOINT)
    head = store.head()
    assert head is not None and (stored is None or stored < head), "the relay finished before the kill"
    _write(store, category, 5, 10_000)  # more events while it is down
    second = _relay(db, target.url, category, "--until-caught-up")
    out, _ = second.communicate(timeout=120)
    assert second.returncode == 0, out.decode()
    assert "relay kill: caught up;" in out.decode()
    events = list(store.read_all(categories=[category]))
    assert store.load_checkpoint(CHECKPOINT) == store.head()
    try:
        wait_until(lambda: target.count() >= len(events), "every message to arrive")
    except AssertionError as err:
        first_line = str(err).splitlines()[0]  # pytest adds the rewritten assertion after it
        raise AssertionError(f"{first_line}: {_shortfall(target, events, stored)}") from None
    got = target.collect()
    store.close()

    by_id = {str(e.event_id): e for e in events}
    assert {m for m, _, _ in got} == set(by_id), "an event was lost (or one that is not the store's came)"
    for message_id, stream_id, version in got:  # a copy is the same message: same id, same event
        assert (by_id[message_id].stream_id, by_id[message_id].version) == (stream_id, version)
    seen: dict[str, int] = {}
    for message_id, _, _ in got:
        seen[message_id] = seen.get(message_id, 0) + 1
    twice = {m for m, n in seen.items() if n > 1}
    if target.deduplicates:
        assert twice == set()
    assert max(seen.values()) <= 2
    for message_id in twice:  # only what the checkpoint had not passed when it died
        assert stored is None or by_id[message_id].checkpoint > stored
    rewinds: dict[str, int] = {}
    last: dict[str, int] = {}
    for _, stream_id, version in got:
        if version <= last.get(stream_id, 0):
            rewinds[stream_id] = rewinds.get(stream_id, 0) + 1
        else:
            assert version == last.get(stream_id, 0) + 1, (
                f"{stream_id}: v{version} after v{last.get(stream_id)}"
            )
        last[stream_id] = version
    assert all(n <= 1 for n in rewinds.values()), rewinds


def _shortfall(target: Target, events: list[chronik.RecordedEvent], stored: chronik.Checkpoint | None) -> str:
    """What the broker holds when it counts fewer messages than there are events: the
    events missing from it, each said to be before the checkpoint the first relay stored
    (so the first relay had it acknowledged) or after it (published by the second, or by
    the first after its last checkpoint); or, when none is missing, that the broker's
    count is short of what it gives to a reader."""
    got = target.collect()
    held = {m for m, _, _ in got}
    missing = [e for e in events if str(e.event_id) not in held]
    if not missing:
        count = target.count()
        return f"the broker counts {count} messages, yet gives a reader every one of the {len(events)} events"
    listed = ", ".join(
        f"{e.event_id} ({e.stream_id} v{e.version}, {e.checkpoint}, "
        f"{'before' if stored is not None and e.checkpoint <= stored else 'after'} the first's checkpoint)"
        for e in missing[:10]
    )
    return (
        f"{len(missing)} of {len(events)} events missing ({len(got)} messages held; "
        f"the first relay had stored {stored}): {listed}"
    )


@pytest.fixture
def cleanups() -> Iterator[list[Callable[[], None]]]:
    done: list[Callable[[], None]] = []
    yield done
    for clean in done:
        clean()


@pytest.mark.nats
def test_jetstream(nats_broker: str, tmp_path: Path, cleanups: list[Callable[[], None]]) -> None:
    category, stream = unique("kill"), unique("KILL")
    cleanups.append(lambda: run(delete_jetstream(nats_broker, stream)))
    url = (
        f"nats+jetstream://{nats_broker.removeprefix('nats://')}?stream={stream}&subject={stream}.{{stream}}"
    )

    def count() -> int:
        async def messages() -> int:
            import nats
            import nats.js.errors

            nc = await nats.connect(nats_broker)
            try:
                return int((await nc.jetstream().stream_info(stream)).state.messages)
            except nats.js.errors.NotFoundError:
                return 0
            finally:
                await nc.close()

        return run(messages())

    def collect() -> list[tuple[str, str, int]]:
        return [
            (m.headers["Nats-Msg-Id"], m.headers["chronik-stream"], int(m.headers["chronik-version"]))
            for m in run(jetstream_messages(nats_broker, stream))
        ]

    _kill_and_restart(tmp_path, category, Target(url, count, collect, deduplicates=True))


class _Subscriber:
    """A core NATS subscriber on a thread of its own, connected for the whole test."""

    def __init__(self, url: str, subject: str) -> None:
        self.got: list[tuple[str, str, int]] = []
        self._loop = asyncio.new_event_loop()
        self._ready = threading.Event()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)
        self._thread.start()
        self._nc: Any = asyncio.run_coroutine_threadsafe(self._subscribe(url, subject), self._loop).result(10)

    async def _subscribe(self, url: str, subject: str) -> Any:
        import nats

        nc = await nats.connect(url)

        async def take(msg: Any) -> None:
            headers = msg.headers
            self.got.append(
                (headers["Nats-Msg-Id"], headers["chronik-stream"], int(headers["chronik-version"]))
            )

        await nc.subscribe(subject, cb=take, pending_msgs_limit=1_000_000)
        await nc.flush()
        return nc

    def close(self) -> None:
        asyncio.run_coroutine_threadsafe(self._nc.close(), self._loop).result(10)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join()
        self._loop.close()


@pytest.mark.nats
def test_core_nats(nats_broker: str, tmp_path: Path, cleanups: list[Callable[[], None]]) -> None:
    category, prefix = unique("kill"), unique("kill")
    subscriber = _Subscriber(nats_broker, f"{prefix}.>")
    cleanups.append(subscriber.close)
    url = f"{nats_broker}?subject={prefix}.{{category}}.{{stream}}"
    _kill_and_restart(
        tmp_path, category, Target(url, lambda: len(subscriber.got), lambda: list(subscriber.got), False)
    )


@pytest.mark.rabbitmq
def test_rabbitmq(rabbitmq_url: str, tmp_path: Path, cleanups: list[Callable[[], None]]) -> None:
    category, queue = unique("kill"), unique("q")
    run(rabbitmq_queue(rabbitmq_url, category, queue))
    cleanups.append(lambda: run(rabbitmq_delete(rabbitmq_url, [category], [queue])))

    def collect() -> list[tuple[str, str, int]]:
        return [
            (str(m.message_id), str(m.headers["chronik-stream"]), int(str(m.headers["chronik-version"])))
            for m in run(rabbitmq_drain(rabbitmq_url, queue))
        ]

    to = rabbitmq_url.replace("amqp://", "rabbitmq://")
    _kill_and_restart(
        tmp_path, category, Target(to, lambda: run(rabbitmq_count(rabbitmq_url, queue)), collect, False)
    )


@pytest.mark.redis
def test_redis_streams(redis_url: str, tmp_path: Path, cleanups: list[Callable[[], None]]) -> None:
    import redis

    category, prefix = unique("kill"), unique("kill")
    key = f"{prefix}:{category}"
    cleanups.append(lambda: redis_delete(redis_url, f"*{prefix}*"))
    client = redis.Redis.from_url(redis_url)
    cleanups.append(client.close)

    def collect() -> list[tuple[str, str, int]]:
        return [
            (f["id"].decode(), f["chronik-stream"].decode(), int(f["chronik-version"]))
            for f in redis_entries(redis_url, key)
        ]

    url = f"{redis_url}?key={prefix}:{{category}}"
    _kill_and_restart(tmp_path, category, Target(url, lambda: int(client.xlen(key)), collect, True))


@pytest.mark.kafka
def test_kafka(kafka: Callable[..., Kafka], tmp_path: Path) -> None:
    broker = kafka()
    category = unique("kill")

    def collect() -> list[tuple[str, str, int]]:
        found = []
        for record in run(kafka_messages(broker.servers, category)):
            headers = {k: v.decode() for k, v in record.headers}
            found.append(
                (headers["chronik-event-id"], headers["chronik-stream"], int(headers["chronik-version"]))
            )
        return found

    target = Target(
        f"kafka://{broker.servers}", lambda: run(kafka_count(broker.servers, category)), collect, False
    )
    _kill_and_restart(tmp_path, category, target)
