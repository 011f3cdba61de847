"""The command line operating a store: verify, migrate, projections and dead letters.

The application is a module in the working directory, named with --app or in
pyproject.toml, as a user's would be.
"""

from __future__ import annotations

import sqlite3
from pathlib import Path

import chronik
from chronik import NewEvent

from ._cli import Chronik, Result

APP = """
import msgspec
import chronik
from chronik.projections import FailurePolicy, Projection

registry = chronik.EventRegistry()


@registry.event("OrderPlaced")
class OrderPlaced(msgspec.Struct, frozen=True):
    customer: str
    total: int


def setup(tx):
    tx.execute("CREATE TABLE IF NOT EXISTS spent (customer TEXT PRIMARY KEY, total INTEGER)")


def teardown(tx):
    tx.execute("DROP TABLE IF EXISTS spent")


def placed(event, tx):
    if event.data.total < 0 and not ACCEPT_REFUNDS:
        raise ValueError("a negative total")
    tx.execute(
        "INSERT INTO spent VALUES (?, ?) ON CONFLICT (customer) DO UPDATE SET total = total + excluded.total",
        (event.data.customer, event.data.total),
    )


ACCEPT_REFUNDS = {accept}
projections = [Projection("spent", {{"OrderPlaced": placed}}, setup=setup, teardown=teardown)]
policies = {{"spent": FailurePolicy(retries=0, on_failure="park")}}
"""


def write_app(directory: Path, *, accept: bool = False) -> None:
    (directory / "shop.py").write_text(APP.format(accept=accept))


def one_error_line(result: Result) -> str:
    assert result.code == 1, (result.out, result.err)
    assert "Traceback" not in result.err
    [line] = result.err.strip().splitlines()
    return line


def spent(directory: Path) -> dict[str, int]:
    db = sqlite3.connect(directory / "chronik.db")
    try:
        return dict(db.execute("SELECT customer, total FROM spent").fetchall())
    finally:
        db.close()


def seed(directory: Path) -> None:
    with chronik.connect(f"sqlite:///{directory / 'chronik.db'}") as store:
        store.append("order-1", [NewEvent("OrderPlaced", {"customer": "ada", "total": 30})])
        store.append("order-2", [NewEvent("OrderPlaced", {"customer": "bo", "total": -5})])
        store.append("order-3", [NewEvent("OrderPlaced", {"customer": "ada", "total": 12})])


def test_projections_run_park_replay_skip_rebuild_and_reset(cli: Chronik, tmp_path: Path) -> None:
    seed(tmp_path)
    write_app(tmp_path)
    (tmp_path / "pyproject.toml").write_text('[tool.chronik]\napp = "shop"\n')

    [before] = cli("projections", "list", "--json").json_lines()
    assert (before["name"], before["kind"], before["status"], before["lag_events"]) == (
        "spent",
        "projection",
        "never run",
        3,
    )
    ran = cli("projections", "run", "spent")
    assert ran.code == 0, ran.err
    assert "handled 2 events, parked 1" in ran.out
    assert spent(tmp_path) == {"ada": 42}

    [letter] = cli("dead-letters", "list", "--json").json_lines()
    assert (letter["projection"], letter["stream_id"], letter["position"]) == ("spent", "order-2", 2)
    assert "a negative total" in letter["error"]
    shown = cli("dead-letters", "show", "spent", "2")
    assert shown.code == 0 and '"total": -5' in shown.out and "a negative total" in shown.out
    [status] = cli("projections", "status", "spent", "--json").json_lines()
    assert (status["status"], status["dead_letters"], status["lag_events"]) == ("live", 1, 0)

    # Still failing: it stays parked, and the command says so.
    again = cli("dead-letters", "replay", "spent", "2")
    assert again.code == 1
    assert again.err.splitlines() == [
        "still failing: order-2 v1 (position 2): ValueError: a negative total",
        "Error: 1 of 1 dead letters still fail; they stay parked",
    ]
    assert len(cli("dead-letters", "list", "--json").json_lines()) == 1

    write_app(tmp_path, accept=True)  # the fix is deployed
    replayed = cli("dead-letters", "replay", "spent", "--all")
    assert replayed.code == 0, replayed.err
    assert cli("dead-letters", "list", "--json").json_lines() == []
    assert spent(tmp_path) == {"ada": 42, "bo": -5}
    [status] = cli("projections", "status", "spent", "--json").json_lines()
    assert (status["status"], status["active"]) == ("live", True), "the state survives the replay"

    write_app(tmp_path)
    with chronik.connect(f"sqlite:///{tmp_path / 'chronik.db'}") as store:
        store.append("order-4", [NewEvent("OrderPlaced", {"customer": "cy", "total": -1})])
        store.append("order-5", [NewEvent("OrderPlaced", {"customer": "cy", "total": -2})])
    assert cli("projections", "run", "spent").code == 0
    assert [d["position"] for d in cli("dead-letters", "list", "spent", "--json").json_lines()] == [4, 5]
    assert cli("dead-letters", "skip", "spent", "4").code == 0
    assert [d["position"] for d in cli("dead-letters", "list", "--json").json_lines()] == [5]
    assert "no dead letter at position 4" in one_error_line(cli("dead-letters", "skip", "spent", "4"))

    rebuilt = cli("projections", "rebuild", "spent")
    assert rebuilt.code == 0, rebuilt.err
    assert "rebuilt from 2 events, parked 3" in rebuilt.out
    assert spent(tmp_path) == {"ada": 42}
    assert [d["position"] for d in cli("dead-letters", "list", "--json").json_lines()] == [2, 4, 5]

    assert cli("projections", "reset", "spent").code == 0
    [after] = cli("projections", "list", "--json").json_lines()
    assert after["status"] == "never run"
    info = cli("info", "--json").json_lines()[0]
    assert info["projections"] == []


