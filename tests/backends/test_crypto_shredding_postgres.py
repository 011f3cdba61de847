"""Crypto-shredding on PostgreSQL, end to end (issue 16's "done when").

Personal data written with crypto-shredding on is in no row of the store's tables,
read as text and as values, before or after ``forget``; after it every read path shows
the redacted value and the log is unchanged.
"""

from __future__ import annotations

import pytest

import chronik
from chronik import StaticKeys
from tests._shredding import (
    expected_after_forget,
    expected_before,
    find_plaintext,
    log_of,
    people,
    read_paths,
    registry,
    write,
)

pytestmark = pytest.mark.postgres


def _rows(url: str, schema: str) -> list[bytes]:
    """Every row of every table of the store's schema: as text, and each value as it is."""
    import psycopg
    from psycopg import sql

    found: list[bytes] = []
    with psycopg.connect(url, autocommit=True) as conn:
        tables = [
            name
            for (name,) in conn.execute(
                "SELECT table_name FROM information_schema.tables WHERE table_schema = %s", (schema,)
            )
        ]
        assert {"events", "snapshots", "subject_keys"} <= set(tables)
        for table in tables:
            name = sql.Identifier(schema, table)
            for (text,) in conn.execute(sql.SQL("SELECT t::text FROM {} AS t").format(name)):
                found.append(text.encode())
            for row in conn.execute(sql.SQL("SELECT * FROM {}").format(name)):
                for value in row:
                    if isinstance(value, bytes | memoryview):
                        found.append(bytes(value))
                    elif value is not None:
                        found.append(str(value).encode())
    return found


@pytest.mark.parametrize("cipher", [False, True], ids=["shredding", "shredding+cipher"])
def test_personal_data_is_in_no_row_and_forget_redacts_every_read(
    postgres_url: str, postgres_store_url: str, postgres_schema: str, cipher: bool
) -> None:
    options = {"cipher": StaticKeys({"k1": StaticKeys.new_key()})} if cipher else {}
    ada, grace = people(2)
    with chronik.connect(postgres_store_url, registry=registry(), pool_max_size=2, **options) as store:
        write(store, [ada, grace])
        assert find_plaintext(_rows(postgres_url, postgres_schema), [ada, grace]) == []
        assert read_paths(store, ada) == expected_before(ada)
        log = log_of(store)

        store.forget(ada.subject)

        assert find_plaintext(_rows(postgres_url, postgres_schema), [ada, grace]) == []
        assert store.subject_keys([ada.subject]) == {}
        assert read_paths(store, ada) == expected_after_forget(ada)
        assert read_paths(store, grace) == expected_before(grace)
        assert log_of(store) == log


def test_a_transaction_seals_on_its_own_connection(postgres_store_url: str) -> None:
    """With a pool of one connection, a transaction that writes personal data makes the
    key on its own connection (a second one would never come)."""
    [ada] = people(1)
    from tests._shredding import CustomerRegistered

    with chronik.connect(postgres_store_url, registry=registry(), pool_max_size=1, pool_timeout=5) as store:
        with store.transaction() as tx:
            tx.append(ada.stream, [CustomerRegistered(ada.subject, ada.name, ada.email)])
            assert tx.read_stream(ada.stream)[0].data.name == ada.name
        assert store.read_stream(ada.stream)[0].data.name == ada.name


def test_the_asyncio_face_seals_and_forgets_as_the_sync_one(postgres_store_url: str) -> None:
    import asyncio

    from chronik import REDACTED, AsyncCommandHandler, SnapshotPolicy
    from tests._shredding import customers

    [ada] = people(1)

    async def main() -> None:
        store = chronik.connect_async(postgres_store_url, registry=registry(), pool_max_size=2)
        try:
            handler = AsyncCommandHandler(store, customers, snapshots=SnapshotPolicy(every=1))
            await handler.handle(ada.stream, (ada.subject, ada.name, ada.email, ""))
            [event] = await store.read_stream(ada.stream)
            assert event.data.name == ada.name and ada.name not in str(event.raw_data)
            assert (await handler.load(ada.stream)).snapshot_version == 1
            await store.forget(ada.subject)
            assert (await store.read_stream(ada.stream))[0].data.name == REDACTED
            loaded = await handler.load(ada.stream)
            assert (loaded.state.name, loaded.snapshot_version) == (REDACTED, None)
        finally:
            await store.close()

    asyncio.run(main())
