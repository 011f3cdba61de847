"""Another service, on the far side of a broker: a warehouse that schedules a shipment for
each order it hears of. The tests of traces across the relay and inbound messages make
it handle what the relay published (``tests/backends/test_broker_traces.py``,
``tests/e2e/test_fastapi_orders.py``)."""

from __future__ import annotations

import msgspec

import chronik

__all__ = ["ShipOrder", "ShipmentScheduled", "shipping", "shipping_registry"]


class ShipOrder(msgspec.Struct, frozen=True):
    order_id: str


shipping_registry = chronik.EventRegistry()


@shipping_registry.event("ShipmentScheduled")
class ShipmentScheduled(msgspec.Struct, frozen=True):
    order_id: str


def _schedule(command: ShipOrder, scheduled: bool) -> list[ShipmentScheduled]:
    return [] if scheduled else [ShipmentScheduled(command.order_id)]


shipping = chronik.Decider(_schedule, lambda scheduled, event: True, False, category="shipment")
"""One shipment a stream: a command delivered again schedules nothing more."""
