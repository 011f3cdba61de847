"""The asyncio PostgreSQL store, and the source of the sync one (``_sync``): see the package's docstring."""
