"""The examples as one application, for ``--app chronik.examples.app``: the shared
event registry, the order projection (version 2, as the demo leaves it) and the
three models, so that ``chronik serve`` on the demo's file shows the projection and
travels back in time through orders, conferences and bank accounts::

    chronik serve --url sqlite:///chronik-demo.db --app chronik.examples.app
"""

from __future__ import annotations

from chronik.examples import registry
from chronik.examples.bank import BankAccount
from chronik.examples.conference import conference_decider
from chronik.examples.order_projection import order_projection
from chronik.examples.orders import order_decider

__all__ = ["models", "projections", "registry"]

projections = [order_projection(2)]
models = [order_decider, conference_decider, BankAccount]
