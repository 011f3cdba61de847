"""The command line against PostgreSQL, as a subprocess: the commands that touch the backend.

The move the issue asks for: ``chronik copy sqlite:///a.db postgresql://...`` of
100,000 events reproduces every event (stream, version, type, schema version, data,
metadata, event id), in the order of the log, and running it again writes nothing.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

import chronik
from chronik import NewEvent, StreamWrite
from tests.e2e._cli import Result, run_cli

pytestmark = pytest.mark.postgres


def _identity(e: chronik.RecordedEvent) -> tuple[object, ...]:
    return (e.stream_id, e.version, e.type, e.schema_version, e.data, e.metadata, e.event_id)


def one_error_line(result: Result) -> str:
    assert result.code == 1, (result.out, result.err)
    assert "Traceback" not in result.err
    [line] = result.err.strip().splitlines()
    return line


@pytest.mark.slow
def test_copy_of_100_000_events_from_sqlite_reproduces_every_event(
    tmp_path: Path, postgres_store_url: str
) -> None:
    source_url = f"sqlite:///{tmp_path / 'a.db'}"
    with chronik.connect(source_url) as source:
        # 1,000 streams written round-robin: the log interleaves them, as an application's does.
        for round_ in range(100):
            source.append_many(
                [
                    StreamWrite(
                        f"{('order', 'cart', 'account')[n % 3]}-{n}",
                        [
                            NewEvent(
                                f"Happened{round_ % 7}",
                                {"n": n, "round": round_, "text": 'é ✓ "quoted"', "list": [1, 2.5, None]},
                                {"correlation_id": f"c-{n}", "user": "ada"} if n % 2 else None,
                                schema_version=1 + round_ % 2,
                            )
                        ],
                        round_,
                    )
                    for n in range(1000)
                ]
            )
        expected = [_identity(e) for e in source.read_all()]
    assert len(expected) == 100_000

    copied = run_cli("copy", source_url, postgres_store_url, cwd=tmp_path)
    assert copied.code == 0, copied.err
    assert "copied 100,000 events" in copied.err
    with chronik.connect(postgres_store_url) as target:
        assert [_identity(e) for e in target.read_all()] == expected
        head = target.head()

    again = run_cli("copy", source_url, postgres_store_url, cwd=tmp_path)
    assert again.code == 0, again.err
    with chronik.connect(postgres_store_url) as target:
        assert target.head() == head, "a second copy writes nothing"


def test_commands_on_postgres(tmp_path: Path, postgres_store_url: str) -> None:
    url = ["--url", postgres_store_url]
    assert run_cli("append", "order-1", "OrderPlaced", '{"total": 3}', *url, cwd=tmp_path).code == 0
    lines = '{"stream_id": "order-2", "type": "OrderPlaced", "data": {"total": 5}}\n'
    assert run_cli("append", *url, cwd=tmp_path, stdin=lines).code == 0
    events = run_cli("log", "--json", *url, cwd=tmp_path).json_lines()
    assert [(e["stream_id"], e["version"], e["data"]) for e in events] == [
        ("order-1", 1, {"total": 3}),
        ("order-2", 1, {"total": 5}),
    ]
    assert run_cli("read", "order-2", "--json", *url, cwd=tmp_path).json_lines() == events[1:]
    streams = run_cli("streams", "--json", *url, cwd=tmp_path).json_lines()
    assert [s["stream_id"] for s in streams] == ["order-1", "order-2"]
    info = run_cli("info", "--json", *url, cwd=tmp_path).json_lines()[0]
    assert (info["backend"], info["events"], info["streams"]) == ("postgresql", 2, 2)
    assert info["schema"]["pending"] == []
    assert info["size_bytes"] > 8192  # the schema's tables and indexes, a page each at least

    exported = run_cli("export", "-", *url, cwd=tmp_path)
    assert [json.loads(line)["event_id"] for line in exported.out.splitlines()] == [
        e["event_id"] for e in events
    ]
    back = f"sqlite:///{tmp_path / 'back.db'}"
    assert run_cli("import", "-", "--url", back, cwd=tmp_path, stdin=exported.out).code == 0
    assert run_cli("import", "-", "--url", back, cwd=tmp_path, stdin=exported.out).code == 0
    with chronik.connect(back) as store:
        assert [str(e.event_id) for e in store.read_all()] == [e["event_id"] for e in events]

    assert "does not exist" in one_error_line(run_cli("read", "order-9", *url, cwd=tmp_path))
    conflict = run_cli("append", "order-1", "X", "{}", "--expected-version", "0", *url, cwd=tmp_path)
    assert "order-1" in one_error_line(conflict)


def test_a_postgres_url_that_does_not_open_is_one_line(tmp_path: Path, postgres_url: str) -> None:
    bad = "postgresql://nobody@127.0.0.1:1/none"
    assert "127.0.0.1" in one_error_line(run_cli("streams", "--url", bad, cwd=tmp_path))
    missing = f"{postgres_url}{'&' if '?' in postgres_url else '?'}schema=chronik_never_made_here"
    assert "no chronik store" in one_error_line(run_cli("log", "--url", missing, cwd=tmp_path))


APP = """
from chronik.projections import FailurePolicy, Projection

