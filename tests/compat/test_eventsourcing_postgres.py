"""The ``eventsourcing`` library's own test cases on chronik's PostgreSQL store.

Each test gets a schema of its own (``?schema=`` in the URL), dropped after it. Without
the server they skip, saying how to run them; under ``CI=true`` they fail.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import pytest

from chronik.testing.services import POSTGRES
from tests.compat._eventsourcing_cases import bind

pytestmark = pytest.mark.postgres

_SCHEMAS: list[str] = []


def new_url() -> str:
    url = POSTGRES.require()
    schema = f"chronik_es_{uuid.uuid4().hex[:12]}"
    _SCHEMAS.append(schema)
    return f"{url}?schema={schema}"


@pytest.fixture(autouse=True)
def _drop_schemas() -> Iterator[None]:
    yield
    if not _SCHEMAS:
        return
    import psycopg
    from psycopg import sql

    with psycopg.connect(POSTGRES.url, autocommit=True) as conn:
        while _SCHEMAS:
            conn.execute(sql.SQL("DROP SCHEMA IF EXISTS {} CASCADE").format(sql.Identifier(_SCHEMAS.pop())))


globals().update({f"{name}OnPostgres": cls for name, cls in bind(new_url).items()})