def test_unknown_projection_and_missing_app_are_one_line(cli: Chronik, tmp_path: Path) -> None:
    seed(tmp_path)
    write_app(tmp_path)
    line = one_error_line(cli("projections", "run", "nope", "--app", "shop"))
    assert "unknown projection 'nope'" in line and "spent" in line
    assert "no application" in one_error_line(cli("projections", "rebuild", "spent"))
    assert "unknown projection 'nope'" in one_error_line(cli("projections", "status", "nope"))
    assert "no dead letter at position 9" in one_error_line(cli("dead-letters", "show", "spent", "9"))


def test_info_shows_projections_and_their_lag(cli: Chronik, tmp_path: Path) -> None:
    seed(tmp_path)
    write_app(tmp_path)
    assert cli("projections", "run", "spent", "--app", "shop").code == 0
    with chronik.connect(f"sqlite:///{tmp_path / 'chronik.db'}") as store:
        store.append("order-9", [NewEvent("OrderPlaced", {"customer": "di", "total": 1})])
    [projection] = cli("info", "--json", "--app", "shop").json_lines()[0]["projections"]
    assert (
        projection["name"],
        projection["status"],
        projection["lag_events"],
        projection["dead_letters"],
    ) == (
        "spent",
        "live",
        1,
        1,
    )


def test_verify_reports_what_is_wrong_and_exits_1(cli: Chronik, tmp_path: Path) -> None:
    seed(tmp_path)
    write_app(tmp_path)
    ok = cli("verify", "--app", "shop")
    assert ok.code == 0, ok.err
    assert "checked 3 events in 3 streams" in ok.out and "no problems" in ok.out

    with chronik.connect(f"sqlite:///{tmp_path / 'chronik.db'}") as store:
        store.append("order-1", [NewEvent("OrderPlaced", {"customer": "ada", "total": 1})])
    db = sqlite3.connect(tmp_path / "chronik.db")
    db.execute("UPDATE chronik_events SET version = 3 WHERE position = 4")  # a gap in order-1
    db.execute("""UPDATE chronik_events SET data = '{"customer": "bo"}' WHERE position = 2""")
    db.commit()
    db.close()

    # Without the application's registry the payload is valid JSON; with it, it lacks a field.
    plain = cli("verify", "--json")
    assert [(p["stream_id"], p["version"]) for p in plain.json_lines()] == [("order-1", 3)]
    assert "version 3 follows version 1" in plain.json_lines()[0]["problem"]
    assert plain.code == 1
    typed = cli("verify", "--app", "shop")
    assert typed.code == 1
    assert "order-2 v1: 'OrderPlaced' does not decode" in typed.out
    assert "order-1 v3: version 3 follows version 1" in typed.out
    assert "2 problems" in typed.err and "Traceback" not in typed.err


def test_verify_reports_an_incomplete_upcaster_chain(cli: Chronik, tmp_path: Path) -> None:
    seed(tmp_path)
    (tmp_path / "gappy.py").write_text(
        "import chronik, msgspec\n"
        "registry = chronik.EventRegistry()\n"
        "@registry.event('OrderPlaced', version=3)\n"
        "class OrderPlaced(msgspec.Struct, frozen=True):\n"
        "    customer: str\n"
        "registry.add_upcaster('OrderPlaced', 1, lambda d: d)\n"
    )
    result = cli("verify", "--app", "gappy")
    assert result.code == 1
    assert "upcaster chain for 'OrderPlaced' has a gap" in result.out


def test_migrate_creates_and_checks_a_store(cli: Chronik, tmp_path: Path) -> None:
    check = cli("migrate", "--check", "--json")
    assert check.code == 1
    [pending] = check.json_lines()
    assert pending["applied"] == [] and pending["pending"]
    assert not (tmp_path / "chronik.db").exists(), "--check writes nothing"

    applied = cli("migrate")
    assert applied.code == 0 and "applied" in applied.out
    [now] = cli("migrate", "--check", "--json").json_lines()
    assert now == {"applied": pending["pending"], "pending": []}
    assert "up to date" in cli("migrate").out
    assert "memory backend has no schema migrations" in cli("migrate", "--url", "memory://").out
