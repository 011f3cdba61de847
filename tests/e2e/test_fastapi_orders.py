"""The example FastAPI service (chronik.examples.fastapi_orders), served by a real uvicorn
on a free loopback port and driven with an HTTP client: commands, 409s, queries from
the read model, the projection, the saga and the relay (to the real Redis) in its
lifespan, and one trace from an HTTP request through its command, its events, the
projection, the saga's follow-up commands, the relay's publishes and another
service's inbound consumer that turns what it receives into a command of its own."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx2
import pytest
import uvicorn
from fastapi import FastAPI

import chronik
from chronik.brokers import InboundMessage
from chronik.brokers.redis import RedisStreamsSource
from chronik.examples.fastapi_orders import create_app
from chronik.inbound import Inbound, command_handler
from tests._shipping import ShipOrder, shipping, shipping_registry
from tests.backends._brokers import redis_delete, redis_entries, unique
from tests.conftest import Recorded

from ._server import free_port

TRACE_ID = "4bf92f3577b34da6a3ce929d0e0e4736"


@contextmanager
def _serving(app: FastAPI) -> Iterator[str]:
    """``app`` served by uvicorn on a free loopback port, in this process: its URL."""
    port = free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, name="uvicorn", daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not server.started:
        assert thread.is_alive() and time.monotonic() < deadline, "uvicorn did not start"
        time.sleep(0.02)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=30)
        assert not thread.is_alive(), "uvicorn did not stop"


@pytest.fixture
def service(tmp_path: Path, telemetry: Recorded) -> Iterator[str]:
    """The service on a SQLite file, in this process (its spans are recorded), at a URL."""
    with _serving(create_app(f"sqlite:///{tmp_path}/orders.db", tracer_provider=telemetry.provider)) as url:
        yield url


@dataclass
class Relayed:
    """The service with its relay publishing to Redis streams ``<prefix>:<category>``."""

    url: str
    redis: str
    prefix: str


@pytest.fixture
def relayed(tmp_path: Path, telemetry: Recorded, redis_url: str) -> Iterator[Relayed]:
    prefix = unique("shop")
    to = f"{redis_url}?key={prefix}:{{category}}"
    app = create_app(f"sqlite:///{tmp_path}/orders.db", relay_to=to, tracer_provider=telemetry.provider)
    try:
        with _serving(app) as url:
            yield Relayed(url, redis_url, prefix)
    finally:
        redis_delete(redis_url, f"*{prefix}*")


def _arrived(relayed: Relayed, category: str, count: int) -> list[dict[str, bytes]]:
    """The entries the relay added to the category's Redis stream, once there are ``count``."""
    key = f"{relayed.prefix}:{category}"
    deadline = time.monotonic() + 20
    while len(entries := redis_entries(relayed.redis, key)) < count:
        assert time.monotonic() < deadline, f"{key}: {len(entries)} entries, not {count}"
        time.sleep(0.05)
    return entries


def _until(client: httpx2.Client, path: str, done: Any, timeout: float = 20) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while True:
        response = client.get(path)
        body: dict[str, Any] = response.json()
        if response.status_code == 200 and done(body):
            return body
        assert time.monotonic() < deadline, f"{path}: {response.status_code} {body}"
        time.sleep(0.05)


