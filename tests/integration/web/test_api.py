"""The HTTP API, in process (Starlette's TestClient) on a SQLite store."""

from __future__ import annotations

import uuid
from typing import Any

from starlette.testclient import TestClient

from chronik.query import Query
from chronik.store import Store

from ._shop import AUTH


def test_info_counts_streams_events_and_categories(client: TestClient) -> None:
    info = client.get("/api/info").json()
    assert (info["events"], info["streams"], info["writable"]) == (4, 3, True)
    assert info["categories"] == [
        {"category": "order", "streams": 2, "events": 3},
        {"category": "user", "streams": 1, "events": 1},
    ]
    assert info["models"] == ["order"]
    assert [p["name"] for p in info["projections"]] == ["spent"]


def follow(client: TestClient, url: str, key: str) -> list[Any]:
    """Every item of every page, following next."""
    items: list[Any] = []
    pages = 0
    next_url: str | None = url
    while next_url is not None:
        answer = client.get(next_url)
        assert answer.status_code == 200, answer.text
        page = answer.json()
        items += page[key]
        next_url = page["next"]
        pages += 1
    assert pages > 1, "the listing should take several pages"
    return items


def test_streams_page_by_id(client: TestClient) -> None:
    streams = follow(client, "/api/streams?limit=1", "streams")
    assert [s["stream_id"] for s in streams] == ["order-1", "order-2", "user-ada"]
    orders = client.get("/api/streams?category=order").json()
    assert [(s["stream_id"], s["version"]) for s in orders["streams"]] == [("order-1", 2), ("order-2", 1)]


def test_a_stream_pages_by_version_both_ways(client: TestClient, store: Store) -> None:
    for total in range(3, 8):
        client.post(
            "/api/streams/order-1",
            json={"events": [{"type": "OrderPlaced", "data": {"customer": "ada", "total": total}}]},
            headers=AUTH,
        )
    forwards = follow(client, "/api/streams/order-1?limit=3", "events")
    assert [e["version"] for e in forwards] == [1, 2, 3, 4, 5, 6, 7]
    assert forwards[0]["data"] == {"customer": "ada", "total": 30}
    backwards = follow(client, "/api/streams/order-1?limit=3&backwards=true", "events")
    assert [e["version"] for e in backwards] == [7, 6, 5, 4, 3, 2, 1]
    missing = client.get("/api/streams/order-404")
    assert missing.status_code == 404 and "order-404" in missing.json()["error"]


def test_the_log_pages_by_opaque_checkpoints(client: TestClient) -> None:
    events = follow(client, "/api/log?limit=3", "events")
    assert [(e["stream_id"], e["version"]) for e in events] == [
        ("order-1", 1),
        ("order-2", 1),
        ("order-1", 2),
        ("user-ada", 1),
    ]
    after = events[1]["checkpoint"]
    rest = client.get("/api/log", params={"after": after}).json()["events"]
    assert [e["position"] for e in rest] == [e["position"] for e in events[2:]]
    only = client.get("/api/log?category=user").json()["events"]
    assert [e["stream_id"] for e in only] == ["user-ada"]
    bad = client.get("/api/log?after=nonsense")
    assert bad.status_code == 400 and bad.json()["field"] == "after"
    assert client.get("/api/log?limit=zero").json()["field"] == "limit"


def append(client: TestClient, stream: str, body: Any, headers: dict[str, str] | None = AUTH) -> Any:
    return client.post(f"/api/streams/{stream}", json=body, headers=headers)


def test_appends_need_the_token(client: TestClient, readonly: TestClient) -> None:
    body = {"events": [{"type": "Noted", "data": {}}]}
    refused = append(readonly, "note-1", body, headers=AUTH)
    assert refused.status_code == 403 and "read-only" in refused.json()["error"]
    assert append(client, "note-1", body, headers=None).status_code == 401
    wrong = append(client, "note-1", body, headers={"Authorization": "Bearer s3cret-tokeN"})
    assert wrong.status_code == 401 and wrong.headers["www-authenticate"] == "Bearer"
    assert client.get("/api/streams/note-1").status_code == 404, "nothing was written"
    done = append(client, "note-1", body)
    assert done.status_code == 200 and done.json()["version"] == 1


