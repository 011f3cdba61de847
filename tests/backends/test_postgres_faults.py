"""PostgreSQL faults under load: every runner resumes by itself, nothing is lost or doubled.

Writers (appending with retries of the same event ids until acknowledged), a
subscriber, a projection runner, a process manager and a two-member consumer group
run while the fault happens:

- the runners' backends are killed with ``pg_terminate_backend``, again and again
  (only this test's: its runners connect with an ``application_name`` of its own);
- the server is restarted (``pg_ctlcluster ... restart -m fast``), while a projection
  runner in a process of its own is SIGKILLed. A restart breaks every other test
  using the server at the time, so this one runs only in CI (``CI=true``: the suite
  is alone on its machine there) or when asked for with ``CHRONIK_TEST_PG_RESTART=1``
  (``=0`` turns it off), and needs ``pg_ctlcluster`` on this machine.

Afterwards: every acknowledged event is in the log once, every runner is running
again (none stopped), and every read model is exactly what it would be without the
fault.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest

import chronik
from chronik import NewEvent, RecordedEvent
from chronik.consumer_groups import ConsumerGroup
from chronik.process_managers import ProcessContext, ProcessManager, process_manager_runner
from chronik.projections import FailurePolicy, Projection, ProjectionRunner
from chronik.store import StoreTransaction
from chronik.stores.postgres import PostgresEventStore

pytestmark = [pytest.mark.postgres, pytest.mark.slow]

ROOT = Path(__file__).resolve().parents[2]
POLICY = FailurePolicy(backoff=0.01, max_backoff=0.5)
OPTIONS: dict[str, Any] = {"policy": POLICY, "batch_size": 20, "warn_unknown_types": False}
WRITERS = 3
PER_WRITER = 150


def _eventually(check: Callable[[], bool], what: str, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, f"never happened: {what}"
        time.sleep(0.05)


def _with_app_name(url: str, name: str) -> str:
    return f"{url}{'&' if '?' in url else '?'}application_name={name}"


class Scenario:
    """The writers, the subscriber and the runners of one test, and what they saw."""

    def __init__(self, store_url: str, schema: str) -> None:
        self.schema = schema
        self.app_name = f"chronik-faults-{uuid.uuid4().hex[:8]}"
        self.writer_store = chronik.connect(store_url)
        store = chronik.connect(_with_app_name(store_url, self.app_name))
        assert isinstance(store, PostgresEventStore) and isinstance(self.writer_store, PostgresEventStore)
        self.store = store
        self.acknowledged: list[uuid.UUID] = []
        self.write_retries = 0
        self.writer_errors: list[BaseException] = []
        self.subscriber_errors: list[BaseException] = []
        self.seen_by_subscriber: list[int] = []
        self._lock = threading.Lock()
        self._threads: list[threading.Thread] = []
        self.runners: list[ProjectionRunner[Any]] = []
        self.statuses: list[str] = []

    # -- what runs -------------------------------------------------------------------

    def _writer(self, n: int) -> None:
        try:
            self._write(n)
        except BaseException as err:
            self.writer_errors.append(err)
            raise

    def _write(self, n: int) -> None:
        for i in range(PER_WRITER):
            event_id = chronik.uuid7()
            event = NewEvent("Placed", {"writer": n, "i": i}, event_id=event_id)
            while True:
                try:
                    self.writer_store.append(f"order-{n}x{i % 7}", [event])
                    break
                except chronik.ChronikError as err:
                    # Not acknowledged: send the same event again (its id makes it idempotent).
                    assert chronik.errors.is_transient(err), err
                    with self._lock:
                        self.write_retries += 1
                    time.sleep(0.05)
            with self._lock:
                self.acknowledged.append(event_id)
            time.sleep(0.002)

    def _subscriber(self) -> None:
        try:
            self._subscribe()
        except BaseException as err:
            self.subscriber_errors.append(err)
            raise

    def _subscribe(self) -> None:
        subscription = self.store.subscribe(categories=["order"], batch_size=25)
        subscription.backoff = POLICY.pauses
        self._subscription = subscription
        for event in subscription:
            self.seen_by_subscriber.append(event.position)

    def _projection(self) -> Projection[StoreTransaction]:
        table = f"{self.schema}.totals"

        def placed(event: RecordedEvent, tx: StoreTransaction) -> None:
            tx.execute(f"INSERT INTO {table} VALUES (%s, %s)", (event.position, event.stream_id))

        def setup(tx: StoreTransaction) -> None:
            tx.execute(f"CREATE TABLE {table} (position bigint PRIMARY KEY, stream_id text NOT NULL)")

        return Projection("totals", {"Placed": placed}, setup=setup, categories=("order",))

    def _group(self, index: int) -> Projection[StoreTransaction]:
        table = f"{self.schema}.group_seen"

        def placed(event: RecordedEvent, tx: StoreTransaction) -> None:
            tx.execute(f"INSERT INTO {table} VALUES (%s, %s, %s)", (event.position, event.stream_id, index))

        def setup(tx: StoreTransaction) -> None:
            tx.execute(
                f"CREATE TABLE IF NOT EXISTS {table} "
                "(position bigint PRIMARY KEY, stream_id text NOT NULL, member int NOT NULL)"
            )

        return Projection("shares", {"Placed": placed}, setup=setup, categories=("order",))

    def start(self) -> None:
        def acknowledge(event: RecordedEvent, ctx: ProcessContext) -> None:
            ctx.append(f"ack-{event.position}", [NewEvent("Acked", {"of": event.position})])

        manager = ProcessManager("acks", {"Placed": acknowledge}, categories=("order",))
        group = ConsumerGroup("shares", 2)
        self.group = group
        self.runners = [
            ProjectionRunner(self.store, self._projection(), **OPTIONS),
            process_manager_runner(self.store, manager, **OPTIONS),
            *(group.member(i).runner(self.store, self._group(i), **OPTIONS) for i in (0, 1)),
        ]
        # The group's members create their shared table: the first one first.
        self.runners[2].run_until_caught_up()
        for runner in self.runners:
            runner.run_in_background()
        self._threads = [threading.Thread(target=self._writer, args=(n,)) for n in range(WRITERS)]
        self._threads.append(threading.Thread(target=self._subscriber, daemon=True))
        for thread in self._threads:
            thread.start()

    def watch(self) -> None:
        """Record the runners' states (from another thread, as an operator would)."""
        for runner in self.runners:
            self.statuses.append(runner.status(lag=False).state)

    def written(self) -> int:
        with self._lock:
            return len(self.acknowledged)

    def while_writing(self, step: Callable[[], None]) -> None:
        """Call ``step`` again and again until the writers are done (or one failed)."""
        deadline = time.monotonic() + 300
        while self.written() < WRITERS * PER_WRITER:
            assert not self.writer_errors, self.writer_errors
            assert not self.subscriber_errors, self.subscriber_errors
            assert time.monotonic() < deadline, f"the writers are stuck at {self.written()}"
            step()

    def finish(self) -> None:
        for thread in self._threads[:-1]:
            thread.join(300)
            assert not thread.is_alive()
        head = self.writer_store.head()
        for runner in self.runners:
            assert runner.wait_for(head, timeout=180), (runner, runner.status(lag=False))
        _eventually(
            lambda: bool(self.subscriber_errors) or len(self.seen_by_subscriber) >= WRITERS * PER_WRITER,
            "the subscriber saw all",
        )
        assert not self.subscriber_errors, self.subscriber_errors
        for runner in self.runners:
            status = runner.status()
            assert status.state in ("caught_up", "running"), status
            assert status.error is None and runner.error is None, status
        for runner in self.runners:
            runner.stop(timeout=60)
        self._subscription.close()

    def close(self) -> None:
        for runner in self.runners:
            runner.stop(timeout=60)
        self.store.close()
        self.writer_store.close()

    # -- what must hold afterwards ---------------------------------------------------------

    def check(self) -> None:
        log = list(self.writer_store.read_all())
        orders = [e for e in log if e.stream_id.startswith("order-")]
        # Every acknowledged event is in the log, once; nothing else was written.
        assert Counter(e.event_id for e in orders) == Counter(self.acknowledged)
        assert len(orders) == WRITERS * PER_WRITER
        positions = [e.position for e in orders]
        # The subscriber saw every event once, in log order.
        assert self.seen_by_subscriber == positions
        with psycopg.connect(self.store.config.conninfo, autocommit=True) as conn:
            totals = conn.execute(
                f"SELECT position, stream_id FROM {self.schema}.totals ORDER BY 1"
            ).fetchall()
            shares = conn.execute(
                f"SELECT position, stream_id, member FROM {self.schema}.group_seen ORDER BY 1"
            ).fetchall()
        # The read models are exactly what they would be with no fault. (The log's
        # order is commit order, which concurrent writers make differ from positions'.)
        expected = sorted((e.position, e.stream_id) for e in orders)
        assert totals == expected
        assert [(p, s) for p, s, _ in shares] == expected
        assert all(self.group.member(m).owns(s) for _, s, m in shares)
        # The process manager reacted to each event exactly once.
        acks = Counter(e.data["of"] for e in log if e.type == "Acked")
        assert acks == Counter(positions)


