"""Crypto-shredding on SQLite, end to end (issue 16's "done when").

Personal data written with crypto-shredding on is nowhere in the raw bytes of the
database file or its write-ahead log, before or after ``forget``; after it every read
path (reads, read_all, a subscription, a rebuilt projection, a snapshot, ``chronik
export``, the HTTP API) shows the redacted value, and the log is unchanged. The key
itself is gone from the file and the log too.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
from starlette.testclient import TestClient

import chronik
from chronik import REDACTED, StaticKeys
from chronik.cli import App
from chronik.web import create_app
from tests._shredding import (
    expected_after_forget,
    expected_before,
    find_plaintext,
    log_of,
    people,
    read_paths,
    registry,
    write,
)
from tests.e2e._cli import SRC, run_cli

TOKEN = "s3cret-token"


def _raw(path: Path) -> list[bytes]:
    """The file and its write-ahead log, byte for byte."""
    return [p.read_bytes() for p in (path, Path(f"{path}-wal")) if p.exists()]


@pytest.mark.parametrize("cipher", [False, True], ids=["shredding", "shredding+cipher"])
def test_personal_data_is_never_stored_in_clear_and_forget_redacts_every_read(
    tmp_path: Path, cipher: bool
) -> None:
    path = tmp_path / "people.db"
    url = f"sqlite:///{path}"
    key_text = StaticKeys.new_key()
    options = {"cipher": StaticKeys({"k1": key_text})} if cipher else {}
    ada, grace = people(2)
    with chronik.connect(url, registry=registry(), **options) as store:
        write(store, [ada, grace])
        assert find_plaintext(_raw(path), [ada, grace]) == []
        assert read_paths(store, ada) == expected_before(ada)
        log = log_of(store)
        key = store.subject_keys([ada.subject])[ada.subject].key

        store.forget(ada.subject)

        assert find_plaintext(_raw(path), [ada, grace]) == []
        assert not any(key in blob for blob in _raw(path)), "the forgotten key is still in the file"
        assert read_paths(store, ada) == expected_after_forget(ada)
        assert read_paths(store, grace) == expected_before(grace)  # the others keep theirs
        assert log_of(store) == log

        # The HTTP API, as the web UI and its clients see it.
        app = App(registry=registry(), store_options=options)
        with TestClient(create_app(store, app=app, token=TOKEN)) as client:
            answer = client.get(f"/api/streams/{ada.stream}")
            assert answer.status_code == 200
            first = answer.json()["events"][0]["data"]
            assert (first["name"], first["email"]) == (REDACTED, REDACTED)
            page = client.get(f"/streams/{ada.stream}").text
            assert REDACTED in page and ada.name not in page

    # chronik export, as an operator runs it (the cipher's keys from the environment).
    env = {"CHRONIK_CIPHER_KEYS": f"k1:{key_text}"} if cipher else {}
    exported = run_cli("export", "-", "--url", url, cwd=tmp_path, **env)
    assert exported.code == 0, exported.err
    lines = [json.loads(line) for line in exported.out.splitlines()]
    ada_lines = [line["data"] for line in lines if line["stream_id"] == ada.stream]
    assert ada_lines[0] == {"customer": ada.subject, "name": REDACTED, "email": REDACTED, "plan": "basic"}
    grace_lines = [line["data"] for line in lines if line["stream_id"] == grace.stream]
    assert grace_lines[0]["name"] == grace.name
    assert ada.name not in exported.out


def test_forget_from_the_command_line(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'people.db'}"
    [ada] = people(1)
    with chronik.connect(url, registry=registry()) as store:
        write(store, [ada])
    refused = run_cli("forget", ada.subject, "--url", url, cwd=tmp_path)
    assert refused.code == 1
    assert "--yes" in refused.err
    shown = run_cli("read", ada.stream, "--json", "--url", url, cwd=tmp_path)
    assert shown.json_lines()[0]["data"]["name"] == ada.name
    done = run_cli("forget", ada.subject, "--yes", "--url", url, cwd=tmp_path)
    assert done.code == 0, done.err
    assert f"forgot subject {ada.subject}" in done.out
    again = run_cli("forget", ada.subject, "--yes", "--url", url, cwd=tmp_path)
    assert again.code == 0, again.err  # idempotent
    shown = run_cli("read", ada.stream, "--json", "--url", url, cwd=tmp_path)
    assert shown.json_lines()[0]["data"]["name"] == REDACTED
    bad = run_cli("forget", "", "--yes", "--url", url, cwd=tmp_path)
    assert bad.code == 1
    assert "subject id" in bad.err


def test_forget_over_http_needs_the_token(tmp_path: Path) -> None:
    [ada] = people(1)
    with chronik.connect(f"sqlite:///{tmp_path / 'people.db'}", registry=registry()) as store:
        write(store, [ada])
        with TestClient(create_app(store, app=App(registry=registry()))) as readonly:
            assert readonly.post(f"/api/subjects/{ada.subject}/forget").status_code == 403
        with TestClient(create_app(store, app=App(registry=registry()), token=TOKEN)) as client:
            assert client.post(f"/api/subjects/{ada.subject}/forget").status_code == 401
            assert store.read_stream(ada.stream)[0].data.name == ada.name
            auth = {"Authorization": f"Bearer {TOKEN}"}
            answer = client.post(f"/api/subjects/{ada.subject}/forget", headers=auth)
            assert answer.status_code == 200
            assert answer.json() == {"forgotten": ada.subject}
            assert client.post("/api/subjects/nobody/forget", headers=auth).status_code == 200
            assert client.post("/api/subjects/a%00b/forget", headers=auth).status_code == 400
            assert "Forget a data subject" in client.get("/").text
        assert store.read_stream(ada.stream)[0].data.name == REDACTED


APP = """
from tests._shredding import registry as _registry

