"""chronik's benchmark harness: chronik against ``eventsourcing`` and the raw drivers.

Run it with ``python -m benchmarks`` (``--help`` lists the options). Each workload
runs in fresh subprocesses, one per contender and repetition, alternating between
contenders, on a fresh database each time; the figures are medians of the
repetitions and the ratios compare figures from the same run only.

Modules, one concern each:

- ``spec``: sizes, figures and the issue's targets (no I/O)
- ``domain``: the account aggregate's payloads, shared by every contender
- ``contenders``: chronik, eventsourcing, raw sqlite3 and raw psycopg behind one Protocol
- ``workloads``: the seven workloads, written once against that Protocol
- ``databases``: fresh SQLite files and PostgreSQL schemas, and their removal
- ``memory``: peak RSS of the process
- ``worker``: the subprocess that runs one workload for one contender
- ``runner`` and ``stats``: the plan, the alternation, medians and percentiles
- ``report``: the tables (rich), ``bench.json`` and ``bench.md``
"""
