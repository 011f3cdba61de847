"""Deleting streams, their metadata and scavenging over HTTP, and on the stream page."""

from __future__ import annotations

from starlette.testclient import TestClient

from chronik import NewEvent
from chronik.store import Store

from ._shop import AUTH


def test_deleting_a_stream_needs_the_token(client: TestClient, readonly: TestClient) -> None:
    assert client.delete("/api/streams/order-1").status_code == 401
    assert readonly.delete("/api/streams/order-1", headers=AUTH).status_code == 403
    assert client.get("/api/streams/order-1").status_code == 200  # nothing was deleted


def test_a_soft_delete_then_an_append(client: TestClient) -> None:
    deleted = client.delete("/api/streams/order-1", params={"expected_version": 2}, headers=AUTH)
    assert deleted.status_code == 200, deleted.text
    assert deleted.json() | {"checkpoint": None} == {
        "stream_id": "order-1",
        "mode": "soft",
        "version": 3,
        "position": 5,
        "checkpoint": None,
    }
    gone = client.get("/api/streams/order-1")
    assert (gone.status_code, gone.json()["deleted"]) == (404, "soft")
    state = client.get("/api/metadata/order-1").json()
    assert state == {
        "stream_id": "order-1",
        "version": 0,
        "deleted": "soft",
        "max_count": None,
        "max_age": None,
        "truncate_before": 4,
    }
    assert [s["stream_id"] for s in client.get("/api/streams").json()["streams"]] == ["order-2", "user-ada"]
    again = client.post(
        "/api/streams/order-1",
        json={
            "events": [{"type": "OrderPlaced", "data": {"customer": "ada", "total": 1}}],
            "expected_version": 0,
        },
        headers=AUTH,
    )
    assert again.json()["version"] == 4
    assert [e["version"] for e in client.get("/api/streams/order-1").json()["events"]] == [4]


def test_a_wrong_expected_version_is_409_and_deletes_nothing(client: TestClient) -> None:
    answer = client.delete("/api/streams/order-1", params={"expected_version": 1}, headers=AUTH)
    assert answer.status_code == 409
    assert (answer.json()["expected"], answer.json()["actual"]) == ("1", 2)
    assert client.get("/api/streams/order-1").status_code == 200
    bad = client.delete("/api/streams/order-1", params={"expected_version": "soon"}, headers=AUTH)
    assert (bad.status_code, bad.json()["field"]) == (400, "expected_version")


def test_a_hard_delete_is_for_good(client: TestClient) -> None:
    answer = client.delete("/api/streams/order-2", params={"hard": "true"}, headers=AUTH)
    assert answer.json()["mode"] == "hard"
    event = {"type": "OrderPlaced", "data": {"customer": "bo", "total": 1}}
    refused = client.post("/api/streams/order-2", json={"events": [event]}, headers=AUTH)
    assert refused.status_code == 410
    assert refused.json()["deleted"] == "hard" and "order-2" in refused.json()["error"]
    metadata = client.put("/api/metadata/order-2", json={"max_count": 1}, headers=AUTH)
    assert metadata.status_code == 410
    again = client.delete("/api/streams/order-2", params={"hard": "true"}, headers=AUTH)
    assert (again.status_code, again.json()["version"]) == (200, 0)


def test_metadata_and_scavenge(client: TestClient, store: Store) -> None:
    for total in range(5):
        store.append("order-9", [NewEvent("OrderPlaced", {"customer": "cy", "total": total})])
    assert client.put("/api/metadata/order-9", json={"max_count": 2}).status_code == 401
    put = client.put("/api/metadata/order-9", json={"max_count": 2, "max_age": 86400}, headers=AUTH)
    assert put.status_code == 200, put.text
    assert (put.json()["max_count"], put.json()["max_age"], put.json()["version"]) == (2, 86400.0, 5)
    assert [e["version"] for e in client.get("/api/streams/order-9").json()["events"]] == [4, 5]
    bad = client.put("/api/metadata/order-9", json={"max_count": 0}, headers=AUTH)
    assert (bad.status_code, bad.json()["field"]) == (400, "max_count")
    unknown = client.put("/api/metadata/order-9", json={"max_size": 3}, headers=AUTH)
    assert unknown.status_code == 400
    assert client.post("/api/scavenge").status_code == 401
    assert client.post("/api/scavenge", headers=AUTH).json() == {"events": 3, "streams": 1}
    assert client.post("/api/scavenge", headers=AUTH).json() == {"events": 0, "streams": 0}
    cleared = client.put("/api/metadata/order-9", json={}, headers=AUTH).json()
    assert (cleared["max_count"], cleared["max_age"]) == (None, None)


def test_the_stream_page_shows_the_state_and_the_delete_buttons(
    client: TestClient, readonly: TestClient
) -> None:
    page = client.get("/streams/order-1").text
    assert 'data-deleted=""' in page and "Live." in page
    assert 'hx-delete="/api/streams/order-1?expected_version=2"' in page and "hx-confirm" in page
    assert "hx-delete" not in readonly.get("/streams/order-1").text
    client.delete("/api/streams/order-1", headers=AUTH)
    deleted = client.get("/streams/order-1")
    assert deleted.status_code == 200
    assert 'data-deleted="soft"' in deleted.text and "Hides the versions before 4" in deleted.text
    assert 'hx-delete="/api/streams/order-1?hard=true"' in deleted.text
    client.delete("/api/streams/order-1", params={"hard": "true"}, headers=AUTH)
    gone = client.get("/streams/order-1").text
    assert "Deleted for good" in gone and "hx-delete" not in gone


def test_the_openapi_describes_the_new_operations(client: TestClient) -> None:
    paths = client.get("/openapi.json").json()["paths"]
    assert "delete" in paths["/api/streams/{stream_id}"]
    assert {"get", "put"} <= set(paths["/api/metadata/{stream_id}"])
    assert "post" in paths["/api/scavenge"]
