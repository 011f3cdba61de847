"""Conformance: a backend offering both faces declares the same capabilities on each."""

from __future__ import annotations

import pytest

from chronik.testing.bridge import BlockingStore
from chronik.testing.conformance._base import ConformanceBase, StoreFactory, capabilities, make_registry

__all__ = ["FaceTests"]


class FaceTests(ConformanceBase):
    """What one face can do, the other can too (asyncio is not a lesser face)."""

    def test_both_faces_declare_the_same_capabilities(self, store_factory: StoreFactory) -> None:
        if store_factory.open is None or store_factory.open_async is None:
            pytest.skip("this store offers one face only")
        sync = store_factory.open(registry=make_registry())
        bridge = BlockingStore(store_factory.open_async(registry=make_registry()))
        try:
            on_sync, on_async = capabilities(sync), capabilities(bridge)
        finally:
            sync.close()
            bridge.shutdown()
        assert on_sync == on_async, (
            f"only the sync face declares {sorted(on_sync - on_async)}; "
            f"only the asyncio face declares {sorted(on_async - on_sync)}"
        )
