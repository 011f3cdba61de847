"""What an operator sees of a runner in another process, on PostgreSQL, from
``chronik projections status`` and the HTTP API (both connected as a role that stays
up), during two real faults and after a SIGKILL.

1. Another session holds a lock on the read model's table, so the handler's insert
   times out (55P03, ``lock_timeout``): the runner retries, and its heartbeats, to a
   table nobody locked, say so live: retrying, since when, the lock timeout.
2. An outage of the runner's own role (its connections cut, new ones refused, as
   ``test_postgres_outage.py`` does): nothing of it can be written, so its record ages
   and both say it is stale, with what it last said; then it recovers by itself and
   says from what.
3. SIGKILL: stale after three heartbeats. The read model holds every event once.
"""

from __future__ import annotations

import time
from pathlib import Path

import psycopg
import pytest
from psycopg import sql

import chronik
from chronik import NewEvent
from chronik.stores.postgres import PostgresEventStore
from tests.backends._outage import Outage
from tests.e2e._runners import (
    api_runners,
    cli_runners,
    cli_text,
    eventually,
    only,
    runner_process,
    serve_store,
    write_shop,
)

pytestmark = [pytest.mark.postgres, pytest.mark.slow]

HEARTBEAT = 0.5


def test_the_cli_and_the_api_see_a_runner_retry_go_stale_in_an_outage_recover_and_vanish(
    outage: tuple[Outage, str], postgres_store_url: str, postgres_schema: str, tmp_path: Path
) -> None:
    switch, runner_url = outage
    admin_url = postgres_store_url  # another role: not cut off
    write_shop(tmp_path)
    with chronik.connect(runner_url) as own:  # the runner's role makes the store: its tables are its own
        for n in range(3):
            own.append(f"order-{n}", [NewEvent("Placed", {})])
    store = chronik.connect(admin_url)
    with (
        serve_store(tmp_path, admin_url) as api,
        runner_process(tmp_path, runner_url, HEARTBEAT, SHOP_LOCK_TIMEOUT="200") as runner,
    ):
        eventually(
            lambda: (r := only(cli_runners(tmp_path, admin_url), runner.pid)) and r["state"] == "caught_up",
            "the runner caught up, in projections status",
        )
        # 1. The read model's table locked by another session: retrying, said live. (SHARE
        # blocks inserts and takes no transaction id, which would hold new events back
        # from every reader until it ends: ACCESS EXCLUSIVE would.)
        with psycopg.connect(postgres_store_url.split("?")[0]) as locker:
            locker.execute(
                sql.SQL("LOCK TABLE {} IN SHARE MODE").format(sql.Identifier(postgres_schema, "seen"))
            )
            store.append("order-3", [NewEvent("Placed", {})])
            live = eventually(
                lambda: (
                    (r := only(cli_runners(tmp_path, admin_url), runner.pid))
                    and r["state"] == "retrying"
                    and r["retrying"]["attempts"] >= 2
                    and r
                ),
                "retrying, in projections status",
            )
            assert not live["stale"] and "lock timeout" in live["retrying"]["error"]
            assert live["summary"].startswith("retrying since") and "heard" in live["summary"]
            assert "retrying since" in cli_text(tmp_path, admin_url)
            served = only(api_runners(api), runner.pid)
            assert served is not None and served["state"] == "retrying" and not served["stale"]
            runner.wait_for_output("seen: retrying since")
        back = eventually(
            lambda: (
                (r := only(cli_runners(tmp_path, admin_url), runner.pid))
                and r["state"] == "caught_up"
                and r["recovered"]
                and r
            ),
            "recovered from the lock, in projections status",
        )
        assert "lock timeout" in back["recovered"]["error"] and back["retrying"] is None
        runner.wait_for_output("seen: recovered at")

        # 2. The runner's role cut off: it cannot write its heartbeat; stale, then recovered.
        switch.begin()
        try:
            store.append("order-4", [NewEvent("Placed", {})])
            time.sleep(4 * HEARTBEAT)
            cut = eventually(
                lambda: (r := only(cli_runners(tmp_path, admin_url), runner.pid)) and r["stale"] and r,
                "stale during the outage",
            )
            assert (
                cut["summary"].startswith("stale: last heard") and "cannot reach the store" in cut["summary"]
            )
            served = only(api_runners(api), runner.pid)
            assert served is not None and served["stale"] and served["runner_id"] == cut["runner_id"]
            assert "stale: last heard" in cli_text(tmp_path, admin_url)
        finally:
            switch.end()
        again = eventually(
            lambda: (
                (r := only(cli_runners(tmp_path, admin_url), runner.pid))
                and r["state"] == "caught_up"
                and not r["stale"]
                and r["recovered"]
                and "lock timeout" not in r["recovered"]["error"]
                and r
            ),
            "recovered from the outage, in projections status",
        )
        assert again["checkpoint"] == str(store.head())
        served = only(api_runners(api), runner.pid)
        assert served is not None and served["recovered"] == again["recovered"]

        # 3. SIGKILL: no goodbye; stale after three heartbeats.
        runner.kill()
        gone = eventually(
            lambda: (r := only(cli_runners(tmp_path, admin_url), runner.pid)) and r["stale"] and r,
            "stale after SIGKILL",
        )
        assert gone["state"] == "caught_up"
    assert isinstance(store, PostgresEventStore)
    with psycopg.connect(store.config.conninfo, autocommit=True) as conn:
        table = sql.Identifier(postgres_schema, "seen")
        seen = [p for (p,) in conn.execute(sql.SQL("SELECT p FROM {} ORDER BY 1").format(table))]
    assert seen == [e.position for e in store.read_all()], "every event once"
    store.close()
