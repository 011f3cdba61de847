"""Faults the NATS store survives, on servers these tests start themselves (``nats-server``
on the PATH, loopback ports and temporary folders of their own; the shared server is
never touched): a single server restarted in the middle of a subscription and of a
projection, and while writers, a projection runner, a process manager and a
subscription run (each says it is retrying meanwhile); and a three-node cluster losing
its stream leader to SIGKILL while writers, a subscriber, a projection runner and a
process manager run."""

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
from typing import Any, TypeVar

import pytest

import chronik
from chronik import NewEvent
from chronik.errors import ConfigurationError, OperationalError
from chronik.process_managers import ProcessContext, ProcessManager, process_manager_runner
from chronik.projections import CheckpointedTarget, FailurePolicy, Projection, ProjectionRunner
from chronik.testing.services import unavailable

pytestmark = [pytest.mark.nats, pytest.mark.slow]

PATIENCE = 120.0  # seconds before a stalled step fails the test (never reached when correct)
OUTAGE = 15.0  # seconds a server stays away at most, while the runners must say they are retrying
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

    # A projection runner and a process manager follow too, and must resume by themselves.
    policy = FailurePolicy(backoff=0.05, max_backoff=1.0)
    model: dict[int, uuid.UUID] = {}

    def counted(event: chronik.RecordedEvent, context: dict[int, uuid.UUID]) -> None:
        context[event.position] = event.event_id  # idempotent by position: at least once is exact

    projection = Projection("counted", {"E": counted}, categories=("acc",))
    totals = ProjectionRunner(store, projection, CheckpointedTarget(model, store), policy=policy)

    def confirm(event: chronik.RecordedEvent, ctx: ProcessContext) -> None:
        ctx.append(f"confirm-{event.stream_id}", [NewEvent("Confirmed", {"version": event.version})])

    confirmations = ProcessManager("confirmations", {"E": confirm}, categories=("acc",))
    manager = process_manager_runner(store, confirmations, policy=policy)
    with store.subscribe(categories=["acc"], batch_size=50) as subscription:
        writers = [threading.Thread(target=write, args=(i,)) for i in range(4)]
        for writer in writers:
            writer.start()
        totals.run_in_background()
        manager.run_in_background()
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
        head = _retrying(store.head)
        assert totals.wait_for(head, timeout=PATIENCE), totals.status(lag=False)
        _until(functools.partial(_reached, manager, head), "the process manager resumed")
        assert totals.error is None and manager.error is None
        totals.stop(timeout=PATIENCE)
        manager.stop(timeout=PATIENCE)
    ids = [e.event_id for e in seen]
    assert len(ids) == len(set(ids)), "the subscriber saw an event twice"
    assert set(ids) == {i for stream in acknowledged.values() for i in stream}
    assert all(a.checkpoint < b.checkpoint for a, b in itertools.pairwise(seen))
    for stream, stream_ids in acknowledged.items():
        events = _retrying(functools.partial(store.read_stream, stream))
        assert [e.event_id for e in events] == stream_ids, f"{stream} lost or doubled an append"
        assert [e.version for e in events] == list(range(1, len(events) + 1))
        reactions = _retrying(functools.partial(store.read_stream, f"confirm-{stream}"))
        assert sorted(e.data["version"] for e in reactions) == [e.version for e in events], (
            f"{stream}: a reaction lost or doubled"
        )
    log = _retrying(lambda: list(store.read_all(categories=["acc"])))
    assert model == {e.position: e.event_id for e in log}, "the read model is not exactly the log"
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


