"""The narrated demo runs, twice on the same file, from the library and from the CLI."""

from __future__ import annotations

import io
import re
from pathlib import Path

from click.testing import CliRunner
from rich.console import Console

from chronik.cli import main
from chronik.demo import run_demo


def _run(path: Path, width: int = 120) -> str:
    out = io.StringIO()
    run_demo(path, console=Console(file=out, width=width, color_system=None))
    return out.getvalue()


def test_the_demo_runs_twice_on_the_same_file(tmp_path: Path) -> None:
    path = tmp_path / "demo.db"
    first = _run(path)
    for sight in (
        "OrderError: this order was submitted",
        "reserved after a conflict",
        "NotEnoughSeats: PyCon has 0 seats left",
        "InsufficientFunds",
        "already_handled=True",
        "The snapshot: version 5",
        "Time travel",
        '{"amount":120}',
        "audit trail of account-ada",
    ):
        assert sight in first
    second = _run(path)
    assert "Starting afresh: removing the previous demo file" in second
    assert "Starting afresh" not in first
    assert second.count("The store now holds 15 events in 3 streams") == 1


def test_the_demo_from_the_command_line(tmp_path: Path) -> None:
    runner = CliRunner()
    path = tmp_path / "cli-demo.db"
    for _ in range(2):
        result = runner.invoke(main, ["demo", "--db", str(path)])
        assert result.exit_code == 0, result.output
        assert "The store now holds 15 events in 3 streams" in result.output
    assert path.exists()


def _words(text: str) -> set[str]:
    # Digits vary between runs (times, lag); rules and table borders vary with the width.
    words = set(re.sub(r"\d+", "0", text).split())
    return {w for w in words if not all("\u2500" <= c <= "\u257f" for c in w)}


def test_the_demo_fits_80_columns_without_splitting_a_word(tmp_path: Path) -> None:
    # What a word is at 80 columns must be a word of the same demo on a wide terminal:
    # a word folded across lines ("fountain-pe" / "n'") or cut short ("2,500.0") is not.
    narrow = _run(tmp_path / "demo.db", width=80)
    wide = _run(tmp_path / "demo.db", width=200)
    assert max(len(line) for line in narrow.splitlines()) <= 80
    assert sorted(_words(narrow) - _words(wide)) == []
    assert "…" not in narrow