ACCEPT = {accept}


def placed(event, tx):
    if event.data["total"] < 0 and not ACCEPT:
        raise ValueError("a negative total")
    tx.append(f"seen-{{event.stream_id}}", [NewEvent("Seen", {{}})])


from chronik import NewEvent

projections = [Projection("seen", {{"OrderPlaced": placed}})]
policies = {{"seen": FailurePolicy(retries=0, on_failure="park")}}
"""


def test_projections_dead_letters_verify_and_migrate_on_postgres(
    tmp_path: Path, postgres_store_url: str
) -> None:
    url = ["--url", postgres_store_url]
    (tmp_path / "shop.py").write_text(APP.format(accept=False))
    with chronik.connect(postgres_store_url) as store:
        for n, total in enumerate([3, -1, -2, 4], 1):
            store.append(f"order-{n}", [NewEvent("OrderPlaced", {"total": total})])

    ran = run_cli("projections", "run", "seen", "--app", "shop", *url, cwd=tmp_path)
    assert ran.code == 0, ran.err
    assert "handled 2 events, parked 2" in ran.out
    letters = run_cli("dead-letters", "list", "seen", "--json", *url, cwd=tmp_path).json_lines()
    assert [d["stream_id"] for d in letters] == ["order-2", "order-3"]
    [status] = run_cli(
        "projections", "status", "seen", "--json", "--app", "shop", *url, cwd=tmp_path
    ).json_lines()
    assert (status["status"], status["dead_letters"], status["lag_events"]) == ("live", 2, 0)

    skip = run_cli("dead-letters", "skip", "seen", str(letters[1]["position"]), *url, cwd=tmp_path)
    assert skip.code == 0, skip.err
    (tmp_path / "shop.py").write_text(APP.format(accept=True))
    replay = run_cli("dead-letters", "replay", "seen", "--all", "--app", "shop", *url, cwd=tmp_path)
    assert replay.code == 0, replay.err
    assert run_cli("dead-letters", "list", "--json", *url, cwd=tmp_path).json_lines() == []
    with chronik.connect(postgres_store_url) as store:
        assert store.stream_info("seen-order-2").version == 1, "the replayed handler's append committed"
        assert not store.stream_info("seen-order-3").exists, "the skipped event was not handled"

    rebuilt = run_cli("projections", "rebuild", "seen", "--app", "shop", *url, cwd=tmp_path)
    assert rebuilt.code == 0, rebuilt.err
    assert run_cli("projections", "reset", "seen", "--app", "shop", *url, cwd=tmp_path).code == 0

    verified = run_cli("verify", *url, cwd=tmp_path)
    assert verified.code == 0, verified.err
    assert "no problems" in verified.out
    [check] = run_cli("migrate", "--check", "--json", *url, cwd=tmp_path).json_lines()
    assert check["pending"] == [] and check["applied"]


def test_migrate_creates_a_postgres_store(tmp_path: Path, postgres_store_url: str) -> None:
    check = run_cli("migrate", "--check", "--url", postgres_store_url, cwd=tmp_path)
    assert check.code == 1 and "needs migrations" in check.out
    assert "applied" in run_cli("migrate", "--url", postgres_store_url, cwd=tmp_path).out
    assert run_cli("migrate", "--check", "--url", postgres_store_url, cwd=tmp_path).code == 0
