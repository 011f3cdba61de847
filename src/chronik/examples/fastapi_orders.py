"""A web service on chronik: orders over HTTP, with FastAPI (``pip install 'chronik[fastapi]'``).

Run it with uvicorn (the store is ``CHRONIK_URL``, by default ``sqlite:///orders.db``;
the broker the relay publishes to is ``CHRONIK_RELAY_TO``, by default none)::

    CHRONIK_RELAY_TO='redis://127.0.0.1:6379/0?key=shop:{category}' \
        uvicorn --factory chronik.examples.fastapi_orders:create_app

What it shows:

- **Commands are POST endpoints**, each one command through a
  :class:`~chronik.CommandHandler` (orders, as :mod:`chronik.examples.orders`
  decides them; stock, as the warehouse of :mod:`chronik.examples.saga`). A body's
  ``expected_version`` is the client's optimistic lock.
- **409 on conflicts**: a stream that is not at the expected version (or that kept
  moving under a command until its retries ran out) answers ``409`` with the stream,
  the expected and the actual version. A command the rules refuse answers ``422``.
- **Queries are answered from a projection's read model** (the order projection of
  :mod:`chronik.examples.order_projection`, in the store's own SQLite file), not
  from the events. Every command answers with its ``checkpoint``; ``GET
  /orders/{id}?after=<checkpoint>`` waits until the projection has got that far, so
  a client reads its own writes.
- **A projection runner, a process manager and the relay run beside the
  application**, started and stopped by its lifespan: the order projection, the
  checkout saga that reserves stock, charges the payment and confirms the order after
  a submit, and, when a broker is configured, the relay that publishes the orders'
  events and their checkouts' outcomes (:data:`RELAY`) to it (any URL
  :func:`chronik.brokers.publisher_for` takes: NATS, JetStream, RabbitMQ, Redis
  Streams, Kafka). ``GET /status`` shows them (state, checkpoint, lag) and where the
  relay publishes to.
- **Traces on**: OpenTelemetry's FastAPI instrumentation makes a span of each
  request, and chronik's own spans (``chronik.telemetry``) continue it through the
  command, its events, the projection, the saga's follow-up commands and the relay's
  publishes, whose messages carry it on to their consumers: one trace per request.
  Configure the SDK as usual (``opentelemetry-instrument``, or the global
  providers), or pass providers to :func:`create_app`.

The read model is eventually consistent with the events (the runners follow the
log in the background): that is what ``after=`` is for.
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Final

import msgspec

from chronik.errors import (
    ConfigurationError,
    InvalidInputError,
    RetriesExhaustedError,
    WrongExpectedVersionError,
)

try:
    from fastapi import FastAPI, HTTPException, Request
    from fastapi.responses import JSONResponse
    from opentelemetry.instrumentation.fastapi import FastAPIInstrumentor
    from pydantic import BaseModel, Field
except ModuleNotFoundError as _missing:  # pragma: no cover - depends on the install
    raise ConfigurationError(
        f"chronik.examples.fastapi_orders needs the fastapi extra ({_missing.name} is missing): "
        "pip install 'chronik[fastapi]'"
    ) from _missing

import chronik
from chronik._options import redacted
from chronik.brokers import BlockingPublisher, publisher_for
from chronik.events import Checkpoint, StreamState
from chronik.examples import registry
from chronik.examples.order_projection import order_projection, order_summary
from chronik.examples.orders import AddItem, CreateOrder, OrderError, SubmitOrder, order_decider
from chronik.examples.saga import WAREHOUSE, AddStock, checkout_saga, warehouse_decider
from chronik.handling import CommandHandler, CommandResult
from chronik.process_managers import process_manager_runner
from chronik.projections import ProjectionRunner
from chronik.relay import Relay, relay_runner
from chronik.store import EventStore, SQLDatabase

if TYPE_CHECKING:
    from opentelemetry.metrics import MeterProvider
    from opentelemetry.trace import TracerProvider

__all__ = ["DEFAULT_URL", "RELAY", "NewItem", "NewOrder", "NewStock", "Service", "Submit", "create_app"]

DEFAULT_URL: Final = "sqlite:///orders.db"
RELAY: Final = Relay("orders", categories=["order", "checkout"])
"""What the relay publishes: the orders' events, and their checkouts' outcomes
(``OrderConfirmed``, ``OrderCancelled``); stock and payments stay inside."""
WAIT: Final = 5.0
"""Seconds ``GET /orders/{id}?after=`` waits for the projection at most."""


class NewOrder(BaseModel):
    """``POST /orders``: create an order."""

    order_id: str = Field(min_length=1, max_length=100)
    customer: str = Field(min_length=1)


class NewItem(BaseModel):
    """``POST /orders/{id}/items``: add an item, at ``expected_version`` when given."""

    sku: str = Field(min_length=1)
    quantity: int
    unit_price: int = Field(ge=0, description="in cents")
    expected_version: int | None = Field(default=None, ge=0)


class Submit(BaseModel):
    """``POST /orders/{id}/submit``: submit the order (the checkout saga takes it on)."""

    expected_version: int | None = Field(default=None, ge=0)


class NewStock(BaseModel):
    """``POST /stock``: units of a product arrive at the warehouse."""

    sku: str = Field(min_length=1)
    quantity: int = Field(ge=1)


@dataclass
class Service:
    """What the lifespan starts and the endpoints use (``app.state.service``)."""

    store: EventStore
    database: SQLDatabase
    """The same store, as the SQL database where the read model is."""
    orders: CommandHandler[Any, Any]
    stock: CommandHandler[Any, Any]
    projection: ProjectionRunner[Any]
    saga: ProjectionRunner[Any]
    relay: ProjectionRunner[Any] | None = None
    """The relay to the broker (None: no broker configured)."""
    broker: BlockingPublisher | None = None
    relay_to: str | None = None
    """The broker's URL, without its password."""

    def start(self) -> None:
        # Caught up before the first request: the read model's views exist and serve
        # (a projection is made active when it first reaches the head).
        self.projection.run_until_caught_up()
        self.projection.run_in_background()
        self.saga.run_in_background()
        if self.relay is not None:
            # A broker that is away does not stop the service: the relay retries
            # (GET /status says so) and publishes what it missed once it is back.
            self.relay.run_in_background()

    def stop(self) -> None:
        try:
            # The relay first: what it has not published yet goes after the next start.
            if self.relay is not None:
                self.relay.stop(timeout=10)
            if self.broker is not None:
                self.broker.close()
        finally:
            self.saga.stop(timeout=10)
            self.projection.stop(timeout=10)
            self.store.close()

    def runners(self) -> list[ProjectionRunner[Any]]:
        found = [self.projection, self.saga]
        return found if self.relay is None else [*found, self.relay]


