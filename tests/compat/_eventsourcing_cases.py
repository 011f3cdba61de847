"""The ``eventsourcing`` library's own test cases, bound to chronik's persistence module.

``bind(kind, new_url)`` makes the test classes for one backend: ``new_url()`` gives a
fresh, empty store's URL for each test. The library's cases are unittest TestCases;
pytest runs them. Every one of them runs; none is skipped here.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import Any, ClassVar

import pytest
from eventsourcing.persistence import (
    AggregateRecorder,
    ApplicationRecorder,
    InfrastructureFactory,
    ProcessRecorder,
    TrackingRecorder,
)
from eventsourcing.tests.application import ApplicationTestCase, ExampleApplicationTestCase
from eventsourcing.tests.persistence import (
    AggregateRecorderTestCase,
    ApplicationRecorderTestCase,
    InfrastructureFactoryTestCase,
    NonInterleavingNotificationIDsBaseCase,
    ProcessRecorderTestCase,
    TrackingRecorderTestCase,
)
from eventsourcing.utils import Environment

from chronik.compat.eventsourcing import (
    ChronikAggregateRecorder,
    ChronikApplicationRecorder,
    ChronikFactory,
    ChronikProcessRecorder,
    ChronikTrackingRecorder,
)

MODULE = "chronik.compat.eventsourcing"


class FactoryOwner:
    """Opens a factory on a fresh store per test and closes it afterwards."""

    new_url: ClassVar[Callable[[], str]]
    factories: list[ChronikFactory]

    def open_factory(self, **env: str) -> ChronikFactory:
        factory = InfrastructureFactory.construct(
            Environment(env={"PERSISTENCE_MODULE": MODULE, "CHRONIK_URL": type(self).new_url(), **env})
        )
        assert isinstance(factory, ChronikFactory)
        if not hasattr(self, "factories"):
            self.factories = []
        self.factories.append(factory)
        return factory

    def close_factories(self) -> None:
        for factory in getattr(self, "factories", []):
            factory.close()


class SubclassOfTracking(ChronikTrackingRecorder):
    pass


class EnvironmentPointsAtChronik:
    """Sets PERSISTENCE_MODULE and CHRONIK_URL in os.environ for one test, as an
    application started from a shell would find them."""

    new_url: ClassVar[Callable[[], str]]
    saved: dict[str, str | None]

    def point_at_chronik(self) -> None:
        self.saved = {key: os.environ.get(key) for key in ("PERSISTENCE_MODULE", "CHRONIK_URL")}
        os.environ["PERSISTENCE_MODULE"] = MODULE
        os.environ["CHRONIK_URL"] = type(self).new_url()

    def restore(self) -> None:
        for key, value in self.saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


def bind(new_url: Callable[[], str], *, contiguous: bool = True) -> dict[str, type[Any]]:
    """The library's test cases on stores from ``new_url``, by class name."""
    url = staticmethod(new_url)

    class TestAggregateRecorder(FactoryOwner, AggregateRecorderTestCase):
        new_url = url

        def create_recorder(self) -> AggregateRecorder:
            return self.open_factory().aggregate_recorder()

        def tearDown(self) -> None:
            self.close_factories()

    class TestSnapshotRecorder(TestAggregateRecorder):
        """The same cases on the recorder of snapshots (versions may leave gaps)."""

        def create_recorder(self) -> AggregateRecorder:
            return self.open_factory().aggregate_recorder("snapshots")

    class TestApplicationRecorder(FactoryOwner, ApplicationRecorderTestCase[ApplicationRecorder]):
        new_url = url
        EXPECT_CONTIGUOUS_NOTIFICATION_IDS = contiguous

        def create_recorder(self) -> ApplicationRecorder:
            return self.open_factory().application_recorder()

        def tearDown(self) -> None:
            self.close_factories()

        def test_insert_subscribe(self) -> None:
            self.optional_test_insert_subscribe()

    class TestTrackingRecorder(FactoryOwner, TrackingRecorderTestCase):
        new_url = url

        def create_recorder(self) -> TrackingRecorder:
            return self.open_factory().tracking_recorder()

        def tearDown(self) -> None:
            self.close_factories()

    class TestProcessRecorder(FactoryOwner, ProcessRecorderTestCase):
        new_url = url

        def create_recorder(self) -> ProcessRecorder:
            return self.open_factory().process_recorder()

        def tearDown(self) -> None:
            self.close_factories()

    class TestNonInterleavingNotificationIDs(FactoryOwner, NonInterleavingNotificationIDsBaseCase):
        new_url = url

        def create_recorder(self) -> ApplicationRecorder:
            return self.open_factory().application_recorder()

        def tearDown(self) -> None:
            self.close_factories()

    class TestInfrastructureFactory(InfrastructureFactoryTestCase[ChronikFactory]):
        def setUp(self) -> None:
            self.env = Environment("TestCase", {"PERSISTENCE_MODULE": MODULE, "CHRONIK_URL": new_url()})
            super().setUp()

        def expected_factory_class(self) -> type[ChronikFactory]:
            return ChronikFactory

        def expected_aggregate_recorder_class(self) -> type[AggregateRecorder]:
            return ChronikAggregateRecorder

        def expected_application_recorder_class(self) -> type[ApplicationRecorder]:
            return ChronikApplicationRecorder

        def expected_tracking_recorder_class(self) -> type[TrackingRecorder]:
            return ChronikTrackingRecorder

        def tracking_recorder_subclass(self) -> type[TrackingRecorder]:
            return SubclassOfTracking

        def expected_process_recorder_class(self) -> type[ProcessRecorder]:
            return ChronikProcessRecorder

    class TestExampleApplication(EnvironmentPointsAtChronik, ExampleApplicationTestCase):
        new_url = url
        expected_factory_topic = f"{MODULE}:ChronikFactory"

        def setUp(self) -> None:
            self.point_at_chronik()

        def tearDown(self) -> None:
            self.restore()

    class TestApplication(EnvironmentPointsAtChronik, ApplicationTestCase):
        new_url = url

        def setUp(self) -> None:
            self.point_at_chronik()

        def tearDown(self) -> None:
            self.restore()

        # The case records the library's DeprecationWarning with catch_warnings(record=
        # True), which keeps the filters in force, and this suite turns warnings into
        # errors (filterwarnings = error): let that one warning be recorded.
        @pytest.mark.filterwarnings("always::DeprecationWarning")
        def test_application_log(self) -> None:
            super().test_application_log()

    return {
        cls.__name__: cls
        for cls in (
            TestAggregateRecorder,
            TestSnapshotRecorder,
            TestApplicationRecorder,
            TestTrackingRecorder,
            TestProcessRecorder,
            TestNonInterleavingNotificationIDs,
            TestInfrastructureFactory,
            TestExampleApplication,
            TestApplication,
        )
    }
