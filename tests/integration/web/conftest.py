from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from starlette.testclient import TestClient

import chronik
from chronik import NewEvent
from chronik.store import Store
from chronik.web import create_app

from ._shop import TOKEN
from ._shop import app as shop_app


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Store]:
    with chronik.connect(f"sqlite:///{tmp_path / 'web.db'}", registry=shop_app.registry) as store:
        store.append("order-1", [NewEvent("OrderPlaced", {"customer": "ada", "total": 30})])
        store.append("order-2", [NewEvent("OrderPlaced", {"customer": "bo", "total": -5})])
        store.append("order-1", [NewEvent("OrderPlaced", {"customer": "ada", "total": 12})])
        store.append("user-ada", [NewEvent("Registered", {"name": "<script>alert(1)</script>"})])
        yield store


@pytest.fixture
def client(store: Store) -> Iterator[TestClient]:
    """A UI with a token, and no Authorization header by default."""
    with TestClient(create_app(store, app=shop_app, token=TOKEN)) as client:
        yield client


@pytest.fixture
def readonly(store: Store) -> Iterator[TestClient]:
    with TestClient(create_app(store, app=shop_app)) as client:
        yield client
