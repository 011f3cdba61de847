"""Kept for the conformance suite: the sync face over an asyncio store (``chronik.backend``)."""

from chronik.blocking import BlockingStore as BlockingStore
