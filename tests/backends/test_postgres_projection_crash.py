"""Kill a projection runner on PostgreSQL at random points, sync and asyncio; the read
model ends as if it never crashed (the logic: ``check_killed_runner``)."""

from __future__ import annotations

import signal

import pytest

from chronik.testing._projection_workers import check_killed_runner

pytestmark = [
    pytest.mark.postgres,
    pytest.mark.slow,
    pytest.mark.skipif(not hasattr(signal, "SIGKILL"), reason="needs SIGKILL"),
]


def test_killed_runner_leaves_an_exact_read_model(postgres_store_url: str) -> None:
    check_killed_runner(postgres_store_url, "sync")


def test_killed_asyncio_runner_leaves_an_exact_read_model(postgres_store_url: str) -> None:
    check_killed_runner(postgres_store_url, "async")


def test_killed_sqlalchemy_runner_leaves_an_exact_read_model(postgres_store_url: str) -> None:
    check_killed_runner(postgres_store_url, "sqlalchemy")


def test_killed_asyncio_sqlalchemy_runner_leaves_an_exact_read_model(postgres_store_url: str) -> None:
    check_killed_runner(postgres_store_url, "sqlalchemy-async")
