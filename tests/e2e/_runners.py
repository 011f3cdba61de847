"""A projection runner in a process of its own (``chronik projections run --follow``), and
what an operator asks about it from others: ``chronik projections status --json`` and
the HTTP API of a ``chronik serve`` on the same store.

The application is ``shop.py`` (written into the working directory): one projection,
``seen``, a row per ``Placed`` event keyed by its position (a double would fail), in
the store's own database, in portable SQL. With ``SHOP_LOCK_TIMEOUT`` set (PostgreSQL),
the handler waits that long at most for a lock on its table.
"""

from __future__ import annotations

import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx2

from ._cli import cli_env, run_cli
from ._server import _wait_until_up, free_port

PATIENCE = 60.0  # seconds before a step that should happen fails the test

SHOP = """
import os

from chronik.projections import FailurePolicy, Projection

LOCK_TIMEOUT = os.environ.get("SHOP_LOCK_TIMEOUT")


def setup(tx):
    tx.execute("CREATE TABLE IF NOT EXISTS seen (p bigint PRIMARY KEY)")


def placed(event, tx):
    if LOCK_TIMEOUT:
        tx.execute(f"SET LOCAL lock_timeout = '{int(LOCK_TIMEOUT)}ms'")
    tx.execute("INSERT INTO seen VALUES (:p)", {"p": event.position})


projections = [Projection("seen", {"Placed": placed}, setup=setup)]
policies = {"seen": FailurePolicy(backoff=0.05, max_backoff=0.5)}
"""


def write_shop(directory: Path) -> None:
    (directory / "shop.py").write_text(SHOP)


def eventually(check: Callable[[], Any], what: str, patience: float = PATIENCE) -> Any:
    """``check()`` again until it returns something true (returned), or fail after ``patience``."""
    deadline = time.monotonic() + patience
    while True:
        found = check()
        if found:
            return found
        assert time.monotonic() < deadline, f"never happened: {what}"
        time.sleep(0.1)


class RunnerProcess:
    """``chronik projections run seen --follow`` in ``directory``, its output in a file."""

    def __init__(self, directory: Path, url: str, heartbeat: float = 0.5, **env: str) -> None:
        self.log = directory / f"runner-{time.monotonic_ns()}.out"
        args = ["projections", "run", "seen", "--follow", "--heartbeat", str(heartbeat), "--app", "shop"]
        with self.log.open("wb") as out:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "chronik", *args, "--url", url],
                cwd=directory,
                env=cli_env(**env),
                stdout=out,
                stderr=subprocess.STDOUT,
            )

    @property
    def pid(self) -> int:
        return self.process.pid

    def output(self) -> str:
        return self.log.read_text()

    def wait_for_output(self, text: str) -> None:
        eventually(lambda: text in self.output() or self.process.poll() is not None, f"{text!r} printed")
        assert text in self.output(), f"the runner exited ({self.process.returncode}):\n{self.output()}"

    def kill(self) -> None:
        """SIGKILL: no last heartbeat."""
        self.process.kill()
        self.process.wait(30)

    def terminate(self) -> int:
        """SIGTERM, as a service manager stops it; its exit status."""
        self.process.send_signal(signal.SIGTERM)
        return self.process.wait(30)

    def close(self) -> None:
        if self.process.poll() is None:
            self.kill()


@contextmanager
def runner_process(directory: Path, url: str, heartbeat: float = 0.5, **env: str) -> Iterator[RunnerProcess]:
    runner = RunnerProcess(directory, url, heartbeat, **env)
    try:
        yield runner
    finally:
        runner.close()


def cli_runners(directory: Path, url: str) -> list[dict[str, Any]]:
    """``chronik projections status seen --json``'s runners."""
    done = run_cli("projections", "status", "seen", "--json", "--app", "shop", "--url", url, cwd=directory)
    assert done.code == 0, done.err
    [record] = done.json_lines()
    runners: list[dict[str, Any]] = record["runners"]
    return runners


def cli_text(directory: Path, url: str) -> str:
    """``chronik projections status seen`` as a person reads it."""
    done = run_cli("projections", "status", "seen", "--app", "shop", "--url", url, cwd=directory)
    assert done.code == 0, done.err
    return done.out


@contextmanager
def serve_store(directory: Path, url: str) -> Iterator[str]:
    """``chronik serve`` on ``url`` with the shop application; its base URL."""
    port = free_port()
    args = [sys.executable, "-m", "chronik", "serve", "--url", url, "--port", str(port), "--app", "shop"]
    process = subprocess.Popen(args, cwd=directory, env=cli_env(), stderr=subprocess.PIPE)
    base = f"http://127.0.0.1:{port}"
    try:
        _wait_until_up(base, process)
        yield base
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        if process.stderr is not None:
            process.stderr.close()


def api_runners(base: str) -> list[dict[str, Any]]:
    """The runners of ``seen`` in ``GET /api/projections``."""
    answer = httpx2.get(f"{base}/api/projections", timeout=30)
    assert answer.status_code == 200, answer.text
    [seen] = [p for p in answer.json()["projections"] if p["name"] == "seen"]
    runners: list[dict[str, Any]] = seen["runners"]
    return runners


def only(runners: list[dict[str, Any]], pid: int) -> dict[str, Any] | None:
    """The record of the runner in process ``pid`` (None: it wrote none)."""
    mine = [r for r in runners if r["pid"] == pid and r["host"] == socket.gethostname()]
    assert len(mine) <= 1, mine
    return mine[0] if mine else None