def test_commands_conflicts_and_queries_over_http(service: str) -> None:
    with httpx2.Client(base_url=service, timeout=10) as client:
        assert client.post("/stock", json={"sku": "book", "quantity": 10}).status_code == 200
        created = client.post("/orders", json={"order_id": "1", "customer": "ada"})
        assert created.status_code == 201
        assert created.json()["version"] == 1

        again = client.post("/orders", json={"order_id": "1", "customer": "grace"})
        assert again.status_code == 409
        assert {k: again.json()[k] for k in ("stream_id", "expected_version", "actual_version")} == {
            "stream_id": "order-1",
            "expected_version": "no_stream",
            "actual_version": 1,
        }

        item = {"sku": "book", "quantity": 2, "unit_price": 1250}
        added = client.post("/orders/1/items", json={**item, "expected_version": 1})
        assert added.status_code == 200 and added.json()["version"] == 2
        stale = client.post("/orders/1/items", json={**item, "expected_version": 1})
        assert stale.status_code == 409
        assert (stale.json()["expected_version"], stale.json()["actual_version"]) == (1, 2)

        # The read model, once the projection has reached the command's checkpoint.
        order = client.get("/orders/1", params={"after": added.json()["checkpoint"]})
        assert order.status_code == 200
        expected = {"order_id": "1", "customer": "ada", "status": "open", "total": 2500, "items": 2}
        assert order.json() == expected

        submitted = client.post("/orders/1/submit", json={})
        assert submitted.status_code == 202
        # The saga reserves the stock, charges the payment and confirms the order.
        assert _until(client, "/orders/1", lambda o: o["status"] == "confirmed")["total"] == 2500

        refused = client.post("/orders/1/items", json=item)
        assert refused.status_code == 422
        assert "submitted" in refused.json()["detail"]
        assert client.get("/orders/2").status_code == 404
        assert client.post("/orders", json={"order_id": "", "customer": "x"}).status_code == 422

        runners = client.get("/status").json()["runners"]
        assert {(r["name"], r["kind"]) for r in runners} == {
            ("orders", "projection"),
            ("checkout", "process manager"),
        }
        assert all(r["state"] in ("running", "caught_up") for r in runners)


def _shipment(message: InboundMessage) -> tuple[str, ShipOrder]:
    """The warehouse's route: an order confirmed (a checkout's outcome) is shipped."""
    confirmed = message.decode(dict[str, str])
    return f"shipment-{confirmed['order_id']}", ShipOrder(confirmed["order_id"])


@pytest.mark.redis
def test_one_trace_from_an_http_request_through_the_command_its_events_the_projection_and_the_saga(
    relayed: Relayed, telemetry: Recorded, tmp_path: Path
) -> None:
    """And on through the relay's publishes to the broker, and into the command another
    service's inbound consumer makes of what it receives there."""
    with httpx2.Client(base_url=relayed.url, timeout=10) as client:
        client.post("/stock", json={"sku": "book", "quantity": 10})
        client.post("/orders", json={"order_id": "7", "customer": "ada"})
        client.post("/orders/7/items", json={"sku": "book", "quantity": 1, "unit_price": 990})
        # The caller's trace, as a browser or an upstream service would send it.
        headers = {"traceparent": f"00-{TRACE_ID}-00f067aa0ba902b7-01"}
        assert client.post("/orders/7/submit", json={}, headers=headers).status_code == 202
        _until(client, "/orders/7", lambda o: o["status"] == "confirmed")
    (confirmed,) = _arrived(relayed, "checkout", 1)
    _arrived(relayed, "order", 3)

    # The warehouse, another service: its consumer of the checkouts' outcomes.
    with chronik.connect(f"sqlite:///{tmp_path}/warehouse.db", registry=shipping_registry) as warehouse:
        source = RedisStreamsSource(relayed.redis, key=f"{relayed.prefix}:checkout", group="warehouse")
        handle = command_handler(chronik.CommandHandler(warehouse, shipping), _shipment)
        assert Inbound(source, handle, idle_timeout=0.5).run_until_idle() == 1
        (scheduled,) = warehouse.read_stream("shipment-7")

    trace_id = int(TRACE_ID, 16)

    def in_trace(prefix: str) -> list[Any]:
        spans = telemetry.spans(prefix)
        return [s for s in spans if s.context is not None and s.context.trace_id == trace_id]

    (server,) = [s for s in in_trace("POST /orders/{order_id}/submit") if s.kind.name == "SERVER"]
    assert server.parent is not None and server.parent.span_id == 0x00F067AA0BA902B7
    (handle_span,) = in_trace("handle order")
    assert dict(handle_span.attributes or {})["chronik.command"] == "SubmitOrder"
    (append,) = in_trace("append order")
    assert dict(append.attributes or {})["chronik.stream"] == "order-7"
    steps = [dict(s.attributes or {})["chronik.event_type"] for s in in_trace("process manager checkout")]
    assert steps == ["OrderSubmitted", "StockReserved", "PaymentCharged"]
    follow_ups = {dict(s.attributes or {})["chronik.stream"] for s in in_trace("execute")}
    assert follow_ups == {"stock-warehouse", "payment-7"}
    projected = [dict(s.attributes or {})["chronik.event_type"] for s in in_trace("projection orders")]
    assert projected == ["OrderSubmitted", "OrderConfirmed"]
    # The earlier requests are traces of their own.
    assert not in_trace("POST /orders/{order_id}/items")

    # The relay published the order's submit and the checkout's outcome in the request's trace.
    sent = {dict(s.attributes or {})["chronik.event_type"]: s for s in in_trace("send ")}
    assert set(sent) == {"OrderSubmitted", "OrderConfirmed"}
    outcome = sent["OrderConfirmed"]
    assert dict(outcome.attributes or {})["messaging.destination.name"] == f"{relayed.prefix}:checkout"
    assert outcome.context is not None
    assert confirmed["traceparent"].decode().startswith(f"00-{TRACE_ID}-{outcome.context.span_id:016x}-")
    # The warehouse handled it in a span of the same trace, its command and event too.
    (process,) = in_trace(f"process {relayed.prefix}:checkout")
    assert process.parent is not None and process.parent.span_id == outcome.context.span_id
    (shipped,) = in_trace("handle shipment")
    assert shipped.parent is not None and process.context is not None
    assert shipped.parent.span_id == process.context.span_id
    assert in_trace("append shipment")
    assert scheduled.metadata["traceparent"].startswith(f"00-{TRACE_ID}-")