registry = _registry()
"""


def test_copy_seals_personal_data_again_or_refuses(tmp_path: Path) -> None:
    (tmp_path / "people_app.py").write_text(APP, encoding="utf-8")
    source, target = f"sqlite:///{tmp_path / 'a.db'}", f"sqlite:///{tmp_path / 'b.db'}"
    ada, grace = people(2)
    with chronik.connect(source, registry=registry()) as store:
        write(store, [ada, grace])
        store.forget(grace.subject)
    root = os.pathsep.join([SRC, str(Path(__file__).resolve().parents[2])])
    refused = run_cli("copy", source, target, cwd=tmp_path, PYTHONPATH=root)
    assert refused.code == 1
    assert "holds personal data: copy with --app" in refused.err
    done = run_cli("copy", source, target, "--app", "people_app", cwd=tmp_path, PYTHONPATH=root)
    assert done.code == 0, done.err
    assert find_plaintext(_raw(tmp_path / "b.db"), [ada, grace]) == []
    with chronik.connect(target, registry=registry()) as copied:
        [registered, _] = copied.read_stream(ada.stream)
        assert registered.data.name == ada.name  # sealed again, with the target's own key
        assert copied.read_stream(grace.stream)[0].data.name == REDACTED  # forgotten stays forgotten
        copied.forget(ada.subject)
        assert copied.read_stream(ada.stream)[0].data.name == REDACTED


@pytest.mark.parametrize("scheme", ["memory", "sqlite"])
def test_asyncio_handlers_seal_snapshots_and_forget_them_too(tmp_path: Path, scheme: str) -> None:
    import asyncio

    from chronik import AsyncCommandHandler, SnapshotPolicy
    from tests._shredding import customers

    url = "memory://" if scheme == "memory" else f"sqlite:///{tmp_path / 'people.db'}"
    [ada] = people(1)

    async def main() -> None:
        store = chronik.connect_async(url, registry=registry())
        try:
            handler = AsyncCommandHandler(store, customers, snapshots=SnapshotPolicy(every=1))
            await handler.handle(ada.stream, (ada.subject, ada.name, ada.email, ""))
            snapshot = await store.load_snapshot(ada.stream)
            assert snapshot is not None and ada.name.encode() not in snapshot.data
            loaded = await handler.load(ada.stream)
            assert (loaded.state.name, loaded.snapshot_version) == (ada.name, 1)
            await store.forget(ada.subject)
            loaded = await handler.load(ada.stream)
            assert (loaded.state.name, loaded.snapshot_version) == (REDACTED, None)
        finally:
            await store.close()

    asyncio.run(main())
