"""SQLite on a disk that fills up, then has space again: a clear error, an intact file, and
a writer and a projection runner that both carry on by themselves.

The disk is real: a 2 MiB tmpfs mounted for the test (which needs root; the test is
skipped, saying so, where mounting is not allowed), filled with a file of padding.
"""

from __future__ import annotations

import errno
import os
import sqlite3
import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

import chronik
from chronik import NewEvent, RecordedEvent
from chronik.projections import FailurePolicy, Projection, ProjectionRunner
from chronik.store import StoreTransaction

pytestmark = pytest.mark.slow

PAD = "x" * 20_000  # each event and each read-model row takes a good part of a page run


def _eventually(check: Callable[[], bool], what: str) -> None:
    deadline = time.monotonic() + 60
    while not check():
        assert time.monotonic() < deadline, f"never happened: {what}"
        time.sleep(0.02)


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    mount_point = tmp_path / "disk"
    mount_point.mkdir()
    try:
        mounted = subprocess.run(
            ["mount", "-t", "tmpfs", "-o", "size=2m", "tmpfs", str(mount_point)],
            capture_output=True,
            text=True,
            timeout=60,
        )
    except OSError as err:
        pytest.skip(f"cannot mount a small tmpfs to fill up here ({err})")
    if mounted.returncode != 0:
        pytest.skip(f"cannot mount a small tmpfs to fill up here (needs root): {mounted.stderr.strip()}")
    try:
        yield mount_point
    finally:
        subprocess.run(["umount", "-l", str(mount_point)], capture_output=True, timeout=60)


def _fill(disk: Path) -> Path:
    """Take every free byte of ``disk`` with a file of padding; returns it."""
    filler = disk / "filler"
    fd = os.open(filler, os.O_WRONLY | os.O_CREAT, 0o600)
    try:
        chunk = b"\0" * 4096
        while True:
            try:
                os.write(fd, chunk)
            except OSError as err:
                assert err.errno == errno.ENOSPC, err
                break
    finally:
        os.close(fd)
    return filler


def test_a_full_disk_is_a_clear_error_the_file_stays_intact_and_both_carry_on(small_disk: Path) -> None:
    path = small_disk / "events.db"
    store = chronik.connect(f"sqlite:///{path}", busy_timeout=5)

    def placed(event: RecordedEvent, tx: StoreTransaction) -> None:
        tx.execute("INSERT INTO seen VALUES (?, ?)", (event.position, PAD))

    projection = Projection(
        "seen",
        {"Placed": placed},
        setup=lambda tx: tx.execute("CREATE TABLE seen (position INTEGER PRIMARY KEY, pad TEXT)"),
    )
    runner = ProjectionRunner(
        store, projection, policy=FailurePolicy(backoff=0.005, max_backoff=0.05), warn_unknown_types=False
    )
    runner.run_until_caught_up()
    acknowledged = [store.append(f"order-{n}", [NewEvent("Placed", {"pad": PAD})]).position for n in range(5)]
    filler = _fill(small_disk)
    try:
        # The writer: a clear error, transient (trying again once there is space works).
        with pytest.raises(chronik.OperationalError, match="full") as caught:
            for n in range(100):
                acknowledged.append(store.append(f"order-x{n}", [NewEvent("Placed", {"pad": PAD})]).position)
        assert caught.value.transient
        # The runner: has events to handle and no room for their rows: it keeps trying.
        runner.run_in_background()
        _eventually(
            lambda: (r := runner.status(lag=False).retrying) is not None and r.attempts >= 3,
            "the runner retrying on the full disk",
        )
        status = runner.status()
        assert status.state == "retrying" and status.retrying is not None
        assert "full" in status.retrying.error
        assert status.lag is not None and status.lag.events == len(acknowledged)  # visible meanwhile
    finally:
        filler.unlink()
    # Space again: both carry on by themselves.
    acknowledged += [
        store.append(f"order-y{n}", [NewEvent("Placed", {"pad": PAD})]).position for n in range(3)
    ]
    assert runner.wait_for(store.head(), timeout=60), runner.status(lag=False)
    _eventually(lambda: runner.status(lag=False).state == "caught_up", "caught up")
    runner.stop(timeout=60)
    assert runner.error is None
    store.close()
    with sqlite3.connect(path) as conn:
        assert conn.execute("PRAGMA integrity_check").fetchall() == [("ok",)]
        stored = [p for (p,) in conn.execute("SELECT position FROM chronik_events ORDER BY position")]
        seen = [p for (p,) in conn.execute("SELECT position FROM seen ORDER BY position")]
    assert stored == seen == acknowledged
