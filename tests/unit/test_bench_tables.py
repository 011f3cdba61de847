"""The README's and docs/benchmarks.md's benchmark tables are what the published run gives.

The newest run under ``benchmarks/results/`` is the published one; its tables are
generated into the documents by ``python -m benchmarks.report --readme``. These tests
fail when a document was edited by hand or the run changed without regenerating.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
if str(ROOT) not in sys.path:  # the benchmarks package lives beside src/, not in it
    sys.path.insert(0, str(ROOT))

from benchmarks import published  # noqa: E402


def test_the_documents_tables_are_generated_from_the_newest_published_run() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "benchmarks.report", "--readme", "--check"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, (
        f"{done.stdout}{done.stderr}(run .venv/bin/python -m benchmarks.report --readme)"
    )


def test_the_tables_name_the_run_they_come_from() -> None:
    run = published.latest_run()
    source = f"benchmarks/results/{run.name}"
    for document in (published.README, published.DOCS):
        assert source in document.read_text(encoding="utf-8"), document.name


def test_a_changed_figure_makes_the_documents_stale(tmp_path: Path) -> None:
    run = published.latest_run()
    result = json.loads(run.read_text(encoding="utf-8"))
    row = next(
        r for b in result["backends"] if b["status"] == "ran" for r in b["rows"] if r["values"]["chronik"]
    )
    row["values"]["chronik"] = row["values"]["chronik"] * 3 + 1
    changed = tmp_path / run.name
    changed.write_text(json.dumps(result), encoding="utf-8")
    assert published.README in published.stale(changed)


def test_check_mode_rewrites_nothing_and_says_what_is_stale(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    run = published.latest_run()
    result = json.loads(run.read_text(encoding="utf-8"))
    result["meta"]["date"] = "1999-01-01T00:00:00+00:00"
    changed = tmp_path / run.name
    changed.write_text(json.dumps(result), encoding="utf-8")
    before = published.README.read_text(encoding="utf-8")
    assert published.main(["--readme", "--check", "--run", str(changed)]) == 1
    assert published.README.read_text(encoding="utf-8") == before
    assert "README.md is stale" in capsys.readouterr().out


def test_a_run_is_named_by_its_date_time_and_machine() -> None:
    meta = {"date": "2026-12-08T02:24:44+00:00", "machine": {"processor": "AMD EPYC 7B13", "cpus": 2}}
    path = published.result_path({"meta": meta}, Path("/results"))
    assert path == Path("/results/2026-12-08-0224-amd-epyc-7b13-2cpu.json")