@pytest.fixture
def scenario(postgres_store_url: str, postgres_schema: str) -> Iterator[Scenario]:
    scenario = Scenario(postgres_store_url, postgres_schema)
    try:
        yield scenario
    finally:
        scenario.close()


def _terminate(url: str, app_name: str) -> int:
    """Kill the server backends of this test's runners (and only those)."""
    with psycopg.connect(url, autocommit=True) as conn:
        rows = conn.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
            "WHERE application_name = %s AND pid <> pg_backend_pid()",
            (app_name,),
        ).fetchall()
    return sum(1 for (done,) in rows if done)


def test_runners_resume_by_themselves_when_their_backends_are_killed_again_and_again(
    scenario: Scenario, postgres_url: str
) -> None:
    scenario.start()
    killed: list[int] = []

    def kill() -> None:
        killed.append(_terminate(postgres_url, scenario.app_name))
        scenario.watch()
        time.sleep(0.15)

    scenario.while_writing(kill)
    assert len(killed) >= 5 and sum(killed) >= 5, killed
    assert "stopped" not in scenario.statuses
    scenario.finish()
    scenario.check()


# -- a server restart, and a runner process SIGKILLed meanwhile -------------------------------


def _cluster() -> tuple[str, str]:
    versions = sorted(os.listdir("/etc/postgresql")) if os.path.isdir("/etc/postgresql") else []
    if shutil.which("pg_ctlcluster") is None or not versions:
        pytest.skip("pg_ctlcluster is not available: the server cannot be restarted from here")
    return versions[-1], "main"


