"""The command line against NATS JetStream, as a subprocess: the commands that touch the
backend (info, streams, read, log, append, export, import, copy from SQLite, verify).

Each test has a JetStream stream of its own (``nats_store_url``), deleted afterwards.
"""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

import pytest

import chronik
from chronik import NewEvent, StreamWrite
from chronik.projections import CheckpointedTarget, FailurePolicy, Projection, ProjectionRunner
from tests.e2e._cli import Result, run_cli

pytestmark = pytest.mark.nats


def _identity(e: chronik.RecordedEvent) -> tuple[object, ...]:
    return (e.stream_id, e.version, e.type, e.schema_version, e.data, e.metadata, e.event_id)


def one_error_line(result: Result) -> str:
    assert result.code == 1, (result.out, result.err)
    assert "Traceback" not in result.err
    [line] = result.err.strip().splitlines()
    return line


def test_commands_on_nats(tmp_path: Path, nats_store_url: str) -> None:
    url = ["--url", nats_store_url]
    assert run_cli("append", "order-1", "OrderPlaced", '{"total": 3}', *url, cwd=tmp_path).code == 0
    lines = (
        '{"stream_id": "order-2", "type": "OrderPlaced", "data": {"total": 5}}\n'
        '{"stream_id": "cart.7 *", "type": "ItemAdded", "data": {"sku": "é"}}\n'
    )
    assert run_cli("append", *url, cwd=tmp_path, stdin=lines).code == 0
    appended = run_cli("append", "order-1", "OrderPaid", "{}", "--expected-version", "1", *url, cwd=tmp_path)
    assert appended.code == 0, appended.err
    events = run_cli("log", "--json", *url, cwd=tmp_path).json_lines()
    assert [(e["stream_id"], e["version"], e["data"]) for e in events] == [
        ("order-1", 1, {"total": 3}),
        ("order-2", 1, {"total": 5}),
        ("cart.7 *", 1, {"sku": "é"}),
        ("order-1", 2, {}),
    ]
    after = run_cli(
        "log", "--after", events[1]["checkpoint"], "--category", "order", "--json", *url, cwd=tmp_path
    )
    assert [(e["stream_id"], e["version"]) for e in after.json_lines()] == [("order-1", 2)]
    read = run_cli("read", "order-1", "--backwards", "--limit", "1", "--json", *url, cwd=tmp_path)
    assert read.json_lines() == events[3:]
    assert run_cli("read", "cart.7 *", "--json", *url, cwd=tmp_path).json_lines() == events[2:3]
    streams = run_cli("streams", "--json", *url, cwd=tmp_path).json_lines()
    assert [(s["stream_id"], s["version"]) for s in streams] == [
        ("cart.7 *", 1),
        ("order-1", 2),
        ("order-2", 1),
    ]
    ordered = run_cli("streams", "--category", "order", "--json", *url, cwd=tmp_path).json_lines()
    assert [s["stream_id"] for s in ordered] == ["order-1", "order-2"]

    info = run_cli("info", "--json", *url, cwd=tmp_path).json_lines()[0]
    assert (info["backend"], info["events"], info["streams"]) == ("nats", 4, 3)
    assert info["head"] == events[-1]["checkpoint"]
    assert info["schema"] is None  # JetStream streams have no migrations
    assert info["size_bytes"] > 0
    people = run_cli("info", *url, cwd=tmp_path)
    assert people.code == 0 and "size: " in people.out and "order" in people.out

    verified = run_cli("verify", *url, cwd=tmp_path)
    assert verified.code == 0, verified.err
    assert "no problems" in verified.out

    assert "does not exist" in one_error_line(run_cli("read", "order-9", *url, cwd=tmp_path))
    conflict = run_cli("append", "order-1", "X", "{}", "--expected-version", "0", *url, cwd=tmp_path)
    assert "order-1" in one_error_line(conflict)
    # NATS has no Dynamic Consistency Boundaries (docs/nats.md): no reads by query, no tags.
    refused = run_cli("query", "--tag", "course:c1", *url, cwd=tmp_path)
    assert "has no reads by query" in one_error_line(refused)
    tagged = run_cli("append", "course-c1", "X", "{}", "--tag", "course:c1", *url, cwd=tmp_path)
    assert "tag" in one_error_line(tagged)


