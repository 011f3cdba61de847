"""The conformance suite every chronik store must pass.

A store's test module implements one fixture, ``store_url``, and inherits every
test; each runs against the sync face and the asyncio face::

    from chronik.testing.conformance import EventStoreConformance

    class TestMyStore(EventStoreConformance):
        supports_processes = True   # the URL can be opened by several processes

        @pytest.fixture
        def store_url(self, tmp_path):
            return f"sqlite:///{tmp_path}/events.db"

The URL must name a fresh, empty store for each test.
"""

from chronik.testing.conformance._append import (
    AppendTests,
    AtomicityTests,
    CapabilityTests,
    IdempotencyTests,
)
from chronik.testing.conformance._base import (
    ConformanceBase,
    Deposited,
    Renamed,
    event,
    make_registry,
    new_stream,
)
from chronik.testing.conformance._concurrency import ConcurrencyTests
from chronik.testing.conformance._properties import PropertyTests
from chronik.testing.conformance._read import ReadAllTests, ReadStreamTests, StreamInfoTests
from chronik.testing.conformance._subscriptions import SubscriptionTests

__all__ = [
    "AppendTests",
    "AtomicityTests",
    "CapabilityTests",
    "ConcurrencyTests",
    "ConformanceBase",
    "Deposited",
    "EventStoreConformance",
    "IdempotencyTests",
    "PropertyTests",
    "ReadAllTests",
    "ReadStreamTests",
    "Renamed",
    "StreamInfoTests",
    "SubscriptionTests",
    "event",
    "make_registry",
    "new_stream",
]


class EventStoreConformance(
    AppendTests,
    IdempotencyTests,
    AtomicityTests,
    ReadStreamTests,
    ReadAllTests,
    StreamInfoTests,
    CapabilityTests,
    ConcurrencyTests,
    PropertyTests,
    SubscriptionTests,
):
    """Every conformance test. Subclass it and provide the ``store_url`` fixture."""
