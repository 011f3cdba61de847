"""The benchmark harness runs end to end at its tiny size and writes complete output.

These tests prove that ``python -m benchmarks`` works; they assert the shape of
``bench.json`` and ``bench.md``, never a timing (the figures come from ``make bench``).
"""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from chronik.testing.services import NATS, POSTGRES, reachable

ROOT = Path(__file__).resolve().parents[2]
WORKLOADS = {
    "sqlite": {"1", "2", "3", "4", "5", "6", "7", "a", "b", "d", "e", "f", "g", "h", "i"},
    "postgres": {"1", "2", "3", "4", "5", "6", "7", "a", "c", "d", "e", "f", "g", "h", "i"},
}
# The figures a contender has in a workload it is otherwise n/a for.
PARTLY = {("eventsourcing", "h.load_rss_mib"), ("eventsourcing", "h.load_rss_x")}
ALL = ["1", "2", "3", "4", "5", "6", "7", "a", "b", "c", "d", "e", "f", "g", "h", "i"]
CONTENDERS = ("chronik", "eventsourcing", "raw")
# What eventsourcing has no counterpart for, per backend (shown as n/a, with why):
# on PostgreSQL it loads workload h's aggregate but cannot save its 100,000 events.
NOT_APPLICABLE = {"sqlite": {"d", "e", "i"}, "postgres": {"h", "i"}}

pytestmark = pytest.mark.slow


def _needs_eventsourcing() -> None:
    if importlib.util.find_spec("eventsourcing") is None:
        pytest.skip("eventsourcing is not installed: pip install -r benchmarks/requirements.txt")


