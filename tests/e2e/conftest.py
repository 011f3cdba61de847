"""The ``chronik`` fixture: the command line, run as a subprocess in a fresh directory."""

from __future__ import annotations

from pathlib import Path

import pytest

from ._cli import Chronik, Result, run_cli


@pytest.fixture
def cli(tmp_path: Path) -> Chronik:
    """Runs the command line in ``tmp_path`` (the default store is ./chronik.db there)."""

    def run(*args: str, stdin: str | bytes | None = None, **env: str) -> Result:
        return run_cli(*args, cwd=tmp_path, stdin=stdin, **env)

    return run
