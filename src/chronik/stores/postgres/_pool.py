"""Closing a store's pool when the store is dropped without ``close()``.

psycopg_pool's ``ConnectionPool.__del__`` stops the pool by joining its threads. A
pool is always in a reference cycle (each pooled connection points back at it), so
it is freed by the cyclic garbage collector, on whichever thread happens to
trigger a collection. When that is one of the pool's own worker threads, the join
fails and Python prints ``Exception ignored in ConnectionPool.__del__ ...
RuntimeError: cannot join current thread``, leaving the pool half stopped.

So a store closes its pool itself when it is collected unclosed (a
``weakref.finalize`` on what owns the pool, which also runs at interpreter exit),
and its notifier, whose thread would otherwise keep a connection open for good.
A closed pool's ``__del__`` does nothing. Closing joins threads too (the pool's
and the notifier's), so away from the main thread, where the finalizer may be
running on one of those very threads, it is handed to a short thread of its own.

The asyncio pool has no ``__del__`` to trip over, and its close must be awaited:
an unclosed asyncio store's pool ends with its event loop, as before.
"""

from __future__ import annotations

import os
import threading
import weakref
from typing import Any

import psycopg_pool

from chronik.stores.postgres._notify import AsyncNotifier, Notifier

__all__ = ["close_when_abandoned"]


def close_when_abandoned(
    owner: object,
    pool: psycopg_pool.ConnectionPool[Any] | psycopg_pool.AsyncConnectionPool[Any],
    notifier: Notifier | AsyncNotifier | None,
) -> weakref.finalize[Any, Any] | None:
    """Close a sync ``pool`` and ``notifier`` when ``owner`` is collected; detach on close()."""
    if not isinstance(pool, psycopg_pool.ConnectionPool) or isinstance(notifier, AsyncNotifier):
        return None
    return weakref.finalize(owner, _close_abandoned, pool, notifier, os.getpid())


def _close_abandoned(pool: psycopg_pool.ConnectionPool[Any], notifier: Notifier | None, pid: int) -> None:
    if os.getpid() != pid:
        # A forked child shares the parent's sockets: closing them would end the
        # parent's sessions (psycopg leaves a parent's connections alone likewise).
        return

    def close() -> None:
        if notifier is not None:
            notifier.close()
        pool.close()

    if threading.current_thread() is threading.main_thread():
        close()
        return
    try:
        threading.Thread(target=close, name=f"{pool.name}-close", daemon=True).start()
    except RuntimeError:  # the interpreter is shutting down: no new threads; the OS closes sockets
        pass