def test_export_and_import_between_nats_and_sqlite(tmp_path: Path, nats_store_url: str) -> None:
    url = ["--url", nats_store_url]
    with chronik.connect(nats_store_url) as store:
        for n in range(5):
            store.append(f"order-{n % 2}", [NewEvent("OrderPlaced", {"n": n}, {"user": "ada"})])
        expected = [_identity(e) for e in store.read_all()]
    exported = run_cli("export", "-", *url, cwd=tmp_path)
    assert exported.code == 0, exported.err
    assert len(exported.out.splitlines()) == 5
    back = f"sqlite:///{tmp_path / 'back.db'}"
    for _ in range(2):  # the second import writes nothing
        imported = run_cli("import", "-", "--url", back, cwd=tmp_path, stdin=exported.out)
        assert imported.code == 0, imported.err
    with chronik.connect(back) as store:
        assert [_identity(e) for e in store.read_all()] == expected

    # And back into NATS: idempotent there too (the ids are already stored).
    again = run_cli("import", "-", *url, cwd=tmp_path, stdin=exported.out)
    assert again.code == 0, again.err
    with chronik.connect(nats_store_url) as store:
        assert [_identity(e) for e in store.read_all()] == expected
    (tmp_path / "events.jsonl").write_text(exported.out)
    exported_file = run_cli("export", str(tmp_path / "copy.jsonl"), "--category", "order", *url, cwd=tmp_path)
    assert exported_file.code == 0, exported_file.err
    assert [json.loads(line)["event_id"] for line in (tmp_path / "copy.jsonl").read_text().splitlines()] == [
        json.loads(line)["event_id"] for line in exported.out.splitlines()
    ]


@pytest.mark.slow
def test_copy_from_sqlite_to_nats_reproduces_every_event(tmp_path: Path, nats_store_url: str) -> None:
    source_url = f"sqlite:///{tmp_path / 'a.db'}"
    with chronik.connect(source_url) as source:
        for round_ in range(20):
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
                            for _ in range(1 + n % 3)
                        ],
                        round_ * (1 + n % 3),
                    )
                    for n in range(100)
                ]
            )
        expected = [_identity(e) for e in source.read_all()]
    assert len(expected) == 3_980

    copied = run_cli("copy", source_url, nats_store_url, cwd=tmp_path)
    assert copied.code == 0, copied.err
    assert "copied 3,980 events" in copied.err
    with chronik.connect(nats_store_url) as target:
        assert [_identity(e) for e in target.read_all()] == expected
        head = target.head()

    again = run_cli("copy", source_url, nats_store_url, cwd=tmp_path)
    assert again.code == 0, again.err
    with chronik.connect(nats_store_url) as target:
        assert target.head() == head, "a second copy writes nothing"


def test_a_nats_url_that_does_not_open_is_one_line(tmp_path: Path) -> None:
    line = one_error_line(
        run_cli("streams", "--url", "nats://127.0.0.1:1?stream=x&connect_timeout=1", cwd=tmp_path)
    )
    assert "127.0.0.1:1" in line


