"""The pages, in process: they render, escape event data, and travel in time."""

from __future__ import annotations

from starlette.testclient import TestClient

from chronik import NewEvent
from chronik.store import Store


def test_every_page_renders(client: TestClient) -> None:
    for path in (
        "/",
        "/streams",
        "/streams?category=order",
        "/streams/order-1",
        "/log",
        "/projections",
        "/travel",
        "/travel/order/order-1",
        "/travel/order/order-1/state?version=1",
    ):
        answer = client.get(path)
        assert answer.status_code == 200, (path, answer.text[:500])
        assert answer.headers["content-type"].startswith("text/html")
    assert client.get("/streams/order-404").status_code == 404


def test_event_data_is_text_never_markup(client: TestClient, store: Store) -> None:
    store.append(
        "user-<b>",
        [
            NewEvent(
                "<img src=x onerror=alert(1)>",
                {"x": "</pre><script>x()</script>"},
                {"correlation_id": "<script>c()</script>"},
            )
        ],
    )
    pages = [client.get(p).text for p in ("/streams/user-ada", "/log", "/streams", "/streams/user-<b>")]
    for html in pages:
        assert "<script>alert" not in html and "<script>x()" not in html and "<script>c()" not in html
        assert "<img src=x" not in html
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in pages[0]
    assert "&lt;img src=x onerror=alert(1)&gt;" in pages[1]


def test_search_finds_streams_by_part_of_their_id(client: TestClient) -> None:
    found = client.get("/streams?q=ADA").text
    assert "user-ada" in found and "order-1" not in found
    exact = client.get("/streams?q=order-2", follow_redirects=False)
    assert exact.status_code == 303 and exact.headers["location"] == "/streams/order-2"


def test_a_correlation_shows_every_event_of_the_conversation(client: TestClient, store: Store) -> None:
    store.append(
        "order-7", [NewEvent("OrderPlaced", {"customer": "cy", "total": 5}, {"correlation_id": "conv-1"})]
    )
    store.append(
        "mail-7", [NewEvent("MailSent", {"to": "cy"}, {"correlation_id": "conv-1", "causation_id": "x"})]
    )
    store.append("mail-8", [NewEvent("MailSent", {"to": "dy"}, {"correlation_id": "conv-2"})])
    page = client.get("/streams/order-7").text
    assert 'href="/correlations/conv-1"' in page
    conversation = client.get("/correlations/conv-1").text
    assert "order-7" in conversation and "mail-7" in conversation and "mail-8" not in conversation


def test_time_travel_shows_the_state_and_the_change_at_a_version(client: TestClient) -> None:
    first = client.get("/travel/order/order-1/state?version=1").text
    assert "&#34;total&#34;: 30" in first
    assert "<td>total</td><td><code>0</code></td><td><code>30</code></td>" in first
    now = client.get("/travel/order/order-1").text
    assert 'type="range"' in now and 'max="2"' in now and "&#34;total&#34;: 42" in now


def test_writes_in_the_pages_need_the_token(client: TestClient, readonly: TestClient) -> None:
    assert 'data-writable="yes"' in client.get("/projections").text
    assert 'id="token"' in client.get("/projections").text
    assert 'data-writable="no"' in readonly.get("/projections").text


def test_the_date_picker_shows_the_state_at_that_moment(client: TestClient) -> None:
    first = client.get("/api/travel/order/order-1?version=1").json()
    picked = client.get("/travel/order/order-1/state", params={"as_of": first["recorded_at"]}).text
    assert 'data-version="1"' in picked and "&#34;total&#34;: 30" in picked
    before = client.get("/travel/order/order-1/state", params={"as_of": "2000-01-01T00:00"}).text
    assert 'data-version="0"' in before
    wrong = client.get("/travel/order/order-1/state", params={"as_of": "soon"})
    assert wrong.status_code == 400 and "as_of" in wrong.text


def test_an_event_shows_its_tags(client: TestClient, store: Store) -> None:
    store.append("course-c1", [NewEvent("StudentSubscribed", {}, tags=["course:c1", "student:<s7>"])])
    for html in (client.get("/streams/course-c1").text, client.get("/log").text):
        assert '<span class="tag">course:c1</span>' in html
        assert '<span class="tag">student:&lt;s7&gt;</span>' in html
    assert client.get("/api/streams/course-c1").json()["events"][0]["tags"] == ["course:c1", "student:<s7>"]
