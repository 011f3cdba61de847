"""What an operator sees of a runner in another process, on SQLite: from
``chronik projections status`` and from the HTTP API, during a real fault (another
program holds the file's write lock), after it, after the runner was SIGKILLed, and
after it was stopped with SIGTERM.

While the lock is held nothing can be written, heartbeats included: the record ages
and both say it is stale, with what the runner last said; the runner's own output
says it is retrying. Once the lock is gone the record says it recovered, and from
what.
"""

from __future__ import annotations

import sqlite3
import time
from pathlib import Path

import pytest

import chronik
from chronik import NewEvent

from ._runners import (
    api_runners,
    cli_runners,
    cli_text,
    eventually,
    only,
    runner_process,
    serve_store,
    write_shop,
)

pytestmark = pytest.mark.slow

HEARTBEAT = 0.5


def _seen(db: Path) -> list[int]:
    conn = sqlite3.connect(db)
    try:
        return [p for (p,) in conn.execute("SELECT p FROM seen ORDER BY p")]
    finally:
        conn.close()


def _lock_with_an_event_waiting(store: chronik.Store, db: Path) -> sqlite3.Connection:
    """Append an event, then take the write lock before the runner has handled it (again,
    in the rare case the runner was quicker), so the runner must write while it is held."""
    while True:
        result = store.append("order-x", [NewEvent("Placed", {})])
        blocker = sqlite3.connect(db, isolation_level=None, check_same_thread=False)
        blocker.execute("BEGIN IMMEDIATE")
        if result.position not in [p for (p,) in blocker.execute("SELECT p FROM seen")]:
            return blocker
        blocker.rollback()
        blocker.close()


def test_the_cli_and_the_api_see_a_runner_ride_out_a_locked_file_and_vanish(tmp_path: Path) -> None:
    write_shop(tmp_path)
    db = tmp_path / "chronik.db"
    url = f"sqlite:///{db}?busy_timeout=0.2"
    store = chronik.connect(url)
    for n in range(3):
        store.append(f"order-{n}", [NewEvent("Placed", {})])
    with serve_store(tmp_path, url) as api, runner_process(tmp_path, url, HEARTBEAT) as runner:
        live = eventually(
            lambda: (r := only(cli_runners(tmp_path, url), runner.pid)) and r["state"] == "caught_up" and r,
            "the runner caught up, in projections status",
        )
        assert not live["stale"] and live["checkpoint"] == str(store.head())
        assert (live["kind"], live["interval"], live["recovered"]) == ("projection", HEARTBEAT, None)

        blocker = _lock_with_an_event_waiting(store, db)
        try:
            runner.wait_for_output("seen: retrying since")
            time.sleep(4 * HEARTBEAT)  # past three heartbeats: nothing could be written
            seen = only(cli_runners(tmp_path, url), runner.pid)
            assert seen is not None and seen["stale"], seen
            assert seen["state"] == "caught_up", "the record is what the runner last said"
            assert (
                seen["summary"].startswith("stale: last heard")
                and "cannot reach the store" in seen["summary"]
            )
            assert "stale: last heard" in cli_text(tmp_path, url)
            served = only(api_runners(api), runner.pid)
            assert served is not None and served["stale"] and served["runner_id"] == seen["runner_id"]
        finally:
            blocker.rollback()
            blocker.close()

        back = eventually(
            lambda: (
                (r := only(cli_runners(tmp_path, url), runner.pid))
                and r["recovered"]
                and not r["stale"]
                and r
            ),
            "the recovery, in projections status",
        )
        assert back["state"] == "caught_up" and back["retrying"] is None
        assert back["recovered"]["attempts"] >= 1 and "database is locked" in back["recovered"]["error"]
        assert "recovered at" in back["summary"]
        served = only(api_runners(api), runner.pid)
        assert served is not None and served["recovered"] == back["recovered"]
        runner.wait_for_output("seen: recovered at")
        assert _seen(db) == [e.position for e in store.read_all()]

        # SIGKILL: no goodbye; three heartbeats later it is stale, from both.
        runner.kill()
        gone = eventually(
            lambda: (r := only(cli_runners(tmp_path, url), runner.pid)) and r["stale"] and r,
            "stale after SIGKILL",
        )
        assert gone["state"] == "caught_up" and gone["heard_seconds_ago"] >= 3 * HEARTBEAT
        served = only(api_runners(api), runner.pid)
        assert served is not None and served["stale"]

    # A new runner forgets the dead one's record; SIGTERM stops it and it says so.
    with runner_process(tmp_path, url, HEARTBEAT) as again:
        eventually(
            lambda: (
                [(r["pid"], r["state"]) for r in cli_runners(tmp_path, url)] == [(again.pid, "caught_up")]
            ),
            "the dead runner forgotten",
        )
        assert again.terminate() == 0, again.output()
        [stopped] = cli_runners(tmp_path, url)
        assert (stopped["pid"], stopped["state"], stopped["stale"]) == (again.pid, "stopped", False)
        assert stopped["summary"].endswith("(asked to stop)")
    store.close()