def _python_m(module: str, *args: str, timeout: int) -> str:
    """Run ``python -m module args`` in the checkout; its standard output, or fail with both."""
    env = {**os.environ, "CHRONIK_BENCH_POSTGRES_URL": POSTGRES.url, "CHRONIK_BENCH_NATS_URL": NATS.url}
    done = subprocess.run(
        [sys.executable, "-m", module, *args],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
    assert done.returncode == 0, f"python -m {module} failed:\n{done.stdout}\n{done.stderr}"
    return done.stdout


def _run(backend: str, tmp_path: Path, *options: str) -> tuple[dict[str, Any], str]:
    out = tmp_path / "out"
    workdir = str(tmp_path / "databases")
    args = ["--quick", "--backend", backend, "--out", str(out), "--workdir", workdir, *options]
    _python_m("benchmarks", *args, timeout=900)
    result: dict[str, Any] = json.loads((out / "bench.json").read_text(encoding="utf-8"))
    return result, (out / "bench.md").read_text(encoding="utf-8")


def _check(result: dict[str, Any], markdown: str, backend: str) -> dict[str, Any]:
    """Every workload and figure present, every contender measured, every ratio computed."""
    assert result["meta"]["workloads"] == ALL
    assert result["meta"]["versions"]["eventsourcing"].startswith("9.5")
    (ran,) = result["backends"]
    assert ran["backend"] == backend
    assert ran["status"] == "ran", ran["reason"]
    assert ran["errors"] == [], ran["errors"]
    rows = [row for row in ran["rows"] if row["variant"] is None]
    assert {row["workload"] for row in rows} == WORKLOADS[backend]
    keys = {row["key"] for row in rows}
    assert len(keys) == len(rows), "a figure appears twice"
    available = [name for name in CONTENDERS if ran["contenders"][name]["available"]]
    assert "eventsourcing" in available
    assert "raw" in available
    absent = {(e["workload"], e["contender"]) for e in ran["not_applicable"]}
    assert absent == {(w, "eventsourcing") for w in NOT_APPLICABLE[backend]}
    assert all(e["reason"] for e in ran["not_applicable"])
    for row in rows:
        for name in available:
            if (row["workload"], name) in absent and (name, row["key"]) not in PARTLY:
                assert row["values"][name] is None, (row["key"], name)
                continue
            assert isinstance(row["values"][name], (int, float)), (row["key"], name)
            assert row["values"][name] >= 0, (row["key"], name)
        if "chronik" in available:
            comparable = row["unit"].endswith("/s") or row["unit"] == "ms"
            for other in ("eventsourcing", "raw"):
                ratio = row["ratios"][other]
                expected = comparable and row["values"][other] is not None
                assert (ratio is not None) == expected, (row["key"], other, ratio)
            for target in row["targets"]:
                assert isinstance(target["met"], bool), (row["key"], target)
    assert any(row["targets"] for row in rows), "no target of the issue is shown"
    assert f"| figure | unit | {' | '.join(CONTENDERS)} | chronik/eventsourcing | chronik/raw |" in markdown
    for row in rows:
        assert row["title"] in markdown
    assert isinstance(ran, dict)
    return ran


def test_bench_runs_on_sqlite(tmp_path: Path) -> None:
    _needs_eventsourcing()
    result, markdown = _run("sqlite", tmp_path, "--extras")
    ran = _check(result, markdown, "sqlite")
    assert "w2.command_snapshot_events_per_s" in {row["key"] for row in ran["rows"]}
    assert ran["contenders"]["chronik"]["available"], ran["contenders"]["chronik"]["reason"]
    for name in CONTENDERS:
        assert ran["contenders"][name]["info"]["synchronous"] == "FULL", name
    assert any(row["variant"] == "chronik-normal" for row in ran["rows"]), "no labelled NORMAL row"
    _check_fast(ran, "eventsourcing.sqlite")
    assert result["unmeasured"] == []
    check = result["validation"]
    assert check["encode_checked_us"] > 0 and check["encode_unchecked_us"] > 0
    assert "Checking events on write: encoding a Deposited" in markdown


def test_figures_beyond_the_issue_are_measured_only_when_asked(tmp_path: Path) -> None:
    _needs_eventsourcing()
    result, markdown = _run("sqlite", tmp_path, "--only", "2", "--no-normal", "--no-fast")
    (ran,) = result["backends"]
    keys = [row["key"] for row in ran["rows"]]
    assert keys == ["w2.events_per_s", "w2.snapshot_events_per_s"]
    assert "load the aggregate first" not in markdown


@pytest.mark.postgres
def test_bench_runs_on_postgres(tmp_path: Path) -> None:
    _needs_eventsourcing()
    POSTGRES.require()
    result, markdown = _run("postgres", tmp_path, "--extras")
    ran = _check(result, markdown, "postgres")
    chronik = ran["contenders"]["chronik"]
    assert chronik["available"], chronik["reason"]
    assert all(row["values"]["chronik"] is not None for row in ran["rows"] if row["variant"] is None)
    assert result["unmeasured"] == []
    _check_fast(ran, "eventsourcing.postgres")
    # 4 and 8 writers at the quick size: the 64 of the full run need 64 connections.
    titles = [row["title"] for row in ran["rows"] if row["workload"] == "c"]
    assert titles == ["c. 4 writers x 5 single-event commands", "c. 8 writers x 5 single-event commands"]
    # eventsourcing's own application, persisting through chronik.compat.eventsourcing
    # (issue 20): a labelled row under eventsourcing's figure, with the ratio between them.
    on_chronik = ran["contenders"]["eventsourcing-on-chronik"]
    assert on_chronik["available"], on_chronik["reason"]
    assert on_chronik["info"]["persistence"] == "chronik.compat.eventsourcing"
    assert ran["contenders"]["eventsourcing"]["info"]["persistence"] == "eventsourcing.postgres"
    rows = [row for row in ran["rows"] if row["variant"] == "eventsourcing-on-chronik"]
    assert [row["key"] for row in rows] == [
        "w1.events_per_s",
        "w1.p50_ms",
        "w1.p99_ms",
        "w2.events_per_s",
        "w2.snapshot_events_per_s",
        "w2.command_snapshot_events_per_s",
    ]
    for row in rows:
        assert row["values"]["eventsourcing"] > 0, row["key"]
        assert row["values"]["chronik"] is None and row["values"]["raw"] is None, row["key"]
        assert row["ratios"]["eventsourcing"] > 0 and row["ratios"]["raw"] is None, row["key"]
    value = f"{rows[0]['values']['eventsourcing']:,.0f}"
    ratio = f"{rows[0]['ratios']['eventsourcing']:.2f}x"
    title = "1.   the same, eventsourcing on chronik's PostgreSQL store"
    assert f"| {title} | events/s |  | {value} |  | {ratio} |  |" in markdown


@pytest.mark.nats
def test_bench_runs_on_nats(tmp_path: Path) -> None:
    # chronik on NATS against raw nats-py, for the workloads of issue 13 (eventsourcing
    # has no NATS store: its column says so, and no ratio is made with it).
    _needs_eventsourcing()
    if not reachable(NATS.url, NATS.port):
        pytest.skip(f"NATS is not reachable at {NATS.url}")
    result, markdown = _run("nats", tmp_path)
    (ran,) = result["backends"]
    assert (ran["backend"], ran["status"]) == ("nats", "ran"), ran["reason"]
    assert ran["errors"] == [], ran["errors"]
    contenders = ran["contenders"]
    assert contenders["chronik"]["available"], contenders["chronik"]["reason"]
    assert contenders["raw"]["available"], contenders["raw"]["reason"]
    assert contenders["eventsourcing"] == {
        "available": False,
        "reason": "RuntimeError: eventsourcing has no NATS store",
        "info": {},
    }
    rows = [row for row in ran["rows"] if row["variant"] is None]
    assert {row["workload"] for row in rows} == {"1", "2", "3", "5", "6"}
    for row in rows:
        for name in ("chronik", "raw"):
            assert isinstance(row["values"][name], (int, float)) and row["values"][name] >= 0, (
                row["key"],
                name,
            )
        assert row["values"]["eventsourcing"] is None
        assert row["ratios"]["eventsourcing"] is None
        assert (row["ratios"]["raw"] is not None) == (row["unit"] in ("events/s", "ms")), row["key"]
    assert "### NATS JetStream" in markdown
    assert "| 1. 40 single-event commands | events/s |" in markdown


def _check_fast(ran: dict[str, Any], persistence: str) -> None:
    """eventsourcing on its fastest documented settings: labelled rows, chronik's ratio over them."""
    fast = ran["contenders"]["eventsourcing-fast"]
    assert fast["available"], fast["reason"]
    assert fast["info"]["persistence"] == persistence
    rows = [row for row in ran["rows"] if row["variant"] == "eventsourcing-fast"]
    assert {row["workload"] for row in rows} == {"1", "2", "3", "4", "5", "6", "a"}
    for row in rows:
        assert row["values"]["eventsourcing"] > 0, row["key"]
        assert row["values"]["chronik"] is None and row["values"]["raw"] is None, row["key"]
        comparable = row["unit"].endswith("/s") or row["unit"] == "ms"
        assert (row["ratios"]["eventsourcing"] is not None) == comparable, row["key"]


def _probe(*args: str) -> str:
    return _python_m("benchmarks.probe", "--rounds", "1", "--per-round", "5", *args, timeout=300)


def _probed(output: str, title: str) -> dict[str, float]:
    """The layers the probe printed under ``title``, as name: microseconds."""
    lines = output.splitlines()
    first = lines.index(title) + 1
    layers = {}
    for line in lines[first : first + 4]:
        name, micros, *_ = line.split()
        layers[name] = float(micros)
    return layers


def test_probe_times_every_layer_of_a_one_event_write_on_sqlite() -> None:
    layers = _probed(_probe("--backend", "sqlite"), "SQLite (WAL, synchronous=FULL)")
    assert set(layers) == {"raw", "append", "start", "handle"}
    assert all(micros > 0 for micros in layers.values())


@pytest.mark.postgres
def test_probe_times_every_layer_of_a_one_event_write_on_postgres() -> None:
    POSTGRES.require()
    layers = _probed(_probe("--backend", "postgres"), "PostgreSQL (synchronous_commit=on)")
    assert set(layers) == {"raw", "append", "start", "handle"}
    assert all(micros > 0 for micros in layers.values())


def test_the_soak_prints_memory_over_time_and_the_figure(tmp_path: Path) -> None:
    out = tmp_path / "soak.json"
    args = [
        "--minutes",
        "0.05",
        "--backlog",
        "1000",
        "--samples",
        "2",
        "--workdir",
        str(tmp_path),
        "--out",
        str(out),
    ]
    printed = _python_m("benchmarks.soak", *args, timeout=300)
    assert "soak figure: RSS" in printed and "at the start of the steady phase" in printed
    result = json.loads(out.read_text(encoding="utf-8"))
    assert result["handled"] == result["events"] >= 1000  # every event written was handled
    assert result["rss_start_mib"] > 0 and result["rss_end_mib"] > 0
    assert result["samples"][0]["phase"] == "caught up"
    assert result["samples"][-1]["phase"] == "end" and result["samples"][-1]["lag"] == 0


def _dcb_result(out: Path) -> dict[str, Any]:
    result: dict[str, Any] = json.loads((out / "dcb.json").read_text(encoding="utf-8"))
    assert result["meta"]["versions"]["eventsourcing"].startswith("9.5")
    return result


def _dcb_rows(backend: dict[str, Any], eventsourcing: bool) -> None:
    """Every figure measured for chronik and its handler row, and for eventsourcing where it can run."""
    assert backend["status"] == "ran", backend["reason"]
    assert backend["errors"] == [], backend["errors"]
    assert [row["workload"] for row in backend["rows"]] == ["disjoint", "disjoint", "contended"]
    for row in backend["rows"]:
        values = row["values"]
        for name in ("chronik", "chronik-handler"):
            assert values[name]["decisions_per_s"] > 0, (row["key"], name)
        if eventsourcing:
            assert values["eventsourcing"]["decisions_per_s"] > 0, row["key"]
            assert row["ratio"] > 0 and row["handler_ratio"] > 0, row["key"]
        else:
            assert values["eventsourcing"] is None and row["ratio"] is None, row["key"]


def test_dcb_bench_runs_in_memory_against_eventsourcings_popo_recorder(tmp_path: Path) -> None:
    _needs_eventsourcing()
    out = tmp_path / "out"
    _python_m("benchmarks.dcb", "--quick", "--backend", "memory", "--out", str(out), timeout=300)
    result = _dcb_result(out)
    (memory,) = result["backends"]
    _dcb_rows(memory, eventsourcing=True)
    assert "eventsourcing.dcb.popo" in memory["contenders"]["eventsourcing"]["info"]["api"]
    assert result["scaling"] is None
    assert "| figure | chronik | eventsourcing.dcb | chronik/eventsourcing |" in (out / "dcb.md").read_text()


def test_dcb_bench_on_sqlite_says_eventsourcing_has_no_recorder_there(tmp_path: Path) -> None:
    _needs_eventsourcing()
    out = tmp_path / "out"
    args = ["--quick", "--backend", "sqlite", "--out", str(out), "--workdir", str(tmp_path)]
    printed = _python_m("benchmarks.dcb", *args, timeout=300)
    (sqlite,) = _dcb_result(out)["backends"]
    _dcb_rows(sqlite, eventsourcing=False)
    reason = sqlite["contenders"]["eventsourcing"]["reason"]
    assert "has no sqlite DCB recorder" in reason
    assert f"eventsourcing: not measured — {reason}" in (out / "dcb.md").read_text()
    assert "has no sqlite DCB recorder" in printed
    assert sqlite["contenders"]["chronik"]["info"]["synchronous"] == "FULL"


@pytest.mark.postgres
def test_dcb_bench_runs_on_postgres_from_make_bench_with_the_series_by_writers(tmp_path: Path) -> None:
    # What `make bench` runs, reduced to its DCB section (--only dcb).
    _needs_eventsourcing()
    POSTGRES.require()
    out = tmp_path / "out"
    _python_m(
        "benchmarks", "--quick", "--only", "dcb", "--backend", "postgres", "--out", str(out), timeout=900
    )
    assert not (out / "bench.json").exists()  # no numbered workload was asked for
    result = _dcb_result(out)
    (postgres,) = result["backends"]
    _dcb_rows(postgres, eventsourcing=True)
    for name in ("chronik", "eventsourcing"):
        assert postgres["contenders"][name]["info"]["synchronous_commit"], name
    contended = postgres["rows"][-1]["values"]
    assert contended["chronik"]["decisions_per_s"] > 0
    series = result["scaling"]["series"]
    assert [point["writers"] for point in series] == [1, 2]
    for point in series:
        for column in ("chronik/processes", "chronik/threads", "eventsourcing/processes"):
            assert point["values"][column]["decisions_per_s"] > 0, (point["writers"], column)
        assert point["ratio"] > 0
        if sys.platform == "linux":  # the backends' CPU comes from /proc
            assert point["values"]["chronik/processes"]["server_cpu_us"] > 0
    markdown = (out / "dcb.md").read_text()
    assert "### DCB on PostgreSQL: disjoint tags, decisions per second by writers" in markdown


def _backlog(tmp_path: Path, backend: str) -> tuple[dict[str, Any], str]:
    out = tmp_path / "backlog.json"
    args = ["--quick", "--backends", backend, "--workdir", str(tmp_path), "--out", str(out)]
    if backend == "postgres":
        args += ["--postgres-url", POSTGRES.url]
    printed = _python_m("benchmarks.backlog", *args, timeout=300)
    result: dict[str, Any] = json.loads(out.read_text(encoding="utf-8"))
    return result, printed


def _check_backlog(result: dict[str, Any], printed: str, backend: str) -> None:
    assert "catch-up figure" in printed and "slow-consumer figure" in printed
    rows = result["catch_up"]
    assert {(r["kind"], r["backlog"]) for r in rows} == {
        (kind, size) for kind in ("subscription", "projection runner") for size in (200, 2000)
    }
    for row in rows:
        assert row["backend"] == backend
        assert row["events"] == row["backlog"], row  # every event of the backlog handled
        assert row["rss_peak_mib"] >= row["rss_before_mib"] > 0
    [slow] = result["slow_consumers"]
    assert slow["backend"] == backend and slow["alone"] > 0
    for kind in ("outside", "inside"):
        assert slow[kind]["events_per_s"] >= 0 and isinstance(slow[kind]["ratio"], float)
        assert f"({slow[kind]['ratio']:.2f}x)" in printed


def test_the_backlog_benchmark_prints_its_figures_on_sqlite(tmp_path: Path) -> None:
    result, printed = _backlog(tmp_path, "sqlite")
    _check_backlog(result, printed, "sqlite")
    assert not list(tmp_path.glob("chronik_backlog_*.db")), "a store was left behind"


@pytest.mark.postgres
def test_the_backlog_benchmark_prints_its_figures_on_postgres(tmp_path: Path) -> None:
    POSTGRES.require()
    result, printed = _backlog(tmp_path, "postgres")
    _check_backlog(result, printed, "postgres")
