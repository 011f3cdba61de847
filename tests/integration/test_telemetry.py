"""chronik's OpenTelemetry, recorded by the SDK's in-memory exporter: spans of appends,
loads, commands, projection batches and process-manager steps; the trace context in
events and its continuation; counters and lag gauges; log fields; and chronik
without the API installed."""

from __future__ import annotations

import asyncio
import logging
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import msgspec
import pytest
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.trace import SpanKind, StatusCode
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

import chronik
import chronik.telemetry
from chronik import NewEvent, RecordedEvent
from chronik.examples import registry
from chronik.examples.order_projection import order_projection
from chronik.examples.orders import AddItem, CreateOrder, SubmitOrder, order_decider
from chronik.examples.saga import WAREHOUSE, AddStock, checkout_saga, warehouse_decider
from chronik.process_managers import process_manager_runner
from chronik.projections import AsyncProjectionRunner, Projection, ProjectionRunner
from chronik.store import EventStore
from tests.conftest import Recorded

SECRET = "Ada Lovelace, 12 Marylebone Road"  # a payload that must never leave the store


@pytest.fixture(params=["memory", "sqlite"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[EventStore]:
    url = "memory://" if request.param == "memory" else f"sqlite:///{tmp_path}/shop.db"
    with chronik.connect(url, registry=registry) as store:
        yield store


def _ids(span: ReadableSpan) -> tuple[int, int]:
    assert span.context is not None
    return span.context.trace_id, span.context.span_id


def _traceparent(span: ReadableSpan) -> str:
    trace_id, span_id = _ids(span)
    return f"00-{trace_id:032x}-{span_id:016x}-"


def _no_payload(spans: list[ReadableSpan]) -> None:
    for span in spans:
        assert SECRET not in repr(dict(span.attributes or {})), span.name
        for event in span.events:
            assert SECRET not in repr(dict(event.attributes or {})), span.name


# -- appends -----------------------------------------------------------------------------------


def test_an_append_is_a_producer_span_whose_context_its_events_carry(
    store: EventStore, telemetry: Recorded
) -> None:
    store.append("note-1", [NewEvent("Noted", {"text": SECRET})], chronik.NO_STREAM)
    result = store.append("note-1", [NewEvent("Noted", {"text": SECRET}), NewEvent("Noted", {})], 1)

    first, second = telemetry.spans("append")
    assert second.name == "append note"
    assert second.kind is SpanKind.PRODUCER
    attributes = dict(second.attributes or {})
    assert attributes["chronik.stream"] == "note-1"
    assert attributes["chronik.category"] == "note"
    assert attributes["chronik.expected_version"] == 1
    assert attributes["chronik.event_count"] == 2
    assert attributes["chronik.version"] == result.version == 3
    assert attributes["chronik.position"] == result.position
    assert attributes["messaging.destination.name"] == "note-1"
    assert attributes["messaging.operation.type"] == "send"
    assert attributes["db.system.name"] in ("memory", "sqlite")
    assert dict(first.attributes or {})["chronik.expected_version"] == "no_stream"
    _no_payload(telemetry.spans())

    events = store.read_stream("note-1")
    assert events[0].metadata["traceparent"].startswith(_traceparent(first))
    assert [e.metadata["traceparent"] for e in events[1:]] == [events[1].metadata["traceparent"]] * 2
    assert events[1].metadata["traceparent"].startswith(_traceparent(second))
    assert "tracestate" not in events[0].metadata


def test_the_append_span_is_a_child_of_the_callers_span_and_keeps_its_tracestate(
    store: EventStore, telemetry: Recorded
) -> None:
    incoming = TraceContextTextMapPropagator().extract(
        {"traceparent": "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01", "tracestate": "shop=eu"}
    )
    with telemetry.tracer.start_as_current_span("POST /notes", context=incoming) as request:
        store.append("note-1", [NewEvent("Noted", {})])
    append = telemetry.span("append note")
    assert append.parent is not None and append.parent.span_id == request.get_span_context().span_id
    assert _ids(append)[0] == 0x0AF7651916CD43DD8448EB211C80319C
    (event,) = store.read_stream("note-1")
    assert event.metadata["tracestate"] == "shop=eu"
    assert chronik.telemetry.trace_headers(event) == {
        "traceparent": event.metadata["traceparent"],
        "tracestate": "shop=eu",
    }


def test_metadata_that_sets_a_traceparent_keeps_it(store: EventStore, telemetry: Recorded) -> None:
    given = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"
    store.append("note-1", [NewEvent("Noted", {}, metadata={"traceparent": given})])
    assert store.read_stream("note-1")[0].metadata["traceparent"] == given


def test_append_many_and_append_if_are_spans_too(telemetry: Recorded) -> None:
    with chronik.connect("memory://") as store:
        store.append_many(
            [
                chronik.StreamWrite("a-1", [NewEvent("A", {})]),
                chronik.StreamWrite("b-1", [NewEvent("B", {}), NewEvent("B", {})]),
            ]
        )
        decided = store.append_if([NewEvent("Decided", {}, tags=("course:1",))], None)
    many = dict(telemetry.span("append_many").attributes or {})
    assert many["chronik.streams"] == ("a-1", "b-1")
    assert many["chronik.event_count"] == 3
    dcb = dict(telemetry.span("append_if").attributes or {})
    assert dcb["chronik.stream"] == decided.stream_id
    assert dcb["chronik.position"] == decided.position
    assert sorted(telemetry.points("chronik.events.appended"), key=repr) == [
        ({"db.system.name": "memory", "chronik.category": "dcb"}, 1),
        ({"db.system.name": "memory"}, 3),  # append_many: one count for its streams
    ]


def test_a_dcb_decision_is_a_span_around_its_append_if(telemetry: Recorded) -> None:
    from chronik.query import Query

    decider: chronik.DCBDecider[str, Any, int] = chronik.DCBDecider(
        query=lambda command: Query.of(types=["Subscribed"], tags=["course:1"]),
        decide=lambda command, seats: [NewEvent("Subscribed", {}, tags=("course:1",))] if seats < 2 else [],
        evolve=lambda seats, event: seats + 1,
        initial_state=0,
    )
    with chronik.connect("memory://") as store:
        result = chronik.DCBCommandHandler(store, decider).handle("subscribe")
    handle = telemetry.span("handle dcb")
    assert dict(handle.attributes or {})["chronik.position"] == result.position
    (append,) = telemetry.spans("append_if")
    assert append.parent is not None and append.parent.span_id == _ids(handle)[1]


def test_a_refused_append_is_a_failed_span_and_a_conflict(store: EventStore, telemetry: Recorded) -> None:
    store.append("note-1", [NewEvent("Noted", {})])
    with pytest.raises(chronik.WrongExpectedVersionError):
        store.append("note-1", [NewEvent("Noted", {})], chronik.NO_STREAM)
    with pytest.raises(chronik.InvalidInputError):
        store.append("note-1", [], chronik.ANY)

    ok, conflict, invalid = telemetry.spans("append")
    assert ok.status.status_code is StatusCode.UNSET
    assert conflict.status.status_code is StatusCode.ERROR
    assert dict(conflict.attributes or {})["error.type"] == "WrongExpectedVersionError"
    assert dict(conflict.attributes or {})["chronik.actual_version"] == 1
    assert [e.name for e in conflict.events] == ["exception"]
    assert invalid.status.status_code is StatusCode.ERROR
    system = dict(ok.attributes or {})["db.system.name"]
    assert telemetry.points("chronik.appends") == [
        ({"db.system.name": system, "chronik.category": "note"}, 1)
    ]
    assert telemetry.points("chronik.conflicts") == [
        (
            {"db.system.name": system, "chronik.category": "note", "error.type": "WrongExpectedVersionError"},
            1,
        )
    ]


def test_going_back_to_the_global_providers_registers_nothing_twice(telemetry: Recorded) -> None:
    from chronik import _otel

    chronik.telemetry.configure()
    first = _otel.current()
    chronik.telemetry.configure()
    assert first is not None and _otel.current() is first  # its instruments are on the global meter once


def test_turned_off_there_are_neither_spans_nor_trace_context(store: EventStore, telemetry: Recorded) -> None:
    chronik.telemetry.configure(enabled=False)
    with telemetry.tracer.start_as_current_span("request"):
        store.append("note-1", [NewEvent("Noted", {})])
    assert telemetry.spans("append") == []
    assert store.read_stream("note-1")[0].metadata == {}


# -- commands ----------------------------------------------------------------------------------


class Bump(msgspec.Struct, frozen=True):
    pass


class Bumped(msgspec.Struct, frozen=True):
    pass


def _counter(store: EventStore, interfere: list[str]) -> chronik.Decider[Bump, Bumped, int]:
    """A counter whose decision lets another writer append first while ``interfere`` lasts:
    a real conflict, the handler's append refused by the store."""
    store.codec.registry.register(Bumped, "Bumped")

    def decide(command: Bump, count: int) -> list[Bumped]:
        if interfere:
            store.append(interfere.pop(), [Bumped()])
        return [Bumped()]

    return chronik.Decider(decide=decide, evolve=lambda n, e: n + 1, initial_state=0, category="counter")


def test_a_command_is_a_span_with_its_load_its_append_and_its_conflicts(
    store: EventStore, telemetry: Recorded
) -> None:
    handler = chronik.CommandHandler(store, _counter(store, ["counter-1"]))
    result = handler.handle("counter-1", Bump())
    assert result.attempts == 2

    handle = telemetry.span("handle counter")
    attributes = dict(handle.attributes or {})
    assert attributes["chronik.stream"] == "counter-1"
    assert attributes["chronik.command"] == "Bump"
    assert attributes["chronik.attempts"] == 2
    assert attributes["chronik.version"] == 2
    assert attributes["chronik.event_count"] == 1
    (conflict,) = handle.events
    assert conflict.name == "chronik.conflict"
    assert dict(conflict.attributes or {}) == {
        "chronik.stream": "counter-1",
        "chronik.expected_version": 0,
        "chronik.actual_version": 1,
        "chronik.attempt": 1,
    }
    loads = telemetry.spans("load counter")
    assert [dict(s.attributes or {})["chronik.version"] for s in loads] == [0, 1]
    # The other writer's append (made inside the decision), the handler's refused one, its second.
    appends = telemetry.spans("append counter")
    assert [s.status.status_code for s in appends] == [StatusCode.UNSET, StatusCode.ERROR, StatusCode.UNSET]
    assert all(s.parent is not None and s.parent.span_id == _ids(handle)[1] for s in appends)
    assert all(s.parent is not None and s.parent.span_id == _ids(handle)[1] for s in loads)


def test_a_command_that_runs_out_of_retries_is_a_failed_span(store: EventStore, telemetry: Recorded) -> None:
    handler = chronik.CommandHandler(store, _counter(store, ["counter-1"]), retries=0)
    with pytest.raises(chronik.RetriesExhaustedError):
        handler.handle("counter-1", Bump())
    handle = telemetry.span("handle counter")
    assert handle.status.status_code is StatusCode.ERROR
    assert dict(handle.attributes or {})["error.type"] == "RetriesExhaustedError"
    assert [e.name for e in handle.events] == ["exception"]  # no retry: no conflict event


def test_a_load_from_a_snapshot_says_so(tmp_path: Path, telemetry: Recorded) -> None:
    with chronik.connect(f"sqlite:///{tmp_path}/s.db") as store:
        counter = _counter(store, [])
        handler = chronik.CommandHandler(store, counter, snapshots=chronik.SnapshotPolicy(every=2))
        for _ in range(3):
            handler.handle("counter-1", Bump())
        loaded = handler.load("counter-1")
    assert loaded.snapshot_version == 2
    last = telemetry.spans("load counter")[-1]
    assert dict(last.attributes or {})["chronik.snapshot_version"] == 2
    assert dict(last.attributes or {})["chronik.version"] == 3


def test_an_asyncio_command_on_an_adapted_store_is_one_trace(tmp_path: Path, telemetry: Recorded) -> None:
    async def main() -> None:
        async with chronik.connect_async(f"sqlite:///{tmp_path}/a.db", registry=registry) as store:
            orders = chronik.AsyncCommandHandler(store, order_decider)
            with telemetry.tracer.start_as_current_span("request"):
                await orders.handle("order-1", CreateOrder("ada"))

    asyncio.run(main())
    request, handle, append = (
        telemetry.span("request"),
        telemetry.span("handle order"),
        telemetry.span("append order"),
    )
    assert handle.parent is not None and handle.parent.span_id == _ids(request)[1]
    # The sync store's append ran on the adapter's thread, in the caller's context.
    assert append.parent is not None and append.parent.span_id == _ids(handle)[1]


# -- projections and process managers: one trace -----------------------------------------------


def test_one_trace_from_a_request_through_its_events_a_projection_and_a_process_manager(
    tmp_path: Path, telemetry: Recorded
) -> None:
    with chronik.connect(f"sqlite:///{tmp_path}/shop.db", registry=registry) as store:
        chronik.CommandHandler(store, warehouse_decider).handle(WAREHOUSE, AddStock("book", 10))
        orders = chronik.CommandHandler(store, order_decider)
        with telemetry.tracer.start_as_current_span("POST /orders/1/submit") as request:
            orders.handle("order-1", CreateOrder("ada"))
            orders.handle("order-1", AddItem("book", 2, 1250))
            orders.handle("order-1", SubmitOrder())
        saga = process_manager_runner(store, checkout_saga)
        projection = ProjectionRunner(store, order_projection())
        for _ in range(3):  # the saga's steps each react to the step before
            saga.run_until_caught_up()
        projection.run_until_caught_up()
        checkout = store.read_stream("checkout-1")

    trace_id = request.get_span_context().trace_id
    assert [e.type for e in checkout] == ["OrderConfirmed"]
    # The saga's last step appended it: its traceparent is in the request's trace.
    assert checkout[0].metadata["traceparent"].startswith(f"00-{trace_id:032x}-")
    steps = telemetry.spans("process manager checkout")
    assert [dict(s.attributes or {})["chronik.event_type"] for s in steps] == [
        "OrderSubmitted",
        "StockReserved",
        "PaymentCharged",
    ]
    assert {_ids(s)[0] for s in steps} == {trace_id}
    commands = telemetry.spans("execute")
    assert {dict(s.attributes or {})["chronik.stream"] for s in commands} == {WAREHOUSE, "payment-1"}
    assert {_ids(s)[0] for s in commands} == {trace_id}
    handled = telemetry.spans("projection orders")
    assert [dict(s.attributes or {})["chronik.event_type"] for s in handled] == [
        "OrderCreated",
        "OrderItemAdded",
        "OrderSubmitted",
        "OrderConfirmed",
    ]
    assert {_ids(s)[0] for s in handled} == {trace_id}
    # Each event's span has the span that appended it as its parent.
    appended = {_ids(s)[1] for s in telemetry.spans("append")}
    assert all(s.parent is not None and s.parent.span_id in appended for s in steps + handled)
    # The batches are spans of their own, linked to the traces of their events.
    (batch,) = telemetry.spans("projection batch orders")
    assert _ids(batch)[0] != trace_id
    assert {link.context.trace_id for link in batch.links} == {trace_id}
    assert all(
        any(link.context.span_id == _ids(batch)[1] for link in s.links) for s in handled
    )  # and each event's span links back to its batch
    assert dict(batch.attributes or {})["messaging.batch.message_count"] == 4


def test_an_event_without_trace_context_gets_no_span_of_its_own(tmp_path: Path, telemetry: Recorded) -> None:
    with chronik.connect(f"sqlite:///{tmp_path}/n.db") as store:
        chronik.telemetry.configure(enabled=False)
        store.append("note-1", [NewEvent("Noted", {}), NewEvent("Noted", {})])
        chronik.telemetry.configure(
            tracer_provider=telemetry.provider, meter_provider=None
        )  # on again, for the runner only
        seen: list[RecordedEvent] = []
        notes = Projection("notes", {"Noted": lambda event, ctx: seen.append(event)})
        ProjectionRunner(store, notes).run_until_caught_up()
    assert len(seen) == 2
    assert telemetry.spans("projection notes") == []
    (batch,) = telemetry.spans("projection batch notes")
    assert batch.links == ()


def test_a_failing_handler_marks_its_span_failed(tmp_path: Path, telemetry: Recorded) -> None:
    def fail(event: RecordedEvent, context: Any) -> None:
        raise RuntimeError("no")

    with chronik.connect(f"sqlite:///{tmp_path}/f.db") as store:
        store.append("note-1", [NewEvent("Noted", {})])
        runner = ProjectionRunner(store, Projection("notes", {"Noted": fail}))
        with pytest.raises(chronik.ProjectionFailedError):
            runner.run_until_caught_up()
    spans = telemetry.spans("projection notes")
    assert spans and all(s.status.status_code is StatusCode.ERROR for s in spans)
    assert dict(spans[0].attributes or {})["error.type"] == "RuntimeError"


# -- metrics -----------------------------------------------------------------------------------


def test_runners_report_their_lag_in_gauges(tmp_path: Path, telemetry: Recorded) -> None:
    with chronik.connect(f"sqlite:///{tmp_path}/l.db") as store:
        notes = Projection("notes", {"Noted": lambda event, ctx: None})
        runner = ProjectionRunner(store, notes)
        store.append("note-1", [NewEvent("Noted", {})])
        runner.run_until_caught_up()
        store.append("note-1", [NewEvent("Noted", {}), NewEvent("Noted", {}), NewEvent("Other", {})])
        labels = {"chronik.kind": "projection", "chronik.name": "notes", "chronik.version": 1}
        assert telemetry.points("chronik.lag.events") == [(labels, 2)]  # of the types it handles
        ((attributes, seconds),) = telemetry.points("chronik.lag.seconds")
        assert attributes == labels and seconds >= 0
        runner.run_until_caught_up()
        assert telemetry.points("chronik.lag.events") == [(labels, 0)]
        chronik.telemetry.forget_lag(runner)
        assert telemetry.points("chronik.lag.events") == []


def test_an_asyncio_runners_lag_is_read_on_its_own_loop(tmp_path: Path, telemetry: Recorded) -> None:
    async def main() -> None:
        async with chronik.connect_async(f"sqlite:///{tmp_path}/l.db") as store:
            runner = AsyncProjectionRunner(store, Projection("notes", {"Noted": lambda event, ctx: None}))
            await store.append("note-1", [NewEvent("Noted", {})])
            await runner.run_until_caught_up()
            await store.append("note-1", [NewEvent("Noted", {})])
            # The metric reader's thread waits for the status the loop takes.
            found = await asyncio.to_thread(telemetry.points, "chronik.lag.events")
            assert [value for _, value in found] == [1]
            await runner.run_until_caught_up()
            # A collection on the loop itself cannot wait: it reports the last status
            # taken, and asks for a fresh one, which the next collection reports.
            assert [value for _, value in telemetry.points("chronik.lag.events")] == [1]
            await asyncio.sleep(0.2)
            assert [value for _, value in telemetry.points("chronik.lag.events")] == [0]

    asyncio.run(main())


def test_observe_lag_takes_any_runner_with_a_status(telemetry: Recorded) -> None:
    class Lag(msgspec.Struct):
        events: int
        seconds: float

    class Status(msgspec.Struct):
        name: str
        kind: str
        lag: Lag | None

    class Relay:
        def status(self) -> Status:
            return Status("orders-to-rabbitmq", "relay", Lag(7, 1.5))

    relay = Relay()
    chronik.telemetry.observe_lag(relay)
    assert telemetry.points("chronik.lag.events") == [
        ({"chronik.kind": "relay", "chronik.name": "orders-to-rabbitmq"}, 7)
    ]
    assert [value for _, value in telemetry.points("chronik.lag.seconds")] == [1.5]
    with pytest.raises(chronik.ConfigurationError, match="status"):
        chronik.telemetry.observe_lag(object())


# -- brokers: what the relay and inbound consumers call ----------------------------------------


def test_publishing_continues_the_events_trace_and_hands_it_to_the_message(telemetry: Recorded) -> None:
    with chronik.connect("memory://", registry=registry) as store:
        with telemetry.tracer.start_as_current_span("request") as request:
            store.append("order-1", [NewEvent("OrderPlaced", {"who": SECRET})])
        (event,) = store.read_stream("order-1")
        with chronik.telemetry.publishing(event, system="rabbitmq", destination="order") as headers:
            pass
        publish = telemetry.span("send order")
        assert publish.kind is SpanKind.PRODUCER
        assert _ids(publish)[0] == request.get_span_context().trace_id
        assert publish.parent is not None and event.metadata["traceparent"].startswith(
            f"00-{_ids(publish)[0]:032x}-{publish.parent.span_id:016x}-"
        )
        assert dict(publish.attributes or {})["messaging.message.id"] == str(event.event_id)
        assert headers["traceparent"].startswith(_traceparent(publish))

        # The consumer on the other side: a command handled in its span continues the trace.
        handler = chronik.CommandHandler(store, order_decider)
        with chronik.telemetry.consuming(
            {"Traceparent": headers["traceparent"].encode()}, system="rabbitmq", destination="commands"
        ):
            handler.handle("order-2", CreateOrder("grace"))
        process = telemetry.span("process commands")
        assert process.kind is SpanKind.CONSUMER
        assert process.parent is not None and process.parent.span_id == _ids(publish)[1]
        assert _ids(telemetry.span("handle order"))[0] == request.get_span_context().trace_id
    _no_payload(telemetry.spans())


def test_publishing_without_telemetry_hands_on_the_stored_context(telemetry: Recorded) -> None:
    with chronik.connect("memory://") as store:
        with telemetry.tracer.start_as_current_span("request"):
            store.append("order-1", [NewEvent("OrderPlaced", {})])
        (event,) = store.read_stream("order-1")
        chronik.telemetry.configure(enabled=False)
        with chronik.telemetry.publishing(event, system="nats", destination="orders.placed") as headers:
            assert headers == {"traceparent": event.metadata["traceparent"]}
    assert telemetry.spans("send") == []


def test_a_failed_publish_marks_its_span_failed(telemetry: Recorded) -> None:
    with chronik.connect("memory://") as store:
        store.append("order-1", [NewEvent("OrderPlaced", {})])
        (event,) = store.read_stream("order-1")
        with (
            pytest.raises(ConnectionError),
            chronik.telemetry.publishing(event, system="redis", destination="x"),
        ):
            raise ConnectionError("broker gone")
    assert telemetry.span("send x").status.status_code is StatusCode.ERROR


def test_an_inbound_commands_events_descend_from_its_append_in_the_senders_trace(telemetry: Recorded) -> None:
    from chronik.brokers import InboundMessage
    from chronik.inbound import command_handler

    sender = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"
    message = InboundMessage("m1", b'{"customer": "ada"}', {"traceparent": sender}, "test")
    with chronik.connect("memory://", registry=registry) as store:
        handle = command_handler(
            chronik.CommandHandler(store, order_decider), lambda m: ("order-1", m.decode(CreateOrder))
        )
        with chronik.telemetry.consuming(message.headers, system="redis", destination="commands"):
            handle(message)
        (created,) = store.read_stream("order-1")
    # Not the sender's own span: the append's, in the sender's trace.
    append = telemetry.span("append order")
    assert created.metadata["traceparent"].startswith(_traceparent(append))
    assert _ids(append)[0] == 0x0AF7651916CD43DD8448EB211C80319C
    assert created.metadata["causation_id"] == "m1"


def test_without_the_api_an_inbound_command_copies_the_senders_traceparent() -> None:
    program = """
import sys
sys.modules["opentelemetry"] = None
import chronik
from chronik.brokers import InboundMessage
from chronik.examples import registry
from chronik.examples.orders import CreateOrder, order_decider
from chronik.inbound import command_handler
store = chronik.connect("memory://", registry=registry)
route = lambda message: ("order-1", CreateOrder("ada"))
handle = command_handler(chronik.CommandHandler(store, order_decider), route)
sender = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"
handle(InboundMessage("m1", b"{}", {"traceparent": sender}, "t"))
print(store.read_stream("order-1")[0].metadata["traceparent"])
"""
    done = subprocess.run([sys.executable, "-c", program], capture_output=True, text=True, check=False)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"


# -- logs --------------------------------------------------------------------------------------


def test_logs_carry_stream_version_position_and_projection_names_but_never_payloads(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG, logger="chronik")
    with chronik.connect(f"sqlite:///{tmp_path}/log.db", registry=registry) as store:
        result = store.append("note-1", [NewEvent("Noted", {"text": SECRET})], chronik.NO_STREAM)
        with pytest.raises(chronik.WrongExpectedVersionError):
            store.append("note-1", [NewEvent("Noted", {"text": SECRET})], chronik.NO_STREAM)
        handler = chronik.CommandHandler(store, _counter(store, ["counter-1"]))
        handler.handle("counter-1", Bump())
        ProjectionRunner(store, Projection("notes", {"Noted": lambda event, ctx: None})).run_until_caught_up()

    appended = next(
        r for r in caplog.records if r.name == "chronik.store" and r.getMessage().startswith("appended")
    )
    assert appended.levelno == logging.DEBUG
    fields = {k: appended.__dict__[k] for k in ("stream_id", "version", "position", "event_count", "backend")}
    assert fields == {
        "stream_id": "note-1",
        "version": 1,
        "position": result.position,
        "event_count": 1,
        "backend": "sqlite",
    }
    assert appended.__dict__["expected_version"] == "no_stream"
    refused = next(r for r in caplog.records if r.getMessage().startswith("append refused"))
    assert (refused.__dict__["stream_id"], refused.__dict__["version"]) == ("note-1", 1)
    retried = next(r for r in caplog.records if r.name == "chronik.handling")
    assert retried.levelno == logging.INFO
    assert (retried.__dict__["stream_id"], retried.__dict__["attempt"]) == ("counter-1", 1)
    projection = [r for r in caplog.records if r.name == "chronik.projections"]
    assert {r.__dict__["projection"] for r in projection} == {"notes"}
    live = next(r for r in projection if "following live events" in r.getMessage())
    assert live.levelno == logging.INFO
    committed = next(r for r in projection if "committed" in r.getMessage())
    assert committed.__dict__["event_count"] == 1
    for record in caplog.records:
        assert SECRET not in record.getMessage()
        assert SECRET not in repr(record.__dict__)


# -- without the API -----------------------------------------------------------------------------


def test_chronik_works_without_opentelemetry_installed() -> None:
    # opentelemetry hidden as if not installed: chronik neither imports nor needs it.
    program = """
import sys
sys.modules["opentelemetry"] = None
import chronik, chronik.telemetry
from chronik.examples import registry
from chronik.examples.orders import CreateOrder, order_decider
store = chronik.connect("memory://", registry=registry)
chronik.CommandHandler(store, order_decider).handle("order-1", CreateOrder("ada"))
assert store.read_stream("order-1")[0].metadata.keys() == {"correlation_id", "causation_id"}
assert not any(name.startswith("opentelemetry") for name in sys.modules if sys.modules[name] is not None)
try:
    chronik.telemetry.configure(tracer_provider=object())
except chronik.ConfigurationError as err:
    print(err)
"""
    done = subprocess.run([sys.executable, "-c", program], capture_output=True, text=True, check=False)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "chronik.telemetry needs the OpenTelemetry API: pip install 'chronik[otel]'"


def test_with_the_api_and_no_sdk_the_trace_context_still_goes_on() -> None:
    # No SDK: spans record nothing, but an incoming trace is handed on to the events.
    program = """
import chronik
from opentelemetry import context, trace
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator
incoming = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"
token = context.attach(TraceContextTextMapPropagator().extract({"traceparent": incoming}))
store = chronik.connect("memory://")
store.append("note-1", [chronik.NewEvent("Noted", {})])
print(store.read_stream("note-1")[0].metadata["traceparent"])
"""
    done = subprocess.run([sys.executable, "-c", program], capture_output=True, text=True, check=False)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"


def test_the_api_is_not_imported_until_chronik_first_needs_it() -> None:
    program = """
import sys
import chronik
assert "opentelemetry" not in sys.modules, "imported with chronik"
chronik.connect("memory://").append("note-1", [chronik.NewEvent("Noted", {})])
assert "opentelemetry.trace" in sys.modules
"""
    done = subprocess.run([sys.executable, "-c", program], capture_output=True, text=True, check=False)
    assert done.returncode == 0, done.stderr