def test_a_cross_site_write_is_refused_even_with_the_token(client: TestClient) -> None:
    headers = {**AUTH, "Origin": "https://evil.example"}
    answer = append(client, "note-1", {"events": [{"type": "Noted"}]}, headers=headers)
    assert answer.status_code == 403 and "cross-site" in answer.json()["error"]
    assert client.get("/api/streams/note-1").status_code == 404


def test_append_conflict_is_409_with_expected_and_actual(client: TestClient) -> None:
    placed = [{"type": "OrderPlaced", "data": {"customer": "cy", "total": 1}}]
    answer = append(client, "order-1", {"expected_version": 1, "events": placed})
    assert answer.status_code == 409
    assert (answer.json()["expected"], answer.json()["actual"]) == (1, 2)
    ok = append(
        client,
        "order-1",
        {"expected_version": 2, "events": [{"type": "OrderPlaced", "data": {"customer": "cy", "total": 1}}]},
    )
    assert ok.json()["version"] == 3
    new = append(client, "order-1", {"expected_version": "no-stream", "events": [{"type": "X"}]})
    assert new.status_code == 409 and new.json()["actual"] == 3


def test_bad_input_is_400_naming_the_field(client: TestClient) -> None:
    cases: list[tuple[Any, str]] = [
        ({"events": [{"data": {}}]}, "events[0]"),
        ({"events": [{"type": 3}]}, "events[0].type"),
        ({"events": [{"type": "X", "event_id": "not-a-uuid"}]}, "events[0].event_id"),
        ({"events": []}, "events"),
        ({"events": [{"type": "X"}], "expected_version": "soon"}, "expected_version"),
        ({"events": [{"type": "X"}], "expected_version": -1}, "expected_version"),
        ({"events": [{"type": "X", "metadata": [1]}]}, "events[0].metadata"),
        ({"events": [{"type": "X", "colour": "red"}]}, "events[0]"),
    ]
    for body, field in cases:
        answer = append(client, "order-9", body)
        assert answer.status_code == 400, (body, answer.text)
        assert answer.json()["field"] == field, (body, answer.json())
    not_json = client.post("/api/streams/order-9", content=b"{", headers=AUTH)
    assert not_json.status_code == 400 and "not JSON" in not_json.json()["error"]
    bad_id = append(client, "bad%01id", {"events": [{"type": "X"}]})
    assert bad_id.status_code == 400 and bad_id.json()["field"] == "stream_id"
    assert client.get("/api/streams/order-9").status_code == 404


def test_a_body_over_the_limit_is_413(store: Store) -> None:
    from chronik.web import create_app

    from ._shop import TOKEN

    with TestClient(create_app(store, token=TOKEN, max_body=1000)) as small:
        big = {"events": [{"type": "Big", "data": {"text": "x" * 2000}}]}
        answer = small.post("/api/streams/big-1", json=big, headers=AUTH)
        assert answer.status_code == 413 and "1,000 bytes" in answer.json()["error"]

        def chunks() -> Any:  # no Content-Length: the limit holds while reading
            yield b'{"events": [{"type": "Big", "data": "'
            for _ in range(10):
                yield b"x" * 200
            yield b'"}]}'

        streamed = small.post("/api/streams/big-1", content=chunks(), headers=AUTH)
        assert streamed.status_code == 413
        assert small.get("/api/streams/big-1").status_code == 404


def test_appends_are_idempotent_by_event_id(client: TestClient) -> None:
    event_id = str(uuid.uuid4())
    body = {"expected_version": 0, "events": [{"type": "Noted", "data": {"n": 1}, "event_id": event_id}]}
    first = append(client, "note-7", body)
    again = append(client, "note-7", body)
    assert first.status_code == again.status_code == 200, again.text
    assert first.json() == again.json()
    events = client.get("/api/streams/note-7").json()["events"]
    assert [e["event_id"] for e in events] == [event_id]


