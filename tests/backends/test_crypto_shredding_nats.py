"""Crypto-shredding on NATS JetStream, end to end (issue 16's "done when").

Personal data written with crypto-shredding on is in no message the server stores
(the store's stream and its three buckets, read message by message), before or after
``forget``; after it every read path shows the redacted value and the log is
unchanged. Forgetting purges the key's messages from the keys bucket.
"""

from __future__ import annotations

import asyncio

import pytest

import chronik
from chronik import StaticKeys
from tests._shredding import (
    expected_after_forget,
    expected_before,
    find_plaintext,
    holds,
    log_of,
    people,
    read_paths,
    registry,
    write,
)

pytestmark = pytest.mark.nats


def _messages(url: str, stream: str) -> list[bytes]:
    """Every message JetStream stores for the store: its data and its headers."""
    import nats
    import nats.js.errors

    async def read() -> list[bytes]:
        found: list[bytes] = []
        nc = await nats.connect(url, connect_timeout=5, max_reconnect_attempts=1)
        try:
            js = nc.jetstream()
            for name in (stream, f"KV_{stream}-ids", f"KV_{stream}-state", f"KV_{stream}-keys"):
                state = (await js.stream_info(name)).state
                for seq in range(state.first_seq, state.last_seq + 1):
                    try:
                        message = await js.get_msg(name, seq)
                    except nats.js.errors.NotFoundError:
                        continue  # purged
                    found.append(message.data or b"")
                    found.extend(v.encode() for v in (message.headers or {}).values())
        finally:
            await nc.close()
        return found

    return asyncio.run(read())


@pytest.mark.parametrize("cipher", [False, True], ids=["shredding", "shredding+cipher"])
def test_personal_data_is_in_no_stored_message_and_forget_redacts_every_read(
    nats_url: str, nats_store_url: str, nats_stream: str, cipher: bool
) -> None:
    options = {"cipher": StaticKeys({"k1": StaticKeys.new_key()})} if cipher else {}
    ada, grace = people(2)
    with chronik.connect(nats_store_url, registry=registry(), **options) as store:
        write(store, [ada, grace])
        assert find_plaintext(_messages(nats_url, nats_stream), [ada, grace]) == []
        assert read_paths(store, ada) == expected_before(ada)
        log = log_of(store)
        key = store.subject_keys([ada.subject])[ada.subject]

        store.forget(ada.subject)

        stored = _messages(nats_url, nats_stream)
        assert find_plaintext(stored, [ada, grace]) == []
        assert not holds(stored, key.key), "the forgotten key is still in a stored message"
        assert read_paths(store, ada) == expected_after_forget(ada)
        assert read_paths(store, grace) == expected_before(grace)
        assert log_of(store) == log
