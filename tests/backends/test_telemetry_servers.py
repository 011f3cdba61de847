"""chronik's OpenTelemetry on the real servers: PostgreSQL's appends (sync and asyncio
faces, transactions, append_if) and NATS's (its asyncio store and the sync face that
runs it on a private loop) are spans in the caller's trace, and their events carry
the append's trace context."""

from __future__ import annotations

import asyncio

import pytest

import chronik
from chronik import NewEvent
from chronik.process_managers import ProcessContext, ProcessManager, process_manager_runner
from tests.conftest import Recorded


def _parent_is(recorded: Recorded, name: str, parent: str) -> None:
    (child,) = recorded.spans(name)
    (outer,) = recorded.spans(parent)
    assert outer.context is not None and child.parent is not None
    assert child.parent.span_id == outer.context.span_id


@pytest.mark.postgres
def test_postgres_appends_are_spans_and_their_events_carry_the_trace(
    postgres_store_url: str, telemetry: Recorded
) -> None:
    with chronik.connect(postgres_store_url) as store:
        with telemetry.tracer.start_as_current_span("request") as request:
            store.append("note-1", [NewEvent("Noted", {})])
            with store.transaction() as tx:
                tx.append("note-2", [NewEvent("Noted", {})])
            store.append_if([NewEvent("Decided", {}, tags=("course:1",))], None)
        trace_id = request.get_span_context().trace_id
        for stream in ("note-1", "note-2"):
            assert store.read_stream(stream)[0].metadata["traceparent"].startswith(f"00-{trace_id:032x}-")
    first, second = telemetry.spans("append note")
    assert dict(first.attributes or {})["db.system.name"] == "postgresql"
    assert dict(first.attributes or {})["chronik.version"] == 1
    assert dict(second.attributes or {})["chronik.stream"] == "note-2"
    assert telemetry.spans("append_if")[0].parent is not None


@pytest.mark.postgres
def test_a_process_manager_on_postgres_continues_the_trace(
    postgres_store_url: str, telemetry: Recorded
) -> None:
    def thank(event: chronik.RecordedEvent, context: ProcessContext) -> None:
        context.append(f"thanks-{event.stream_id}", [NewEvent("Thanked", {})])

    with chronik.connect(postgres_store_url) as store:
        with telemetry.tracer.start_as_current_span("request") as request:
            store.append("order-1", [NewEvent("OrderPlaced", {})])
        runner = process_manager_runner(store, ProcessManager("thanks", {"OrderPlaced": thank}))
        runner.run_until_caught_up()
        (thanked,) = store.read_stream("thanks-order-1")
    trace_id = request.get_span_context().trace_id
    assert thanked.metadata["traceparent"].startswith(f"00-{trace_id:032x}-")
    (step,) = telemetry.spans("process manager thanks")
    assert step.context is not None and step.context.trace_id == trace_id


@pytest.mark.postgres
def test_the_asyncio_postgres_store_too(postgres_store_url: str, telemetry: Recorded) -> None:
    async def main() -> None:
        async with chronik.connect_async(postgres_store_url) as store:
            with telemetry.tracer.start_as_current_span("request"):
                await store.append("note-1", [NewEvent("Noted", {})])
            assert "traceparent" in (await store.read_stream("note-1"))[0].metadata

    asyncio.run(main())
    _parent_is(telemetry, "append note", "request")


@pytest.mark.nats
def test_nats_appends_from_both_faces_are_in_the_callers_trace(
    nats_store_url: str, telemetry: Recorded
) -> None:
    with chronik.connect(nats_store_url) as store:  # the sync face: a private event loop
        with telemetry.tracer.start_as_current_span("request"):
            store.append("note-1", [NewEvent("Noted", {})])
        assert "traceparent" in store.read_stream("note-1")[0].metadata
    _parent_is(telemetry, "append note", "request")
    (append,) = telemetry.spans("append note")
    assert dict(append.attributes or {})["db.system.name"] == "nats"

    async def main() -> None:
        async with chronik.connect_async(nats_store_url) as store:
            with telemetry.tracer.start_as_current_span("async request") as request:
                await store.append("note-2", [NewEvent("Noted", {})])
            (event,) = await store.read_stream("note-2")
            trace_id = request.get_span_context().trace_id
            assert event.metadata["traceparent"].startswith(f"00-{trace_id:032x}-")

    asyncio.run(main())
