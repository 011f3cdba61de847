"""Fixtures for the application layer on real stores: memory and SQLite, sync and asyncio."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from chronik import EventRegistry

from ._support import App


@pytest.fixture(params=["memory", "sqlite"])
def store_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    return "memory://" if request.param == "memory" else f"sqlite:///{tmp_path}/events.db"


@pytest.fixture(params=["sync", "async"])
def face(request: pytest.FixtureRequest) -> str:
    face: str = request.param
    return face


@pytest.fixture
def open_app(store_url: str, face: str) -> Iterator[Callable[[EventRegistry], App]]:
    """Open the store of this test's URL and face with a registry; closed after the test."""
    opened: list[App] = []

    def open_(registry: EventRegistry) -> App:
        app = App(store_url, face, registry)
        opened.append(app)
        return app

    yield open_
    for app in opened:
        app.close()
