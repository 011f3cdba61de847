"""Kill a projection runner at random points; the read model ends as if it never crashed.

The test logic is ``chronik.testing._projection_workers.check_killed_runner``; the
PostgreSQL variants are in ``tests/backends/test_postgres_projection_crash.py``.
"""

from __future__ import annotations

import signal
from pathlib import Path

import pytest

from chronik.testing._projection_workers import check_killed_runner

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(not hasattr(signal, "SIGKILL"), reason="needs SIGKILL"),
]


def test_killed_runner_leaves_an_exact_read_model(tmp_path: Path) -> None:
    check_killed_runner(f"sqlite:///{tmp_path / 'events.db'}", "sync")


def test_killed_asyncio_runner_leaves_an_exact_read_model(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'events.db'}"
    check_killed_runner(url, "async")


def test_killed_sqlalchemy_runner_leaves_an_exact_read_model(tmp_path: Path) -> None:
    check_killed_runner(f"sqlite:///{tmp_path / 'events.db'}", "sqlalchemy")


def test_killed_asyncio_sqlalchemy_runner_leaves_an_exact_read_model(tmp_path: Path) -> None:
    check_killed_runner(f"sqlite:///{tmp_path / 'events.db'}", "sqlalchemy-async")