@pytest.mark.redis
def test_the_relay_in_the_lifespan_publishes_the_orders_events_in_their_requests_traces(
    relayed: Relayed,
) -> None:
    with httpx2.Client(base_url=relayed.url, timeout=10) as client:
        headers = {"traceparent": f"00-{TRACE_ID}-00f067aa0ba902b7-01"}
        assert (
            client.post("/orders", json={"order_id": "3", "customer": "ada"}, headers=headers).status_code
            == 201
        )
        client.post("/orders/3/items", json={"sku": "pen", "quantity": 2, "unit_price": 150})
        created, added = _arrived(relayed, "order", 2)
        status = client.get("/status").json()

    assert (created["chronik-type"], created["chronik-stream"]) == (b"OrderCreated", b"order-3")
    assert created["traceparent"].decode().startswith(f"00-{TRACE_ID}-")
    assert added["chronik-type"] == b"OrderItemAdded"
    assert not added["traceparent"].decode().startswith(f"00-{TRACE_ID}-")  # a request of its own
    assert status["relay"] == {"name": "orders", "to": f"{relayed.redis}?key={relayed.prefix}:{{category}}"}
    (relay,) = [r for r in status["runners"] if r["kind"] == "relay"]
    assert relay["name"] == "relay.orders" and relay["state"] in ("running", "caught_up")
    assert not redis_entries(relayed.redis, f"{relayed.prefix}:stock")  # the warehouse stays inside


def test_the_service_runs_as_its_docstring_says(tmp_path: Path) -> None:
    port = free_port()
    env = {**os.environ, "CHRONIK_URL": f"sqlite:///{tmp_path}/orders.db"}
    args = [sys.executable, "-m", "uvicorn", "--factory", "chronik.examples.fastapi_orders:create_app"]
    process = subprocess.Popen(
        [*args, "--host", "127.0.0.1", "--port", str(port)], env=env, cwd=tmp_path, stderr=subprocess.PIPE
    )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while True:
            assert process.poll() is None, process.stderr.read().decode() if process.stderr else ""
            try:
                if httpx2.get(f"{base}/status", timeout=1).status_code == 200:
                    break
            except httpx2.HTTPError:
                pass
            assert time.monotonic() < deadline, "the service did not answer"
            time.sleep(0.1)
        created = httpx2.post(f"{base}/orders", json={"order_id": "1", "customer": "ada"}, timeout=5)
        assert created.status_code == 201
        found = httpx2.get(f"{base}/orders/1", params={"after": created.json()["checkpoint"]}, timeout=10)
        assert found.json()["customer"] == "ada"
    finally:
        process.terminate()  # uvicorn shuts down on SIGTERM, then ends by that signal
        try:
            _, err = process.communicate(timeout=20)
        finally:
            if process.poll() is None:
                process.kill()
                process.wait()
    # The lifespan ended: the runners stopped and the store closed without an error.
    assert "Application shutdown complete." in err.decode(), err.decode()
    assert "Traceback" not in err.decode()
