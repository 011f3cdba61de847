"""The conformance suite every chronik store must pass, and the capability suites.

A backend's test module implements one fixture, ``store_factory``, returning a
:class:`StoreFactory` that opens a fresh store for each test, and inherits every
test; each runs on every face the factory offers (sync, asyncio or both; the asyncio
face is driven through :class:`chronik.testing.bridge.BlockingStore`, or natively
where the bridge would hide what is tested)::

    from chronik.testing.conformance import EventStoreConformance, StoreFactory

    class TestMyStore(EventStoreConformance):
        @pytest.fixture
        def store_factory(self, tmp_path):
            # processes=True: other processes can open the URL (those tests skip otherwise)
            return StoreFactory.from_url(f"sqlite:///{tmp_path}/events.db", processes=True)

The capability suites (:class:`SnapshotTests`, :class:`CheckpointTests`,
:class:`SubscriptionTests`, :class:`TransactionTests`, :class:`AppendHookTests`,
:class:`ProjectionStateTests`, :class:`DCBTests`, :class:`SubjectKeyTests`,
:class:`DeletionTests`, :class:`RetentionTests`, :class:`RepairTests`) are part of
:class:`EventStoreConformance`; each runs wherever the store on the face under test
declares its capability (``isinstance`` against the ``chronik.store`` Protocols, see
:func:`capabilities`) and skips elsewhere. Pin what each face declares in a test of
your own, so that losing a capability fails loudly instead of skipping quietly.
"""

from chronik.testing.conformance._append import AppendTests, AtomicityTests, IdempotencyTests
from chronik.testing.conformance._base import (
    CAPABILITIES,
    ConformanceBase,
    Deposited,
    Renamed,
    StoreFactory,
    capabilities,
    event,
    make_registry,
    new_stream,
)
from chronik.testing.conformance._concurrency import ConcurrencyTests
from chronik.testing.conformance._dcb import DCBTests
from chronik.testing.conformance._faces import FaceTests
from chronik.testing.conformance._hooks import AppendHookTests
from chronik.testing.conformance._lifecycle import DeletionTests, RepairTests, RetentionTests
from chronik.testing.conformance._projection_state import ProjectionStateTests
from chronik.testing.conformance._properties import PropertyTests
from chronik.testing.conformance._read import ReadAllTests, ReadStreamTests, StreamInfoTests
from chronik.testing.conformance._shredding import EncryptionTests, SubjectKeyTests
from chronik.testing.conformance._snapshots import CheckpointTests, SnapshotTests
from chronik.testing.conformance._subscriptions import SubscriptionTests
from chronik.testing.conformance._transactions import TransactionTests

__all__ = [
    "CAPABILITIES",
    "AppendHookTests",
    "AppendTests",
    "AtomicityTests",
    "CapabilityTests",
    "CheckpointTests",
    "ConcurrencyTests",
    "ConformanceBase",
    "DCBTests",
    "DeletionTests",
    "Deposited",
    "EncryptionTests",
    "EventStoreConformance",
    "FaceTests",
    "IdempotencyTests",
    "ProjectionStateTests",
    "PropertyTests",
    "ReadAllTests",
    "ReadStreamTests",
    "Renamed",
    "RepairTests",
    "RetentionTests",
    "SnapshotTests",
    "StoreFactory",
    "StreamInfoTests",
    "SubjectKeyTests",
    "SubscriptionTests",
    "TransactionTests",
    "capabilities",
    "event",
    "make_registry",
    "new_stream",
]


class CapabilityTests(
    FaceTests,
    SnapshotTests,
    CheckpointTests,
    SubscriptionTests,
    TransactionTests,
    AppendHookTests,
    ProjectionStateTests,
    DCBTests,
    SubjectKeyTests,
    DeletionTests,
    RetentionTests,
    RepairTests,
):
    """Every capability suite; each skips where the face under test lacks its capability."""


class EventStoreConformance(
    AppendTests,
    IdempotencyTests,
    AtomicityTests,
    ReadStreamTests,
    ReadAllTests,
    StreamInfoTests,
    ConcurrencyTests,
    PropertyTests,
    EncryptionTests,
    CapabilityTests,
):
    """Every conformance test. Subclass it and provide the ``store_factory`` fixture."""