def _accepted(result: CommandResult[Any]) -> dict[str, Any]:
    return {
        "stream_id": result.stream_id,
        "version": result.version,
        "checkpoint": None if result.checkpoint is None else str(result.checkpoint),
        "events": [type(e).__name__ for e in result.events],
        "already_handled": result.already_handled,
    }


def _expected(version: int | None) -> int | StreamState:
    return chronik.ANY if version is None else version


def _version(expected: object) -> object:
    return expected.value if isinstance(expected, StreamState) else expected


def create_app(
    url: str | None = None,
    *,
    relay_to: str | None = None,
    tracer_provider: TracerProvider | None = None,
    meter_provider: MeterProvider | None = None,
) -> FastAPI:
    """The service on the store at ``url`` (default: ``CHRONIK_URL``, else :data:`DEFAULT_URL`).

    ``relay_to``: the broker the relay publishes :data:`RELAY`'s events to, a URL of
    :func:`chronik.brokers.publisher_for` (default: ``CHRONIK_RELAY_TO``, else none,
    and no relay runs). ``tracer_provider``, ``meter_provider``: for the HTTP spans
    and metrics (default: OpenTelemetry's global providers); chronik's own go where
    :func:`chronik.telemetry.configure` says.
    """
    store_url = url or os.environ.get("CHRONIK_URL") or DEFAULT_URL
    broker_url = relay_to or os.environ.get("CHRONIK_RELAY_TO") or None

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        store = chronik.connect(store_url, registry=registry)
        if not isinstance(store, SQLDatabase) or not store.sql_dialect.startswith("sqlite"):
            store.close()
            raise ConfigurationError(
                f"{store_url}: the order projection keeps its read model in the store's own SQLite file, "
                "so this service needs a sqlite:/// store"
            )
        service = Service(
            store,
            store,
            CommandHandler(store, order_decider),
            CommandHandler(store, warehouse_decider),
            ProjectionRunner(store, order_projection()),
            process_manager_runner(store, checkout_saga),
        )
        try:
            # == THE RELAY ==================================================================
            # chronik's relay, publishing the orders' events to the company's broker, runs
            # beside the projection and the saga: started after them, stopped before them
            # (Service.start, Service.stop). Its messages carry each event's trace on.
            if broker_url is not None:
                service.broker = BlockingPublisher(publisher_for(broker_url))
                service.relay = relay_runner(store, RELAY, service.broker)
                service.relay_to = redacted(broker_url)
            # ================================================================================
            service.start()
        except BaseException:
            service.stop()
            raise
        app.state.service = service
        try:
            yield
        finally:
            service.stop()

    app = FastAPI(title="chronik orders", lifespan=lifespan)

    def service_of(request: Request) -> Service:
        found: Service = request.app.state.service
        return found

    @app.exception_handler(WrongExpectedVersionError)
    async def conflict(request: Request, err: WrongExpectedVersionError) -> JSONResponse:
        return JSONResponse(
            status_code=409,
            content={
                "detail": str(err),
                "stream_id": err.stream_id,
                "expected_version": _version(err.expected),
                "actual_version": err.actual,
            },
        )

    @app.exception_handler(RetriesExhaustedError)
    async def contended(request: Request, err: RetriesExhaustedError) -> JSONResponse:
        return JSONResponse(
            status_code=409,
            content={
                "detail": str(err),
                "stream_id": err.stream_id,
                "expected_version": None,
                "actual_version": err.version,
            },
        )

    @app.exception_handler(OrderError)
    async def refused(request: Request, err: OrderError) -> JSONResponse:
        return JSONResponse(status_code=422, content={"detail": str(err)})

    @app.exception_handler(InvalidInputError)
    async def invalid(request: Request, err: InvalidInputError) -> JSONResponse:
        return JSONResponse(status_code=422, content={"detail": str(err)})

    # Plain functions: FastAPI runs them on its thread pool (the store is a sync one,
    # with a connection per thread); OpenTelemetry's context goes along.

    @app.post("/stock")
    def add_stock(body: NewStock, request: Request) -> dict[str, Any]:
        result = service_of(request).stock.handle(WAREHOUSE, AddStock(body.sku, body.quantity))
        return _accepted(result)

    @app.post("/orders", status_code=201)
    def create_order(body: NewOrder, request: Request) -> dict[str, Any]:
        # start: the stream must not exist (else 409, expected "no_stream"); no read first.
        result = service_of(request).orders.start(f"order-{body.order_id}", CreateOrder(body.customer))
        return _accepted(result)

    @app.post("/orders/{order_id}/items")
    def add_item(order_id: str, body: NewItem, request: Request) -> dict[str, Any]:
        command = AddItem(body.sku, body.quantity, body.unit_price)
        expected = _expected(body.expected_version)
        result = service_of(request).orders.handle(f"order-{order_id}", command, expected_version=expected)
        return _accepted(result)

    @app.post("/orders/{order_id}/submit", status_code=202)
    def submit(order_id: str, body: Submit, request: Request) -> dict[str, Any]:
        expected = _expected(body.expected_version)
        result = service_of(request).orders.handle(
            f"order-{order_id}", SubmitOrder(), expected_version=expected
        )
        return _accepted(result)

    @app.get("/orders/{order_id}")
    def get_order(order_id: str, request: Request, after: str | None = None) -> dict[str, Any]:
        service = service_of(request)
        if after is not None:
            try:
                checkpoint = Checkpoint.parse(after)
            except InvalidInputError as err:
                raise HTTPException(422, str(err)) from err
            if not service.projection.wait_for(checkpoint, timeout=WAIT):
                raise HTTPException(503, f"the order projection has not reached {after} yet: try again")
        connection = service.database.connect_dbapi()
        try:
            found = order_summary(connection, order_id)
        finally:
            connection.close()
        if found is None:
            raise HTTPException(404, f"no order {order_id!r}")
        return found

    @app.get("/status")
    def status(request: Request) -> dict[str, Any]:
        service = service_of(request)
        runners = [runner.status() for runner in service.runners()]
        relay = None if service.relay is None else {"name": RELAY.name, "to": service.relay_to}
        return {"runners": msgspec.to_builtins(runners), "relay": relay}

    FastAPIInstrumentor.instrument_app(app, tracer_provider=tracer_provider, meter_provider=meter_provider)
    return app
