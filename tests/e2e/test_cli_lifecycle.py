"""``chronik delete``, ``metadata``, ``scavenge`` and ``repair``, as a user runs them."""

from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner

from chronik.cli import _lifecycle, main

from ._cli import run_cli


def _store(tmp_path: Path) -> str:
    url = f"sqlite:///{tmp_path / 'shop.db'}"
    for data in ('{"total": 1}', '{"total": 2}', '{"total": 3}'):
        assert run_cli("append", "order-1", "OrderPlaced", data, "--url", url, cwd=tmp_path).code == 0
    return url


def test_delete_asks_on_a_terminal(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    url = _store(tmp_path)
    monkeypatch.setattr(_lifecycle, "on_a_terminal", lambda: True)
    runner = CliRunner()
    refused = runner.invoke(main, ["delete", "order-1", "--url", url], input="n\n")
    assert refused.exit_code == 1
    assert "delete stream order-1 at version 3" in refused.output and "nothing was changed" in refused.output
    assert run_cli("read", "order-1", "--url", url, cwd=tmp_path).code == 0
    done = runner.invoke(main, ["delete", "order-1", "--hard", "--url", url], input="y\n")
    assert done.exit_code == 0, done.output
    assert "for good" in done.output and "deleted order-1 (hard)" in done.output


def test_delete_metadata_and_scavenge_as_json(tmp_path: Path) -> None:
    url = _store(tmp_path)
    conflict = run_cli("delete", "order-1", "--expected-version", "2", "--url", url, cwd=tmp_path)
    assert conflict.code == 1
    assert "expected version 2, actual version 3" in conflict.err
    shown = run_cli("metadata", "order-1", "--max-count", "1", "--json", "--url", url, cwd=tmp_path)
    assert shown.json_lines() == [
        {
            "stream_id": "order-1",
            "version": 3,
            "deleted": None,
            "max_count": 1,
            "max_age": None,
            "truncate_before": None,
        }
    ]
    bad = run_cli("metadata", "order-1", "--max-count", "0", "--url", url, cwd=tmp_path)
    assert bad.code == 1
    assert "max_count" in bad.err
    wrong = run_cli("metadata", "order-1", "--max-age", "soon", "--url", url, cwd=tmp_path)
    assert wrong.code == 2
    assert "duration" in wrong.err
    scavenged = run_cli("scavenge", "--json", "--url", url, cwd=tmp_path).json_lines()
    assert (scavenged[0]["events"], scavenged[0]["streams"]) == (2, 1)
    deleted = run_cli("delete", "order-1", "--json", "--url", url, cwd=tmp_path).json_lines()
    assert (deleted[0]["mode"], deleted[0]["version"]) == ("soft", 4)
    state = run_cli("metadata", "order-1", "--url", url, cwd=tmp_path).out
    assert "order-1: version 0, deleted; max count 1, truncate before 5" in state
    empty = run_cli("scavenge", "--url", f"sqlite:///{tmp_path / 'empty.db'}", cwd=tmp_path)
    assert empty.code == 1  # no store there: refused, not created


def test_repairs_are_audited(tmp_path: Path) -> None:
    url = _store(tmp_path)
    replaced = run_cli(
        "repair",
        "event",
        "order-1",
        "2",
        '{"total": 20}',
        "--reason",
        "typo",
        "--operator",
        "ada",
        "--url",
        url,
        cwd=tmp_path,
    )
    assert replaced.code == 0, replaced.err
    assert "replaced order-1 v2 (position 2) for ada: typo" in replaced.out
    read = run_cli("read", "order-1", "--json", "--url", url, cwd=tmp_path).json_lines()
    assert [e["data"] for e in read] == [{"total": 1}, {"total": 20}, {"total": 3}]
    archived = run_cli(
        "repair", "archive", "order-1", "--reason", "broken", "--operator", "ada", "--url", url, cwd=tmp_path
    )
    assert archived.code == 0, archived.err
    refused = run_cli("append", "order-1", "OrderPlaced", "{}", "--url", url, cwd=tmp_path)
    assert refused.code == 1
    assert "archived" in refused.err
    trail = run_cli("repair", "log", "--json", "--url", url, cwd=tmp_path).json_lines()
    assert [(t["action"], t["operator"], t["reason"]) for t in trail] == [
        ("replace", "ada", "typo"),
        ("archive", "ada", "broken"),
    ]
