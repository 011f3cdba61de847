"""One store, reached through the sync or the asyncio command handler.

``App`` opens one store and hands out command handlers on it. On the ``async`` face
the handlers are :class:`AsyncCommandHandler`s, each call run to completion, and
``app.store`` is the same async store behind a blocking bridge, so a test reads
the same either way.
"""

from __future__ import annotations

import asyncio
from typing import Any

import chronik
from chronik import AsyncCommandHandler, CommandHandler, CommandResult, EventRegistry, Loaded
from chronik.store import EventStore
from chronik.testing.bridge import BlockingStore


class BlockingHandler:
    """An :class:`AsyncCommandHandler` with the blocking methods of a :class:`CommandHandler`."""

    def __init__(self, handler: AsyncCommandHandler[Any, Any]) -> None:
        self.handler = handler

    def handle(self, stream_id: str, command: Any, **options: Any) -> CommandResult[Any]:
        return asyncio.run(self.handler.handle(stream_id, command, **options))

    def start(self, stream_id: str, command: Any, **options: Any) -> CommandResult[Any]:
        return asyncio.run(self.handler.start(stream_id, command, **options))

    def load(self, stream_id: str, **options: Any) -> Loaded[Any]:
        return asyncio.run(self.handler.load(stream_id, **options))

    def refresh_snapshot(self, stream_id: str) -> Loaded[Any]:
        return asyncio.run(self.handler.refresh_snapshot(stream_id))


Handler = CommandHandler[Any, Any] | BlockingHandler


class App:
    """One store, and command handlers on it through the chosen face."""

    def __init__(self, url: str, face: str, registry: EventRegistry) -> None:
        self.url = url
        self.face = face
        self.registry = registry
        self.async_store = chronik.connect_async(url, registry=registry) if face == "async" else None
        self._bridge = BlockingStore(self.async_store) if self.async_store is not None else None
        self.store: EventStore = self._bridge or chronik.connect(url, registry=registry)

    def handler(self, model: Any, **options: Any) -> Handler:
        if self.async_store is None:
            return CommandHandler(self.store, model, **options)
        return BlockingHandler(AsyncCommandHandler(self.async_store, model, **options))

    def close(self) -> None:
        if self._bridge is not None:
            self._bridge.shutdown()
        else:
            self.store.close()
