"""Faults the NATS store survives, on servers these tests start themselves (``nats-server``
on the PATH, loopback ports and temporary folders of their own; the shared server is
never touched): a single server restarted in the middle of a subscription and of a
projection, and a three-node cluster losing its stream leader to SIGKILL."""

from __future__ import annotations

import functools
import itertools
import shutil
import socket
import subprocess
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TypeVar

import pytest

import chronik
from chronik import NewEvent
from chronik.errors import ConfigurationError, OperationalError
from chronik.projections import CheckpointedTarget, Projection, ProjectionRunner
from chronik.testing.services import unavailable

pytestmark = [pytest.mark.nats, pytest.mark.slow]

PATIENCE = 120.0  # seconds before a stalled step fails the test (never reached when correct)
T = TypeVar("T")


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


class Server:
    """One nats-server with JetStream, started and killed by the test."""

    def __init__(self, folder: Path, name: str, cluster: list[int] | None = None, index: int = 0) -> None:
        self.name = name
        self.port = _free_port()
        self.folder = folder / name
        self.folder.mkdir(parents=True)
        lines = [
            f"server_name: {name}",
            f"listen: 127.0.0.1:{self.port}",
            f'jetstream {{ store_dir: "{self.folder / "store"}" }}',
        ]
        if cluster is not None:
            routes = ", ".join(f"nats://127.0.0.1:{p}" for i, p in enumerate(cluster) if i != index)
            lines.append(
                f"cluster {{ name: chronik_test, listen: 127.0.0.1:{cluster[index]}, routes: [{routes}] }}"
            )
        self.config = self.folder / "server.conf"
        self.config.write_text("\n".join(lines) + "\n")
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        with (self.folder / "server.log").open("ab") as log:
            self.process = subprocess.Popen(
                ["nats-server", "-c", str(self.config)], stdout=log, stderr=subprocess.STDOUT
            )
        deadline = time.monotonic() + PATIENCE
        while True:
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=1).close()
                return
            except OSError:
                assert time.monotonic() < deadline, f"{self.name} did not start"
                time.sleep(0.05)

    def kill(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.kill()  # SIGKILL: no goodbye to the cluster
            self.process.wait()
        self.process = None


@pytest.fixture
def servers() -> Iterator[list[Server]]:
    if shutil.which("nats-server") is None:
        unavailable("nats-server is not on the PATH (apt install nats-server)")
    made: list[Server] = []
    yield made
    for server in made:
        server.kill()


def _retrying(write: Callable[[], T]) -> T:
    """``write()`` again while the server is away: with the same event ids it is idempotent."""
    deadline = time.monotonic() + PATIENCE
    while True:
        try:
            return write()
        except OperationalError:
            assert time.monotonic() < deadline, "writes did not resume"
            time.sleep(0.1)


def _forming(connect: Callable[[], T]) -> T:
    """``connect()`` again while a new cluster forms: until its servers have found each
    other, JetStream has no peers to place three replicas on (and says so)."""
    deadline = time.monotonic() + PATIENCE
    while True:
        try:
            return _retrying(connect)
        except ConfigurationError as err:
            assert "no suitable peers" in str(err) and time.monotonic() < deadline, err
            time.sleep(0.2)


def _collect(subscription: chronik.Subscription, count: int) -> list[chronik.RecordedEvent]:
    got: list[chronik.RecordedEvent] = []
    deadline = time.monotonic() + PATIENCE
    while len(got) < count:
        assert time.monotonic() < deadline, f"only {len(got)} of {count} events arrived"
        got.extend(subscription.next_batch(1.0))
    return got


def test_a_subscription_and_a_projection_resume_after_a_server_restart(
    servers: list[Server], tmp_path: Path
) -> None:
    server = Server(tmp_path, "solo")
    servers.append(server)
    server.start()
    url = f"nats://127.0.0.1:{server.port}?stream=restart&connect_timeout=10"
    totals: dict[str, int] = {}

    def added(event: chronik.RecordedEvent, context: dict[str, int]) -> None:
        context["sum"] = context.get("sum", 0) + event.data["n"]
        context["count"] = context.get("count", 0) + 1

    projection = Projection("totals", {"Added": added})
    batches = [[NewEvent("Added", {"n": n}, event_id=chronik.uuid7())] for n in range(1, 21)]
    with chronik.connect(url) as store:
        for batch in batches[:10]:
            store.append(f"acc-{len(batch)}", batch)
        runner = ProjectionRunner(store, projection, CheckpointedTarget(totals, store))
        assert runner.run_until_caught_up() == 10
        with store.subscribe(batch_size=4) as subscription:
            seen = _collect(subscription, 10)
            server.kill()
            server.start()
            for batch in batches[10:]:
                _retrying(functools.partial(store.append, "acc-1", batch))
            seen += _collect(subscription, 10)
            assert subscription.next_batch(0.2) == []
        assert [e.event_id for e in seen] == [b[0].event_id for b in batches]
        assert _retrying(runner.run_until_caught_up) == 10
        assert totals == {"sum": sum(range(1, 21)), "count": 20}
        assert [e.version for e in store.read_stream("acc-1")] == list(range(1, 21))


def test_a_cluster_keeps_every_acknowledged_append_when_its_leader_is_killed(
    servers: list[Server], tmp_path: Path
) -> None:
    folder = tmp_path
    routes = [_free_port() for _ in range(3)]
    cluster = [Server(folder, f"n{i}", routes, i) for i in range(3)]
    servers.extend(cluster)
    for server in cluster:
        server.start()
    hosts = ",".join(f"127.0.0.1:{s.port}" for s in cluster)
    url = f"nats://{hosts}?stream=cluster&replicas=3&connect_timeout=30&request_timeout=5"
    store = _forming(lambda: chronik.connect(url))  # the cluster elects its first leaders
    acknowledged: dict[str, list[uuid.UUID]] = {}
    lock = threading.Lock()
    stop = threading.Event()
    errors: list[BaseException] = []

    def write(i: int) -> None:
        stream = f"acc-{i}"
        try:
            while not stop.is_set():
                batch = [NewEvent("E", {"w": i}, event_id=chronik.uuid7()) for _ in range(2)]
                expected: chronik.ExpectedVersion = chronik.ANY
                if i % 2 == 0:
                    expected = _retrying(functools.partial(store.stream_info, stream)).version
                # An append whose acknowledgement was lost (the leader died) is retried
                # with the same ids and expected version (an exact one, or ANY): it must
                # say it went through, never write twice, nor fail with
                # WrongExpectedVersionError.
                _retrying(functools.partial(store.append, stream, batch, expected))
                with lock:
                    acknowledged.setdefault(stream, []).extend(e.event_id for e in batch if e.event_id)
        except BaseException as err:
            errors.append(err)

    with store.subscribe(batch_size=50) as subscription:
        writers = [threading.Thread(target=write, args=(i,)) for i in range(4)]
        for writer in writers:
            writer.start()
        seen = _collect(subscription, 30)
        leader = _leader(url, "cluster")
        victim = next(s for s in cluster if s.name == leader)
        victim.kill()
        with lock:
            before = sum(len(ids) for ids in acknowledged.values())
        deadline = time.monotonic() + PATIENCE
        while True:  # writes resume on the new leader
            with lock:
                if sum(len(ids) for ids in acknowledged.values()) >= before + 30:
                    break
            assert time.monotonic() < deadline, "writes did not resume after the leader was killed"
            assert not errors, errors
            time.sleep(0.1)
        victim.start()
        time.sleep(1.0)
        stop.set()
        for writer in writers:
            writer.join(PATIENCE)
        assert not errors, errors
        total = sum(len(ids) for ids in acknowledged.values())
        seen += _collect(subscription, total - len(seen))
        assert subscription.next_batch(0.5) == []
    ids = [e.event_id for e in seen]
    assert len(ids) == len(set(ids)), "the subscriber saw an event twice"
    assert set(ids) == {i for stream in acknowledged.values() for i in stream}
    assert all(a.checkpoint < b.checkpoint for a, b in itertools.pairwise(seen))
    for stream, stream_ids in acknowledged.items():
        events = _retrying(functools.partial(store.read_stream, stream))
        assert [e.event_id for e in events] == stream_ids, f"{stream} lost or doubled an append"
        assert [e.version for e in events] == list(range(1, len(events) + 1))
    store.close()


def _leader(url: str, stream: str) -> str:
    import asyncio

    import nats

    async def ask() -> str:
        servers = [f"nats://{h}" for h in url.split("://", 1)[1].split("?")[0].split(",")]
        nc = await nats.connect(servers=servers)
        try:
            info = await nc.jetstream().stream_info(stream)
            assert info.cluster is not None and info.cluster.leader
            return info.cluster.leader
        finally:
            await nc.close()

    return asyncio.run(ask())
