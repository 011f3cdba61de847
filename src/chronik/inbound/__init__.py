"""Inbound messages: commands and integration events from a broker into the application.

A source of :mod:`chronik.brokers` (a JetStream consumer, a RabbitMQ queue, a Redis
consumer group) feeds a function of the application, one message at a time; each is
acknowledged only after the function returned (what it appended has committed), and
handling one again after a redelivery writes nothing twice when what it writes is
derived from the message id. :func:`command_handler` makes such a function from a
``CommandHandler`` and a function that says which stream and command a message is::

    from chronik.brokers.rabbitmq import RabbitMQSource
    from chronik.inbound import Inbound, command_handler

    def route(message):
        command = message.decode(PlaceOrder)
        return f"order-{command.order_id}", command

    inbound = Inbound(RabbitMQSource(url, queue="orders"), command_handler(orders, route))
    inbound.run_in_background()

A poison message (undecodable, or failing ``tries`` times) goes to the source's
dead-letter place. Each message is handled in a CONSUMER span continuing the
sender's trace (its ``traceparent`` header). See ``docs/integrations.md``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar, overload

from chronik import _otel
from chronik.brokers._base import InboundMessage
from chronik.errors import ConfigurationError
from chronik.handling import AsyncCommandHandler, CommandHandler, CommandResult
from chronik.inbound._consumer import (
    AsyncInbound,
    Inbound,
    InboundPolicy,
    InboundState,
    InboundStatus,
    MessageHandler,
    event_id,
)

__all__ = [
    "AsyncInbound",
    "Inbound",
    "InboundMessage",
    "InboundPolicy",
    "InboundState",
    "InboundStatus",
    "MessageHandler",
    "command_handler",
    "event_id",
]

C = TypeVar("C")
S = TypeVar("S")
Route = Callable[[InboundMessage], tuple[str, Any]]


@overload
def command_handler(
    handler: CommandHandler[C, S], route: Callable[[InboundMessage], tuple[str, C]]
) -> Callable[[InboundMessage], CommandResult[S]]: ...


@overload
def command_handler(
    handler: AsyncCommandHandler[C, S], route: Callable[[InboundMessage], tuple[str, C]]
) -> Callable[[InboundMessage], Any]: ...


def command_handler(handler: Any, route: Route) -> Callable[[InboundMessage], Any]:
    """A message handler that runs the command ``route(message)`` names, ``(stream id,
    command)``, on ``handler`` (a ``CommandHandler``, or an ``AsyncCommandHandler`` for
    :class:`AsyncInbound`), with the message id as the command id: its events get ids
    derived from it, so a message delivered again appends nothing (``already_handled``).
    The message's correlation id (else its id) goes into the events' metadata, and its
    trace context goes on: the command runs in the message's CONSUMER span, so the
    events carry the context of the spans that append them, in the sender's trace
    (without the OpenTelemetry API installed, the message's own ``traceparent``)."""
    if not isinstance(handler, (CommandHandler, AsyncCommandHandler)):
        raise ConfigurationError(
            f"command_handler takes a CommandHandler or AsyncCommandHandler, got {handler!r}"
        )
    if not callable(route):
        raise ConfigurationError(f"route must be a function of the message, got {route!r}")

    def handle(message: InboundMessage) -> Any:
        stream_id, command = route(message)
        metadata = message.metadata
        if not _otel.missing():
            # The consumer's span carries the trace (and the append's span is the events'
            # parent, not the sender's); turned off, nothing does.
            metadata = {k: v for k, v in metadata.items() if k not in _otel.TRACE_KEYS}
        return handler.handle(stream_id, command, command_id=message.id, metadata=metadata)

    return handle
