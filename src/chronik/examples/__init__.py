"""Three small domains written the way chronik applications are meant to be written.

- :mod:`chronik.examples.orders`: orders, as a :class:`~chronik.Decider`.
- :mod:`chronik.examples.conference`: seat booking that never oversells a
  conference, even under concurrent commands, as a decider.
- :mod:`chronik.examples.bank`: bank accounts with an overdraft limit and an audit
  trail, as an :class:`~chronik.Aggregate`; its deposit event has been through three
  schema versions, and old stored deposits are upcast as they are read.

Beside them, :mod:`chronik.examples.fastapi_orders` is a web service on the orders and
the checkout saga (:mod:`chronik.examples.saga`): FastAPI endpoints, a read model,
a projection runner and the saga in its lifespan, traces on (the ``fastapi`` extra).

An application keeps one :class:`~chronik.EventRegistry`; the examples share
:data:`registry`, and importing an example module registers its events in it.
"""

from chronik.codec import EventRegistry

__all__ = ["registry"]

registry = EventRegistry()
"""The event registry every example registers its events in."""
