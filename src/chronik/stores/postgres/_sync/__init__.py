"""The sync PostgreSQL store, generated from ``_async`` by ``tools/unasync.py`` (see the package)."""