def test_appended_events_carry_their_tags_to_reads_by_query(client: TestClient, store: Store) -> None:
    tags = ["student:s1", "course:c1", "course:c1"]
    body = {"events": [{"type": "StudentSubscribed", "data": {}, "tags": tags}, {"type": "Noted"}]}
    answer = append(client, "dcb-1", body)
    assert answer.status_code == 200, answer.text
    events = client.get("/api/streams/dcb-1").json()["events"]
    assert [e["tags"] for e in events] == [["course:c1", "student:s1"], []]
    read = store.read_query(Query.of(types=["StudentSubscribed"], tags=["course:c1"]))
    assert [(e.stream_id, e.tags) for e in read.events] == [("dcb-1", ("course:c1", "student:s1"))]
    for bad in ([""], ["a\nb"], ["x" * 201], "course:c1", [3]):
        refused = append(client, "dcb-2", {"events": [{"type": "X", "tags": bad}]})
        assert refused.status_code == 400, (bad, refused.text)
        assert refused.json()["field"].startswith("events[0].tags"), (bad, refused.json())
    assert client.get("/api/streams/dcb-2").status_code == 404


def test_projections_and_dead_letters(client: TestClient, readonly: TestClient) -> None:
    [before] = client.get("/api/projections").json()["projections"]
    assert (before["name"], before["status"], before["lag_events"]) == ("spent", "never run", 3)
    assert readonly.post("/api/projections/spent/rebuild", headers=AUTH).status_code == 403
    assert client.post("/api/projections/spent/rebuild").status_code == 401
    rebuilt = client.post("/api/projections/spent/rebuild", headers=AUTH)
    assert rebuilt.status_code == 200 and (rebuilt.json()["handled"], rebuilt.json()["parked"]) == (2, 1)
    [after] = client.get("/api/projections").json()["projections"]
    assert (after["status"], after["lag_events"], after["dead_letters"]) == ("live", 0, 1)

    [letter] = client.get("/api/projections/spent/dead-letters").json()["dead_letters"]
    assert (letter["stream_id"], letter["position"]) == ("order-2", 2)
    assert "a negative total" in letter["error"]
    still = client.post("/api/projections/spent/dead-letters/2/replay", headers=AUTH)
    assert still.status_code == 422 and "a negative total" in still.json()["error"]
    assert client.post("/api/projections/spent/dead-letters/2/skip").status_code == 401
    assert client.post("/api/projections/spent/dead-letters/2/skip", headers=AUTH).status_code == 200
    assert client.get("/api/projections/spent/dead-letters").json()["dead_letters"] == []
    again = client.post("/api/projections/spent/dead-letters/2/skip", headers=AUTH)
    assert again.status_code == 404 and "no dead letter at position 2" in again.json()["error"]

    assert client.post("/api/projections/spent/reset", headers=AUTH).status_code == 200
    [reset] = client.get("/api/projections").json()["projections"]
    assert reset["status"] == "never run"
    assert client.get("/api/projections/nope/dead-letters").status_code == 404


def test_time_travel_by_version_and_moment(client: TestClient) -> None:
    now = client.get("/api/travel/order/order-1").json()
    assert (now["version"], now["state"]) == (2, {"customer": "ada", "total": 42, "placed": 2})
    first = client.get("/api/travel/order/order-1?version=1").json()
    assert first["state"]["total"] == 30
    assert first["event"]["data"] == {"customer": "ada", "total": 30}
    assert {c["path"]: (c["before"], c["after"]) for c in first["changes"]} == {
        "customer": ("", "ada"),
        "total": (0, 30),
        "placed": (0, 1),
    }
    start = client.get("/api/travel/order/order-1?version=0").json()
    assert (start["state"], start["event"]) == ({"customer": "", "total": 0, "placed": 0}, None)
    moment = client.get("/api/travel/order/order-1", params={"as_of": first["recorded_at"]}).json()
    assert moment["version"] == 1
    assert client.get("/api/travel/order/order-404").status_code == 404
    assert client.get("/api/travel/nope/order-1").status_code == 404
    assert client.get("/api/travel/order/order-1?as_of=yesterday").json()["field"] == "as_of"


def test_openapi_describes_every_route(client: TestClient) -> None:
    schema = client.get("/openapi.json").json()
    assert schema["openapi"].startswith("3.")
    assert {
        "/api/info",
        "/api/streams",
        "/api/streams/{stream_id}",
        "/api/log",
        "/api/subscribe",
        "/api/projections",
    } <= set(schema["paths"])
    assert (
        "access-control-allow-origin"
        not in client.get("/api/info", headers={"Origin": "https://x.example"}).headers
    )
