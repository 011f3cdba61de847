"""Bridges from other event-sourcing libraries onto chronik's stores.

``chronik.compat.eventsourcing`` is a persistence module for the ``eventsourcing``
library (``PERSISTENCE_MODULE=chronik.compat.eventsourcing``); it needs the
``eventsourcing`` extra. Nothing in chronik imports this package: it is a client of
chronik's public API, like the command line.
"""