def test_dead_letters_listed_shown_and_skipped_on_nats(tmp_path: Path, nats_store_url: str) -> None:
    # A store with no transactions: the dead letters live in its key-value bucket, and
    # skip deletes one on its own.
    url = ["--url", nats_store_url]

    def placed(event: chronik.RecordedEvent, context: dict[str, int]) -> None:
        if event.data["total"] < 0:
            raise ValueError("a negative total")

    projection = Projection("seen", {"OrderPlaced": placed})
    with chronik.connect(nats_store_url) as store:
        for n, total in enumerate([3, -1, -2, 4], 1):
            store.append(f"order-{n}", [NewEvent("OrderPlaced", {"total": total})])
        policy = FailurePolicy(retries=0, on_failure="park")
        runner = ProjectionRunner(store, projection, CheckpointedTarget({}, store), policy=policy)
        runner.run_until_caught_up()
    letters = run_cli("dead-letters", "list", "seen", "--json", *url, cwd=tmp_path).json_lines()
    assert [d["stream_id"] for d in letters] == ["order-2", "order-3"]
    shown = run_cli("dead-letters", "show", "seen", str(letters[1]["position"]), *url, cwd=tmp_path)
    assert shown.code == 0 and "a negative total" in shown.out and '"total": -2' in shown.out

    skip = run_cli("dead-letters", "skip", "seen", str(letters[0]["position"]), *url, cwd=tmp_path)
    assert skip.code == 0, skip.err
    left = run_cli("dead-letters", "list", "--json", *url, cwd=tmp_path).json_lines()
    assert left == letters[1:]
    again = run_cli("dead-letters", "skip", "seen", str(letters[0]["position"]), *url, cwd=tmp_path)
    assert "no dead letter at position" in one_error_line(again)


NATS_APP = """
import sqlalchemy as sa

from chronik.projections import FailurePolicy, Projection, SQLAlchemyTarget

ACCEPT = {accept}
metadata = sa.MetaData()
totals = sa.Table(
    "totals", metadata, sa.Column("order_id", sa.String(40), primary_key=True), sa.Column("total", sa.Integer)
)


def placed(event, conn):
    if event.data["total"] < 0 and not ACCEPT:
        raise ValueError("a negative total")
    conn.execute(sa.insert(totals).values(order_id=event.stream_id, total=event.data["total"]))


projections = [
    Projection("totals", {{"OrderPlaced": placed}}, setup=metadata.create_all, teardown=metadata.drop_all)
]
policies = {{"totals": FailurePolicy(retries=0, on_failure="park")}}
# NATS has no transactions: the read model and its checkpoint live in a SQLite file.
targets = {{"totals": lambda store: SQLAlchemyTarget(metadata, "sqlite:///totals.db")}}
"""


def test_projections_run_and_dead_letters_replay_on_nats_with_the_app_s_target(
    tmp_path: Path, nats_store_url: str
) -> None:
    url = ["--url", nats_store_url]
    (tmp_path / "shop.py").write_text(NATS_APP.format(accept=False))
    with chronik.connect(nats_store_url) as store:
        for n, total in enumerate([3, -1, 4], 1):
            store.append(f"order-{n}", [NewEvent("OrderPlaced", {"total": total})])

    ran = run_cli("projections", "run", "totals", "--app", "shop", *url, cwd=tmp_path)
    assert ran.code == 0, ran.err
    assert "handled 2 events, parked 1" in ran.out
    [status] = run_cli(
        "projections", "status", "totals", "--json", "--app", "shop", *url, cwd=tmp_path
    ).json_lines()
    assert (status["dead_letters"], status["lag_events"]) == (1, 0)

    (tmp_path / "shop.py").write_text(NATS_APP.format(accept=True))
    replay = run_cli("dead-letters", "replay", "totals", "--all", "--app", "shop", *url, cwd=tmp_path)
    assert replay.code == 0, replay.err
    assert run_cli("dead-letters", "list", "--json", *url, cwd=tmp_path).json_lines() == []
    with sqlite3.connect(tmp_path / "totals.db") as db:
        rows = db.execute("SELECT order_id, total FROM totals ORDER BY order_id").fetchall()
    assert rows == [("order-1", 3), ("order-2", -1), ("order-3", 4)]

    rebuilt = run_cli("projections", "rebuild", "totals", "--app", "shop", *url, cwd=tmp_path)
    assert rebuilt.code == 0, rebuilt.err
    with sqlite3.connect(tmp_path / "totals.db") as db:
        assert db.execute("SELECT count(*) FROM totals").fetchone() == (3,)
