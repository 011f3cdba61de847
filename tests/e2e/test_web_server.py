"""``chronik serve`` as a user runs it: a real server on a SQLite file, followed over
Server-Sent Events and checked against its own OpenAPI description by schemathesis."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx2
import pytest

import chronik
from chronik import NewEvent

from ._cli import cli_env, run_cli
from ._server import Server, serve

TOKEN = "e2e-token"


@pytest.fixture
def server(tmp_path: Path) -> Iterator[Server]:
    with serve(tmp_path, token=TOKEN) as server:
        yield server


def sse_events(url: str, headers: dict[str, str], count: int) -> list[dict[str, Any]]:
    """The first ``count`` events of an SSE stream: id, event and data of each."""
    found: list[dict[str, Any]] = []
    current: dict[str, Any] = {}
    with httpx2.stream("GET", url, headers=headers, timeout=30) as answer:
        assert answer.status_code == 200
        assert answer.headers["content-type"].startswith("text/event-stream")
        for line in answer.iter_lines():
            if line.startswith(("id:", "event:", "data:")):
                key, _, value = line.partition(":")
                current[key] = value.strip()
            elif line == "" and "data" in current:
                current["data"] = json.loads(current["data"])
                found.append(current)
                current = {}
                if len(found) == count:
                    return found
    return found


def test_subscribe_streams_the_log_and_resumes_from_last_event_id(server: Server) -> None:
    with chronik.connect(server.store_url) as store:
        for n in range(3):
            store.append(f"order-{n}", [NewEvent("OrderPlaced", {"customer": "ada", "total": n})])
    first = sse_events(f"{server.url}/api/subscribe", {}, 2)
    assert [e["data"]["stream_id"] for e in first] == ["order-0", "order-1"]
    assert all(e["event"] == "event" and e["id"] == e["data"]["checkpoint"] for e in first)

    # A client that lost the connection after the first event resumes right after it.
    resumed = sse_events(f"{server.url}/api/subscribe", {"Last-Event-ID": first[0]["id"]}, 2)
    assert [e["data"]["stream_id"] for e in resumed] == ["order-1", "order-2"]

    # Events appended while a client listens arrive; filters apply.
    late: list[dict[str, Any]] = []
    listener = threading.Thread(
        target=lambda: late.extend(sse_events(f"{server.url}/api/subscribe?from=head&category=user", {}, 1))
    )
    listener.start()
    with chronik.connect(server.store_url) as store:
        for _ in range(50):  # until the listener has subscribed and sees one
            store.append("order-9", [NewEvent("OrderPlaced", {"customer": "bo", "total": 1})])
            store.append("user-bo", [NewEvent("Registered", {"name": "bo"})])
            listener.join(timeout=0.2)
            if not listener.is_alive():
                break
    listener.join(timeout=30)
    assert [e["data"]["stream_id"] for e in late] == ["user-bo"]


def test_serve_is_read_only_without_a_token_and_on_loopback(tmp_path: Path) -> None:
    with serve(tmp_path, with_app=False) as server:
        answer = httpx2.post(
            f"{server.url}/api/streams/note-1",
            json={"events": [{"type": "Noted"}]},
            headers={"Authorization": "Bearer guess"},
        )
        assert answer.status_code == 403
        assert httpx2.get(f"{server.url}/api/info").json()["writable"] is False
    help_text = run_cli("serve", "--help", cwd=tmp_path).out
    assert "127.0.0.1" in help_text and "CHRONIK_UI_TOKEN" in help_text


@pytest.mark.slow
def test_schemathesis_finds_nothing_wrong(server: Server, tmp_path: Path) -> None:
    """Every operation of /openapi.json, fuzzed: no server error, and every answer
    matches the description (status codes, content types, bodies)."""
    with chronik.connect(server.store_url) as store:
        store.append("order-1", [NewEvent("OrderPlaced", {"customer": "ada", "total": 30})])
    st = shutil.which("st", path=str(Path(sys.executable).parent)) or "st"
    done = subprocess.run(
        [
            st,
            "run",
            f"{server.url}/openapi.json",
            "--checks",
            "all",
            "--exclude-checks",
            "positive_data_acceptance,missing_required_header,ignored_auth",
            "--exclude-path",
            "/api/subscribe",
            "--max-examples",
            "30",
            "--header",
            f"Authorization: Bearer {TOKEN}",
            "--seed",
            "1",
        ],
        cwd=tmp_path,
        env=cli_env(),
        capture_output=True,
        timeout=600,
        check=False,
    )
    out = done.stdout.decode() + done.stderr.decode()
    assert done.returncode == 0, out[-6000:]