def test_runners_report_retrying_through_a_server_restart_and_resume_exactly(
    servers: list[Server], tmp_path: Path
) -> None:
    """Writers append, and a projection runner, a process manager and a subscription
    follow, while the server is killed and, a while later, started again: each of the
    three reports that it is retrying while the server is away, and carries on by
    itself; every acknowledged event is in the log once, the subscriber saw each once
    in order, the read model holds exactly the events, and every order has exactly
    one confirmation."""
    server = Server(tmp_path, "solo")
    servers.append(server)
    server.start()
    url = f"nats://127.0.0.1:{server.port}?stream=runners&connect_timeout=10&request_timeout=1"
    store = chronik.connect(url)
    policy = FailurePolicy(backoff=0.05, max_backoff=0.5)
    model: dict[int, uuid.UUID] = {}

    def placed(event: chronik.RecordedEvent, context: dict[int, uuid.UUID]) -> None:
        context[event.position] = event.event_id  # idempotent by position: at least once is exact

    totals = ProjectionRunner(
        store, Projection("placed", {"Placed": placed}), CheckpointedTarget(model, store), policy=policy
    )

    def confirm(event: chronik.RecordedEvent, ctx: ProcessContext) -> None:
        ctx.append(f"confirm-{event.stream_id}", [NewEvent("Confirmed", {"order": event.stream_id})])

    manager = process_manager_runner(
        store, ProcessManager("confirmations", {"Placed": confirm}, categories=("order",)), policy=policy
    )
    acknowledged: list[uuid.UUID] = []
    lock = threading.Lock()
    stop = threading.Event()
    errors: list[BaseException] = []

    def write(i: int) -> None:
        try:
            n = 0
            while not stop.is_set():
                n += 1
                event = NewEvent("Placed", {"n": n}, event_id=chronik.uuid7())
                _retrying(functools.partial(store.append, f"order-{i}-{n}", [event]))
                with lock:
                    acknowledged.append(event.event_id)  # type: ignore[arg-type]
                time.sleep(0.01)
        except BaseException as err:
            errors.append(err)

    subscription = store.subscribe(categories=["order"], batch_size=20)
    subscription.backoff = policy.pauses
    seen: list[chronik.RecordedEvent] = []

    def follow() -> None:
        try:
            for event in subscription:
                seen.append(event)
        except BaseException as err:
            errors.append(err)

    writers = [threading.Thread(target=write, args=(i,)) for i in range(2)]
    reader = threading.Thread(target=follow)
    for thread in [*writers, reader]:
        thread.start()
    totals.run_in_background()
    manager.run_in_background()
    try:
        _until(lambda: len(seen) >= 40 and totals.checkpoint is not None, "the runners under way")
        server.kill()
        # The server stays away for OUTAGE seconds at most: many backoff pauses. A reader
        # that rode out the outage silently (a loop of its own, longer than that) would
        # leave a subscription that never said it was retrying.
        _until(
            lambda: (
                totals.status(lag=False).state == "retrying"
                and manager.status(lag=False).state == "retrying"
                and subscription.retrying is not None
            ),
            "all three report retrying while the server is away",
            OUTAGE,
        )
        retrying = totals.status(lag=False).retrying
        assert retrying is not None and retrying.attempts >= 1 and retrying.error
        server.start()
        with lock:
            before = len(acknowledged)
        _until(lambda: len(acknowledged) >= before + 40, "writes resumed")
        stop.set()
        for writer in writers:
            writer.join(PATIENCE)
        assert not errors, errors
        head = _retrying(store.head)
        assert totals.wait_for(head, timeout=PATIENCE), totals.status(lag=False)
        _until(lambda: len(seen) == len(acknowledged), "the subscriber saw every event")
        _until(functools.partial(_reached, manager, head), "the process manager caught up")
        for runner in (totals, manager):
            _until(functools.partial(_caught_up, runner), f"{runner.projection.name} at the head")
            status = runner.status(lag=False)
            assert status.recovered is not None and status.recovered.attempts >= 1, status
            assert runner.error is None
        assert subscription.retrying is None and subscription.recovered is not None
        # What other processes see: each runner's heartbeat says it recovered, and from what.
        _until(
            lambda: all(b.state == "caught_up" and b.recovered for b in store.heartbeats()),
            "heartbeats of the recovery",
        )
        assert {b.name for b in store.heartbeats()} == {"placed", "confirmations"}
    finally:
        stop.set()
        subscription.close()
        totals.stop(timeout=PATIENCE)
        manager.stop(timeout=PATIENCE)
        reader.join(PATIENCE)
    ids = [e.event_id for e in seen]
    assert len(ids) == len(set(ids)), "the subscriber saw an event twice"
    assert set(ids) == set(acknowledged) and len(ids) == len(acknowledged)
    assert all(a.checkpoint < b.checkpoint for a, b in itertools.pairwise(seen))
    log = [e for e in store.read_all() if e.type == "Placed"]
    assert sorted(e.event_id for e in log) == sorted(acknowledged), "an acknowledged event lost or doubled"
    assert model == {e.position: e.event_id for e in log}, "the read model is not exactly the log"
    confirmations = [e for e in store.read_all() if e.type == "Confirmed"]
    assert sorted(e.stream_id for e in confirmations) == sorted(f"confirm-{e.stream_id}" for e in log)
    store.close()


def _caught_up(runner: ProjectionRunner[Any]) -> bool:
    return runner.status(lag=False).state == "caught_up"


def _reached(runner: ProjectionRunner[Any], head: chronik.Checkpoint | None) -> bool:
    return head is None or (runner.checkpoint is not None and runner.checkpoint >= head)


def _until(check: Callable[[], bool], what: str, patience: float = PATIENCE) -> None:
    deadline = time.monotonic() + patience
    while not check():
        assert time.monotonic() < deadline, f"never happened: {what}"
        time.sleep(0.05)
