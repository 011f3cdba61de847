"""The command line on a SQLite store, as a subprocess: looking inside, appending, moving.

What a user relies on: JSON Lines with the documented fields, one clear line and
exit status 1 on any error (2 for wrong usage), and an import that keeps versions and
ids, writes nothing twice, and stops on a bad line saying where to resume.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

import chronik
from chronik import NewEvent

from ._cli import Chronik, Result

EVENT_FIELDS = {
    "stream_id",
    "version",
    "position",
    "type",
    "schema_version",
    "data",
    "metadata",
    "event_id",
    "recorded_at",
    "checkpoint",
    "tags",
}


def one_error_line(result: Result, code: int = 1) -> str:
    """The error: one line (wrong usage, exit status 2: click's usage lines, then one line)."""
    assert result.code == code, (result.out, result.err)
    lines = result.err.strip().splitlines()
    assert "Traceback" not in result.err
    if code == 2:
        assert lines[0].startswith("Usage:"), result.err
        lines = lines[-1:]
    assert len(lines) == 1, result.err
    return lines[0]


def seed(path: Path) -> None:
    with chronik.connect(f"sqlite:///{path}") as store:
        store.append("order-1", [NewEvent("OrderPlaced", {"total": 30}, {"user": "ada"})])
        store.append("order-2", [NewEvent("OrderPlaced", {"total": 12})])
        store.append("order-1", [NewEvent("OrderShipped", {"carrier": "post"})])
        store.append("cart-7", [NewEvent("ItemAdded", {"sku": "pen"})])


def test_help_lists_every_command_on_one_line(cli: Chronik) -> None:
    result = cli("--help")
    assert result.code == 0
    commands = result.out.split("Commands:")[1].strip().splitlines()
    names = [line.split()[0] for line in commands]
    assert names == sorted(names)
    expected = {"append", "copy", "demo", "export", "import", "info", "log", "read", "streams", "tail"}
    assert expected <= set(names)
    assert all(len(line.split()) > 1 for line in commands), "every command has its line of help"


def test_append_then_read_as_json_lines(cli: Chronik, tmp_path: Path) -> None:
    first = cli("append", "order-1", "OrderPlaced", '{"total": 30}', "--metadata", '{"user": "ada"}')
    assert first.code == 0, first.err
    assert "version 1" in first.out
    second = cli(
        "append", "order-1", "OrderShipped", "-", "--expected-version", "1", "--json", stdin='{"by": "post"}'
    )
    assert second.json_lines()[0]["version"] == 2

    events = cli("read", "order-1", "--json").json_lines()
    assert [set(e) for e in events] == [EVENT_FIELDS, EVENT_FIELDS]
    assert [(e["version"], e["type"], e["data"]) for e in events] == [
        (1, "OrderPlaced", {"total": 30}),
        (2, "OrderShipped", {"by": "post"}),
    ]
    assert events[0]["metadata"] == {"user": "ada"}
    with chronik_store(tmp_path) as store:
        stored = store.read_stream("order-1")
        assert [str(e.event_id) for e in stored] == [e["event_id"] for e in events]
        assert [str(e.checkpoint) for e in stored] == [e["checkpoint"] for e in events]

    backwards = cli("read", "order-1", "--backwards", "--limit", "1", "--json").json_lines()
    assert [e["version"] for e in backwards] == [2]
    people = cli("read", "order-1", "--metadata")
    assert people.code == 0
    assert '"total": 30' in people.out and '"user": "ada"' in people.out


def chronik_store(tmp_path: Path) -> chronik.Store:
    return chronik.connect(f"sqlite:///{tmp_path / 'chronik.db'}")


def test_append_many_from_json_lines_on_stdin(cli: Chronik, tmp_path: Path) -> None:
    lines = "\n".join(
        json.dumps(line)
        for line in [
            {"stream_id": "cart-1", "type": "ItemAdded", "data": {"sku": "a"}},
            {"stream_id": "cart-1", "type": "ItemAdded", "data": {"sku": "b"}, "metadata": {"user": "bo"}},
            {"stream_id": "cart-2", "type": "ItemAdded", "data": {"sku": "c"}, "expected_version": 0},
        ]
    )
    result = cli("append", "--json", stdin=lines + "\n")
    assert result.code == 0, result.err
    assert [(r["stream_id"], r["version"]) for r in result.json_lines()] == [
        ("cart-1", 1),
        ("cart-1", 2),
        ("cart-2", 1),
    ]
    with chronik_store(tmp_path) as store:
        assert store.read_stream("cart-1")[1].metadata == {"user": "bo"}

    conflict = cli(
        "append", stdin='{"stream_id": "cart-2", "type": "X", "data": {}, "expected_version": 0}\n'
    )
    line = one_error_line(conflict)
    assert "line 1" in line and "cart-2" in line and "expected version 0" in line


def test_append_refuses_a_conflict_and_bad_json_in_one_line(cli: Chronik) -> None:
    cli("append", "order-1", "OrderPlaced", "{}")
    line = one_error_line(cli("append", "order-1", "OrderPlaced", "{}", "--expected-version", "no-stream"))
    assert "order-1" in line and "actual version 1" in line
    assert "DATA is not JSON" in one_error_line(cli("append", "order-1", "OrderPlaced", "{oops"))
    assert "--metadata must be a JSON object" in one_error_line(
        cli("append", "order-1", "X", "{}", "--metadata", "[1]")
    )
    assert "expected-version" in one_error_line(
        cli("append", "order-1", "X", "{}", "--expected-version", "soon"), code=2
    )


def test_streams_log_and_info(cli: Chronik, tmp_path: Path) -> None:
    seed(tmp_path / "chronik.db")
    streams = cli("streams", "--json").json_lines()
    assert [(s["stream_id"], s["version"]) for s in streams] == [
        ("cart-7", 1),
        ("order-1", 2),
        ("order-2", 1),
    ]
    assert [
        s["stream_id"] for s in cli("streams", "--category", "order", "--limit", "1", "--json").json_lines()
    ] == ["order-1"]
    table = cli("streams")
    assert table.code == 0 and "order-2" in table.out

    log = cli("log", "--json").json_lines()
    assert [(e["stream_id"], e["version"]) for e in log] == [
        ("order-1", 1),
        ("order-2", 1),
        ("order-1", 2),
        ("cart-7", 1),
    ]
    after = cli("log", "--after", log[1]["checkpoint"], "--type", "OrderShipped", "--json").json_lines()
    assert [e["type"] for e in after] == ["OrderShipped"]
    assert [e["stream_id"] for e in cli("log", "--category", "cart", "--json").json_lines()] == ["cart-7"]
    assert "checkpoint" in one_error_line(cli("log", "--after", "nonsense"), code=2)

    info = cli("info", "--json").json_lines()[0]
    assert (info["backend"], info["events"], info["streams"]) == ("sqlite", 4, 3)
    assert info["head"] == log[-1]["checkpoint"]
    assert info["categories"] == [
        {"category": "cart", "streams": 1, "events": 1},
        {"category": "order", "streams": 2, "events": 3},
    ]
    assert info["schema"]["pending"] == [] and info["schema"]["applied"]
    db = tmp_path / "chronik.db"
    on_disk = db.stat().st_size + (
        db.with_name("chronik.db-wal").stat().st_size if db.with_name("chronik.db-wal").exists() else 0
    )
    assert info["size_bytes"] == on_disk > 0
    people = cli("info")
    assert people.code == 0 and "order" in people.out and "up to date" in people.out
    assert "size: " in people.out and "KiB" in people.out


def test_the_url_comes_from_the_option_then_the_environment(cli: Chronik, tmp_path: Path) -> None:
    seed(tmp_path / "elsewhere.db")
    by_env = cli("streams", "--json", CHRONIK_URL="sqlite:///elsewhere.db").json_lines()
    by_option = cli("streams", "--json", "--url", "sqlite:///elsewhere.db").json_lines()
    assert by_env == by_option and len(by_env) == 3


def test_bad_input_is_one_line_and_the_right_exit_status(cli: Chronik, tmp_path: Path) -> None:
    seed(tmp_path / "chronik.db")
    assert "stream 'order-9' does not exist" in one_error_line(cli("read", "order-9"))
    assert "unknown scheme" in one_error_line(cli("streams", "--url", "nosuch://x"))
    missing = one_error_line(cli("log", "--url", "sqlite:///typo.db"))
    assert "no chronik store at sqlite:///typo.db" in missing
    assert not (tmp_path / "typo.db").exists(), "a mistyped file name must not become an empty store"
    (tmp_path / "notes.db").write_bytes(b"this is not a database, just text " * 100)
    assert "notes.db" in one_error_line(cli("streams", "--url", "sqlite:///notes.db"))
    assert "Usage:" in cli("read").err and cli("read").code == 2
    assert cli("frobnicate").code == 2


def test_export_then_import_keeps_versions_and_ids_and_is_idempotent(cli: Chronik, tmp_path: Path) -> None:
    seed(tmp_path / "chronik.db")
    exported = cli("export", "events.jsonl")
    assert exported.code == 0, exported.err
    lines = (tmp_path / "events.jsonl").read_text().splitlines()
    assert len(lines) == 4 and set(json.loads(lines[0])) == EVENT_FIELDS
    assert cli("export", "-", "--category", "cart").json_lines()[0]["stream_id"] == "cart-7"

    first = cli("import", "events.jsonl", "--url", "sqlite:///copy.db")
    assert first.code == 0, first.err
    again = cli("import", "-", "--url", "sqlite:///copy.db", stdin=(tmp_path / "events.jsonl").read_bytes())
    assert again.code == 0, again.err
    with chronik_store(tmp_path) as source, chronik.connect(f"sqlite:///{tmp_path / 'copy.db'}") as copy:
        assert [_identity(e) for e in copy.read_all()] == [_identity(e) for e in source.read_all()]
        assert str(copy.head()) == "sqlite:4", "the second import wrote nothing"


def _identity(e: chronik.RecordedEvent) -> tuple[object, ...]:
    return (e.stream_id, e.version, e.type, e.schema_version, e.data, e.metadata, e.event_id)


def test_a_malformed_line_stops_the_import_there_and_says_how_to_resume(cli: Chronik, tmp_path: Path) -> None:
    seed(tmp_path / "chronik.db")
    lines = cli("export", "-").out.splitlines()
    broken = [*lines[:3], '{"stream_id": "cart-7", "version": 1, "type": ', lines[3]]
    (tmp_path / "broken.jsonl").write_text("\n".join(broken) + "\n")

    line = one_error_line(cli("import", "broken.jsonl", "--url", "sqlite:///b.db"))
    assert line.startswith("Error: line 4: ")
    assert "before it is imported" in line and "tail -n +4" in line
    with chronik.connect(f"sqlite:///{tmp_path / 'b.db'}") as store:
        assert [(e.stream_id, e.version) for e in store.read_all()] == [
            ("order-1", 1),
            ("order-2", 1),
            ("order-1", 2),
        ]

    # Fixed, the whole file imports again: what is there is skipped, the rest is written.
    (tmp_path / "broken.jsonl").write_text("\n".join([*lines[:3], lines[3]]) + "\n")
    assert cli("import", "broken.jsonl", "--url", "sqlite:///b.db", "--batch-size", "2").code == 0
    with chronik.connect(f"sqlite:///{tmp_path / 'b.db'}") as store:
        assert store.stream_info("cart-7").version == 1
        assert str(store.head()) == "sqlite:4"


def test_import_refuses_lines_that_do_not_fit_the_store(cli: Chronik, tmp_path: Path) -> None:
    seed(tmp_path / "chronik.db")
    lines = [json.loads(line) for line in cli("export", "-").out.splitlines()]
    gap = [lines[0], {**lines[2], "version": 3}]
    line = one_error_line(cli("import", "-", "--url", "sqlite:///g.db", stdin=_jsonl(gap)))
    assert "line 2" in line and "contiguous" in line

    # A stream that already holds other events at those versions: named, nothing overwritten.
    cli("append", "order-1", "Other", "{}", "--url", "sqlite:///o.db")
    line = one_error_line(cli("import", "-", "--url", "sqlite:///o.db", stdin=_jsonl(lines)))
    assert "line 1" in line and "holds another event" in line
    assert "line 1" in one_error_line(cli("import", "-", stdin='{"stream_id": "x-1"}\n'))
    assert "No such file" in one_error_line(cli("import", "nothere.jsonl"), code=2)


def _jsonl(records: list[dict[str, object]]) -> str:
    return "".join(json.dumps(r) + "\n" for r in records)


def test_copy_between_stores_keeps_every_event_and_copies_only_what_is_missing(
    cli: Chronik, tmp_path: Path
) -> None:
    seed(tmp_path / "chronik.db")
    assert cli("copy", "sqlite:///chronik.db", "sqlite:///moved.db").code == 0
    with chronik_store(tmp_path) as source:
        source.append("order-2", [NewEvent("OrderShipped", {})])
    again = cli("copy", "sqlite:///chronik.db", "sqlite:///moved.db", "--batch-size", "2")
    assert again.code == 0, again.err
    with chronik_store(tmp_path) as source, chronik.connect(f"sqlite:///{tmp_path / 'moved.db'}") as moved:
        assert [_identity(e) for e in moved.read_all()] == [_identity(e) for e in source.read_all()]
    assert "no chronik store" in one_error_line(cli("copy", "sqlite:///none.db", "sqlite:///moved.db"))


@pytest.mark.parametrize(
    ("module", "ref", "message"),
    [
        (None, "nosuchmodule:app", "cannot import 'nosuchmodule'"),
        ("raise RuntimeError('boom')", "broken:app", "raised RuntimeError: boom"),
        ("x = 1", "broken:app", "has no attribute 'app'"),
        ("app = 1", "broken:app", "has none of registry, projections, process_managers"),
        ("registry = 'no'", "broken", "not a chronik.EventRegistry"),
    ],
)
def test_an_app_that_does_not_import_is_one_line(
    cli: Chronik, tmp_path: Path, module: str | None, ref: str, message: str
) -> None:
    seed(tmp_path / "chronik.db")
    if module is not None:
        (tmp_path / "broken.py").write_text(module + "\n")
    line = one_error_line(cli("info", "--app", ref))
    assert message in line


def test_tags_show_in_read_and_log_and_survive_export_and_import(cli: Chronik, tmp_path: Path) -> None:
    with chronik_store(tmp_path) as store:
        tags = ["course:c1", "student:s7"]
        store.append("course-c1", [NewEvent("StudentSubscribed", {}, tags=tags), NewEvent("Noted", {})])
    assert [e["tags"] for e in cli("read", "course-c1", "--json").json_lines()] == [tags, []]
    assert [e["tags"] for e in cli("log", "--json").json_lines()] == [tags, []]
    assert "tags course:c1 student:s7" in cli("read", "course-c1").out
    assert cli("export", "events.jsonl").code == 0
    imported = cli("import", "events.jsonl", "--url", "sqlite:///copy.db")
    assert imported.code == 0, imported.err
    copied = cli("copy", "sqlite:///chronik.db", "sqlite:///copy2.db")
    assert copied.code == 0, copied.err
    for name in ("copy.db", "copy2.db"):
        with chronik.connect(f"sqlite:///{tmp_path / name}") as copy:
            assert [e.tags for e in copy.read_all()] == [tuple(tags), ()]


def test_append_tags_events_and_query_reads_them_by_type_and_tag(cli: Chronik, tmp_path: Path) -> None:
    done = cli("append", "course-c1", "CourseDefined", '{"capacity": 2}', "--tag", "course:c1")
    assert done.code == 0, done.err
    tagged = {
        "stream_id": "sub-1",
        "type": "StudentSubscribed",
        "data": {},
        "tags": ["student:s1", "course:c1"],
    }
    plain = {"stream_id": "sub-2", "type": "StudentSubscribed", "data": {}}
    lines = "\n".join(json.dumps(line) for line in (tagged, plain))
    assert cli("append", "--tag", "course:c2", stdin=lines).code == 0
    everything = cli("query", "--tag", "course:c1", "--json").json_lines()
    assert [(e["stream_id"], e["tags"]) for e in everything] == [
        ("course-c1", ["course:c1"]),
        ("sub-1", ["course:c1", "student:s1"]),
    ]
    subscribed = cli("query", "--type", "StudentSubscribed", "--tag", "course:c2", "--json").json_lines()
    assert [(e["stream_id"], e["tags"]) for e in subscribed] == [("sub-2", ["course:c2"])]
    either = cli("query", "--type", "CourseDefined", "--type", "StudentSubscribed", "--after", "1", "--json")
    assert [e["position"] for e in either.json_lines()] == [2, 3]
    people = cli("query", "--tag", "course:c1", "--backwards", "--limit", "1")
    assert people.code == 0 and "sub-1 v1  StudentSubscribed" in people.out
    assert "1 event; head 3" in people.out
    with chronik_store(tmp_path) as store:
        read = store.read_query(chronik.Query.of(tags=["course:c1"]))
        assert [e.stream_id for e in read.events] == ["course-c1", "sub-1"]
    assert "give --type or --tag" in one_error_line(cli("query"), code=2)
    assert "a tag must be 1 to 200 characters long" in one_error_line(
        cli("append", "x-1", "X", "{}", "--tag", "")
    )
    bad_line = cli("append", stdin='{"stream_id": "x-2", "type": "X", "data": {}, "tags": "course:c1"}')
    assert "line 1: tags must be a list of strings" in one_error_line(bad_line)
