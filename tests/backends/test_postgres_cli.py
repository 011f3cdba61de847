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
