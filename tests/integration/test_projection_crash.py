"""Kill a projection runner at random points; the read model ends as if it never crashed."""

from __future__ import annotations

import os
import random
import signal
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

import chronik
from chronik import Checkpoint, NewEvent
from chronik.projections import ProjectionRunner
from chronik.testing._projection_workers import counter_projection

pytestmark = pytest.mark.slow

KILLS = 12


def _append(store: chronik.EventStore, rng: random.Random, count: int) -> None:
    for _ in range(count // 10):
        stream = f"acc-{rng.randrange(40)}"
        store.append(stream, [NewEvent("Added", {"amount": rng.randint(1, 100)}) for _ in range(10)])


def _checkpoint(path: Path) -> Checkpoint | None:
    db = sqlite3.connect(path)
    try:
        row = db.execute(
            "SELECT checkpoint FROM chronik_checkpoints WHERE name = 'projection:crash_totals:v1'"
        ).fetchone()
        return None if row is None else Checkpoint.parse(row[0])
    finally:
        db.close()


@pytest.mark.skipif(not hasattr(signal, "SIGKILL"), reason="needs SIGKILL")
def test_killed_runner_leaves_an_exact_read_model(tmp_path: Path) -> None:
    path = tmp_path / "events.db"
    rng = random.Random(20261127)
    store = chronik.connect(f"sqlite:///{path}")
    _append(store, rng, 3000)
    interrupted = 0
    checkpoints: list[Checkpoint | None] = []
    env = {**os.environ, "PYTHONWARNINGS": "error"}
    for _ in range(KILLS):
        worker = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "chronik.testing._projection_workers",
                str(path),
                str(rng.choice([1, 1, 7, 50])),
            ],
            stdout=subprocess.PIPE,
            env=env,
        )
        try:
            assert worker.stdout is not None
            assert worker.stdout.readline().strip() == b"ready"
            # More events arrive while it runs; then it dies at a random moment.
            _append(store, rng, 200)
            try:
                worker.wait(rng.uniform(0.05, 0.6))
            except subprocess.TimeoutExpired:
                pass
            assert worker.poll() is None, f"the runner died on its own (exit {worker.returncode})"
            os.kill(worker.pid, signal.SIGKILL)
        finally:
            worker.wait()
            if worker.stdout is not None:
                worker.stdout.close()
        assert worker.returncode == -signal.SIGKILL
        checkpoint = _checkpoint(path)
        if checkpoint is not None and checkpoint < store.head():  # type: ignore[operator]
            interrupted += 1
        checkpoints.append(checkpoint)
    assert interrupted, "no kill landed before the runner had caught up: nothing was tested"
    known = [c for c in checkpoints if c is not None]
    assert known == sorted(known), "a checkpoint went backwards"

    # Finish the job, then compare with what the log says it must be.
    ProjectionRunner(store, counter_projection()).run_until_caught_up()
    expected: dict[str, tuple[int, int]] = {}
    positions: list[int] = []
    for event in store.read_all():
        n, total = expected.get(event.stream_id, (0, 0))
        expected[event.stream_id] = (n + 1, total + event.data["amount"])
        positions.append(event.position)
    db = sqlite3.connect(path)
    try:
        actual = {r[0]: (r[1], r[2]) for r in db.execute("SELECT stream_id, n, total FROM crash_totals")}
        applied = [r[0] for r in db.execute("SELECT position FROM crash_applied ORDER BY position")]
    finally:
        db.close()
    assert applied == positions, "an event was lost or applied twice"
    assert actual == expected
    store.close()
