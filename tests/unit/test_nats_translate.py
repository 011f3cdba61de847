"""The NATS store's client errors are transient where the client reconnects by itself."""

from __future__ import annotations

import pytest

from chronik.errors import OperationalError, StoreClosedError, is_transient

nats = pytest.importorskip("nats")

from chronik.stores.nats._connection import translate  # noqa: E402


@pytest.mark.parametrize(
    "error",
    [TimeoutError(), nats.errors.NoRespondersError(), ConnectionRefusedError(), nats.errors.TimeoutError()],
    ids=lambda e: type(e).__name__,
)
def test_a_timeout_no_responders_or_a_refused_connection_is_transient(error: BaseException) -> None:
    translated = translate(error, "reading")
    assert isinstance(translated, OperationalError) and is_transient(translated)


def test_a_closed_connection_is_not() -> None:
    translated = translate(nats.errors.ConnectionClosedError(), "reading")
    assert isinstance(translated, StoreClosedError) and not is_transient(translated)
