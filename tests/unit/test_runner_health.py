"""How a runner's heartbeat reads to an operator: live, stale or stopped, in one sentence
(``chronik projections status``, the HTTP API and the web UI all say it this way)."""

from __future__ import annotations

from datetime import timedelta

import msgspec

from chronik._operations import describe_runner, runner_record, seconds
from chronik.events import Recovery, Retrying
from chronik.testing.conformance._projection_state import _T0, heartbeat

NOW = _T0 + timedelta(minutes=10)


def test_durations_read_as_people_say_them() -> None:
    assert [seconds(s) for s in (0.25, 9.94, 40, 185, 7500, 200_000)] == [
        "0.2 s",
        "9.9 s",
        "40 s",
        "3 min 5 s",
        "2 h 5 min",
        "2 d 7 h",
    ]


def test_a_live_runner_says_what_it_does_and_when_it_was_heard() -> None:
    beat = heartbeat("r-1", since=_T0, heard_at=NOW - timedelta(seconds=2))
    assert describe_runner(beat, NOW) == "caught up since 2030-01-01T12:00:00Z; heard 2.0 s ago"
    behind = msgspec.structs.replace(beat, state="running", lag_events=1200)
    assert describe_runner(behind, NOW).startswith("running since 2030-01-01T12:00:00Z, 1,200 events behind;")
    record = runner_record(beat, NOW)
    assert (record["stale"], record["label"], record["heard_seconds_ago"]) == (False, "caught up", 2.0)


def test_a_silent_runner_is_plainly_stale_with_what_it_last_said() -> None:
    retrying = Retrying(_T0, 3, "OperationalError: the database system is shutting down (57P03)")
    beat = heartbeat(
        "r-1", state="retrying", retrying=retrying, heard_at=NOW - timedelta(seconds=40), interval=5.0
    )
    assert describe_runner(beat, NOW) == (
        "stale: last heard 40 s ago (it writes every 5.0 s); it was then retrying since "
        "2030-01-01T12:00:00Z (3 failed attempts; last: OperationalError: the database system is "
        "shutting down (57P03)); it is stuck, gone, or cannot reach the store"
    )
    record = runner_record(beat, NOW)
    assert (record["stale"], record["label"], record["state"], record["stale_after"]) == (
        True,
        "stale",
        "retrying",
        15.0,
    )
    # Silent for less than three intervals: not stale yet.
    assert not runner_record(msgspec.structs.replace(beat, heard_at=NOW - timedelta(seconds=14)), NOW)[
        "stale"
    ]


def test_a_stopped_runner_says_why_and_is_never_stale() -> None:
    failed = heartbeat("r-1", state="stopped", error="ProjectionFailedError: boom", heard_at=_T0)
    assert describe_runner(failed, NOW) == "stopped at 2030-01-01T12:00:00Z: ProjectionFailedError: boom"
    asked = heartbeat("r-1", state="stopped", heard_at=_T0)
    assert describe_runner(asked, NOW) == "stopped at 2030-01-01T12:00:00Z (asked to stop)"
    assert not runner_record(asked, NOW)["stale"]


def test_the_last_recovery_is_told() -> None:
    recovered = Recovery(_T0, _T0 + timedelta(seconds=42), 9, "OperationalError: database is locked")
    beat = heartbeat("r-1", recovered=recovered, heard_at=NOW)
    assert describe_runner(beat, NOW).endswith(
        "; recovered at 2030-01-01T12:00:42Z after 9 failed attempts over 42 s "
        "(last: OperationalError: database is locked)"
    )
    assert runner_record(beat, NOW)["recovered"] == {
        "since": "2030-01-01T12:00:00Z",
        "until": "2030-01-01T12:00:42Z",
        "attempts": 9,
        "error": "OperationalError: database is locked",
        "seconds": 42.0,
    }
