"""The relay: publish the store's log, filtered by category and type, to a message broker.

An outbox over the log. A :class:`Relay` says which events; :func:`relay_runner` runs
it on the projection runner, from a checkpoint kept in the store, to a publisher of
:mod:`chronik.brokers` (NATS core or JetStream, RabbitMQ, Redis Streams, Kafka)::

    from chronik.brokers import BlockingPublisher
    from chronik.brokers.rabbitmq import RabbitMQPublisher
    from chronik.relay import Relay, relay_runner

    with BlockingPublisher(RabbitMQPublisher("amqp://guest:guest@127.0.0.1:5672/")) as broker:
        runner = relay_runner(store, Relay("orders", categories=["order"]), broker)
        runner.run()  # until runner.stop()

At least once, in order within each stream: each batch is published, the broker
confirms every message, and only then is the checkpoint saved; after a crash or a
broker fault the batch goes again. Each message's id is its event id (consumers
dedupe by it) and its headers carry the event's type, stream, version, position,
correlation and causation ids and W3C trace context (:data:`chronik.brokers.HEADERS`):
each publish is a PRODUCER span in the trace of its event, whose context the message
carries on to its consumers.
``chronik relay --to URL`` runs one from the command line. See ``docs/integrations.md``.
"""

from chronik.brokers import BlockingPublisher, publisher_for
from chronik.relay._runner import Relay, relay_runner

__all__ = ["BlockingPublisher", "Relay", "publisher_for", "relay_runner"]
