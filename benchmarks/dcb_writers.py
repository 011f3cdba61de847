"""Decisions per second on PostgreSQL with 1..16 writers on disjoint tags (each writer
its own course), and on one shared tag (every decision conflicts). A figure to read,
not a test: ``python benchmarks/dcb_writers.py [postgresql://...]``."""

from __future__ import annotations

import sys
import threading
import time
import uuid

import psycopg

import chronik
from chronik.errors import AppendConditionFailedError
from chronik.query import AppendCondition, Query

DECISIONS = 200


def run(url: str, writers: int, shared: bool) -> float:
    def work(who: int, store: chronik.Store) -> None:
        course = "course:shared" if shared else f"course:{who}"
        query = Query.of(types=["StudentSubscribed"], tags=[course])
        done = 0
        while done < DECISIONS:
            read = store.read_query(query)
            event = chronik.NewEvent("StudentSubscribed", {}, tags=[course, f"student:{who}-{done}"])
            try:
                store.append_if([event], AppendCondition(query, read.head))
                done += 1
            except AppendConditionFailedError:
                pass

    stores = [chronik.connect(url) for _ in range(writers)]
    threads = [threading.Thread(target=work, args=(i, s)) for i, s in enumerate(stores)]
    start = time.perf_counter()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    elapsed = time.perf_counter() - start
    for store in stores:
        store.close()
    return writers * DECISIONS / elapsed


def main() -> None:
    base = sys.argv[1] if len(sys.argv) > 1 else "postgresql://postgres@127.0.0.1:5432/test"
    for shared in (False, True):
        label = "one shared tag (conflicts)" if shared else "disjoint tags (no conflicts)"
        for writers in (1, 2, 4, 8, 16):
            schema = f"chronik_bench_{uuid.uuid4().hex[:10]}"
            try:
                rate = run(f"{base}?schema={schema}", writers, shared)
                print(f"{label:30} writers={writers:2}  {rate:8.0f} decisions/s", flush=True)
            finally:
                with psycopg.connect(base, autocommit=True) as conn:
                    conn.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')


if __name__ == "__main__":
    main()