def _restart(version: str, name: str) -> None:
    subprocess.run(
        ["pg_ctlcluster", "--skip-systemctl-redirect", version, name, "restart", "-m", "fast"],
        check=True,
        capture_output=True,
        timeout=120,
    )


def _ensure_running(version: str, name: str) -> None:
    """Leave the server as the test found it: running."""
    status = subprocess.run(["pg_ctlcluster", version, name, "status"], capture_output=True, timeout=60)
    if status.returncode != 0:
        subprocess.run(
            ["pg_ctlcluster", "--skip-systemctl-redirect", version, name, "start"],
            capture_output=True,
            timeout=120,
        )


def _runner_process(url: str, mode: str) -> subprocess.Popen[str]:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT / "src"), str(ROOT)])}
    return subprocess.Popen(
        [sys.executable, "-m", "tests.backends._fault_runner", url, mode],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


@pytest.mark.skipif(
    os.environ.get("CHRONIK_TEST_PG_RESTART", "1" if os.environ.get("CI") == "true" else "0") != "1",
    reason="restarts the PostgreSQL server, breaking other tests using it: runs under CI=true, "
    "or set CHRONIK_TEST_PG_RESTART=1",
)
def test_everything_resumes_after_a_server_restart_and_a_runner_killed_meanwhile(
    scenario: Scenario, postgres_store_url: str
) -> None:
    version, name = _cluster()
    separate = _runner_process(postgres_store_url, "follow")
    try:
        assert separate.stdout is not None and separate.stdout.readline().strip() == "running"
        scenario.start()
        _eventually(lambda: scenario.written() >= WRITERS * PER_WRITER // 3, "a third written")
        # Both at once: the separate runner dies mid-batch while the server goes down.
        restarted = threading.Event()

        def watch() -> None:  # what an operator polling the runners' status would see
            while not restarted.wait(0.05):
                scenario.watch()

        watcher = threading.Thread(target=watch)
        watcher.start()
        separate.send_signal(signal.SIGKILL)
        try:
            _restart(version, name)
        finally:
            _ensure_running(version, name)
            restarted.set()
            watcher.join(60)
        separate.wait(60)
        assert separate.returncode == -signal.SIGKILL

        def step() -> None:
            scenario.watch()
            time.sleep(0.1)

        scenario.while_writing(step)
        assert "stopped" not in scenario.statuses
        scenario.finish()
        scenario.check()
        # The killed runner's replacement takes up from its last commit: exactly once.
        again = _runner_process(postgres_store_url, "catch-up")
        _, err = again.communicate(timeout=300)
        assert again.returncode == 0, err
        orders = sorted(
            e.position for e in scenario.writer_store.read_all() if e.stream_id.startswith("order-")
        )
        with psycopg.connect(scenario.store.config.conninfo, autocommit=True) as conn:
            seen = conn.execute(f"SELECT position FROM {scenario.schema}.killed_seen ORDER BY 1").fetchall()
        assert [p for (p,) in seen] == orders
    finally:
        if separate.poll() is None:
            separate.kill()
            separate.wait(60)
        for pipe in (separate.stdout, separate.stderr):
            if pipe is not None:
                pipe.close()
        _ensure_running(version, name)
