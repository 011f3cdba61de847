"""Opening stores by URL, and the errors for URLs that do not work."""

import re
from pathlib import Path
from typing import Any

import pytest

import chronik
from chronik import ConfigurationError
from chronik._connect import install_command
from chronik.stores.memory import MemoryEventStore
from chronik.stores.sqlite import SQLiteEventStore


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("", "unknown scheme"),
        ("chronik.db", "unknown scheme"),
        ("mysql://localhost/db", "unknown scheme"),
        ("memory://somewhere", "takes no host or path"),
        ("sqlite://host/file.db", "has a host"),
        ("sqlite:///", "names no file"),
        ("sqlite:///:memory:", "use memory://"),
        ("memory://?colour=blue", "unknown option 'colour'"),
        ("sqlite:///x.db?busy_timeout=soon", "busy_timeout='soon'"),
        ("sqlite:///x.db?synchronous=sometimes", "synchronous must be FULL, NORMAL or EXTRA"),
        ("sqlite:///x.db?migrate=perhaps", "migrate='perhaps'"),
    ],
)
def test_bad_urls_name_the_problem(
    url: str, message: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    with pytest.raises(ConfigurationError, match=message):
        chronik.connect(url)
    assert not (tmp_path / "x.db").exists()


def test_a_memory_store_says_what_it_holds_in_its_repr() -> None:
    store = chronik.connect("memory://")
    assert repr(store) == "MemoryEventStore('memory://', streams=0, events=0)"
    store.append("order-1", [chronik.NewEvent("X", {}), chronik.NewEvent("X", {})])
    store.append("order-2", [chronik.NewEvent("X", {})])
    assert repr(store) == "MemoryEventStore('memory://', streams=2, events=3)"
    store.close()
    assert repr(store) == "MemoryEventStore('memory://', streams=2, events=3, closed)"


def test_memory_url() -> None:
    store = chronik.connect("memory://")
    assert isinstance(store, MemoryEventStore)
    assert chronik.connect("memory://") is not store


def test_relative_and_absolute_sqlite_paths(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "data").mkdir()
    relative = chronik.connect("sqlite:///data/rel.db")
    assert isinstance(relative, SQLiteEventStore)
    relative.close()
    assert (tmp_path / "data" / "rel.db").exists()
    absolute = chronik.connect(f"sqlite:///{tmp_path}/abs.db")
    assert isinstance(absolute, SQLiteEventStore)
    assert absolute.path == f"{tmp_path}/abs.db"
    absolute.close()


def test_options_from_the_query_string_and_keywords(tmp_path: Path) -> None:
    store = chronik.connect(f"sqlite:///{tmp_path}/o.db?synchronous=normal&busy_timeout=2.5")
    assert isinstance(store, SQLiteEventStore)
    assert (store.synchronous, store.busy_timeout) == ("NORMAL", 2.5)
    store.close()
    store = chronik.connect(f"sqlite:///{tmp_path}/o.db?busy_timeout=2.5", busy_timeout=9)
    assert isinstance(store, SQLiteEventStore)
    assert store.busy_timeout == 9
    store.close()


def test_default_url_is_chronik_url_then_chronik_db(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("CHRONIK_URL", raising=False)
    store = chronik.connect()
    assert isinstance(store, SQLiteEventStore)
    store.close()
    assert (tmp_path / "chronik.db").exists()
    monkeypatch.setenv("CHRONIK_URL", "memory://")
    assert isinstance(chronik.connect(), MemoryEventStore)


def test_scheme_whose_backend_is_missing(monkeypatch: pytest.MonkeyPatch) -> None:
    import sys

    monkeypatch.setitem(sys.modules, "nats", None)
    for name in [
        m for m in sys.modules if m == "chronik.stores.nats" or m.startswith("chronik.stores.nats.")
    ]:
        monkeypatch.delitem(sys.modules, name)
    # The install command names chronik as it was installed: by name, or by its clone's path.
    with pytest.raises(
        ConfigurationError, match=r"nats:// stores need 'nats[.\w]*': pip install (-e )?'[^']+\[nats\]'"
    ):
        chronik.connect("nats://127.0.0.1:4222")


def test_async_connect_gives_the_async_face() -> None:
    import asyncio

    async def go() -> list[int]:
        store = chronik.connect_async("memory://")
        await store.append("a-1", [chronik.NewEvent("T", {"n": 1})])
        versions = [e.version async for e in store.read_all()]
        await store.close()
        return versions

    assert asyncio.run(go()) == [1]
    assert isinstance(chronik.connect_async("memory://"), chronik.AsyncEventStore)


def test_missing_postgres_extra_gives_an_install_hint(monkeypatch: pytest.MonkeyPatch) -> None:
    import sys

    for name in list(sys.modules):
        if name.startswith("chronik.stores.postgres"):
            monkeypatch.delitem(sys.modules, name)
    monkeypatch.setitem(sys.modules, "psycopg", None)
    monkeypatch.setitem(sys.modules, "psycopg_pool", None)
    with pytest.raises(ConfigurationError, match=r"psycopg") as info:
        chronik.connect("postgresql://postgres@127.0.0.1:5432/test")
    # As this chronik was installed: from an index by name, or from a clone by its path.
    command = re.search(r"pip install (-e )?'(.+)\[postgres\]'", str(info.value))
    assert command is not None, str(info.value)
    assert command[2] == "chronik" or (Path(command[2]) / "pyproject.toml").exists()


@pytest.mark.parametrize(
    ("origin", "command"),
    [
        (None, "pip install 'chronik[postgres]'"),
        (
            {"url": "file:///home/ada/src/chronik", "dir_info": {"editable": True}},
            "pip install -e '/home/ada/src/chronik[postgres]'",
        ),
        (
            {"url": "file:///home/ada/src/chronik", "dir_info": {}},
            "pip install '/home/ada/src/chronik[postgres]'",
        ),
        (
            {
                "url": "https://git.example.com/o/chronik.git",
                "vcs_info": {"vcs": "git", "commit_id": "abc123"},
            },
            "pip install 'chronik[postgres] @ git+https://git.example.com/o/chronik.git@abc123'",
        ),
        (
            {"url": "https://files.example.com/chronik-0.1.0.tar.gz", "archive_info": {}},
            "pip install 'chronik[postgres] @ https://files.example.com/chronik-0.1.0.tar.gz'",
        ),
    ],
    ids=["index", "editable-clone", "clone", "git", "archive"],
)
def test_the_install_hint_installs_the_extra_from_where_chronik_came_from(
    origin: dict[str, Any] | None, command: str
) -> None:
    # chronik is not on PyPI yet: telling a user of a clone to `pip install
    # 'chronik[postgres]'` sends them to look for a package that is not there.
    assert install_command("chronik", "postgres", origin) == command
