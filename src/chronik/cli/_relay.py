"""``chronik relay --to URL``: publish the store's log to a broker until Ctrl-C.

The library's relay (:mod:`chronik.relay`) on the store's sync face, with a
:class:`~chronik.brokers.BlockingPublisher` over the broker the URL names. The
runner works in a thread of its own; this command prints a line whenever its state
changes (running, caught up, retrying and why, stopped) and, while it relays, how
many events it has relayed, at most once a ``--every`` seconds. SIGINT (Ctrl-C) and
SIGTERM stop it after the batch it is publishing.
"""

from __future__ import annotations

import signal
import sys
import threading
import time
from types import FrameType
from typing import Any
from urllib.parse import urlsplit

import click

from chronik._options import redacted
from chronik.brokers import BlockingPublisher, publisher_for
from chronik.cli._common import encode_line, fail, handle_errors, open_store, plural, url_option
from chronik.projections import FailurePolicy, ProjectionRunner, RunnerStatus
from chronik.relay import Relay, relay_runner
from chronik.store import CheckpointStore

__all__ = ["relay"]


def _default_name(to: str, categories: tuple[str, ...], types: tuple[str, ...]) -> str:
    parts = [urlsplit(to).scheme.split("+")[-1] or "broker"]
    if categories:
        parts.append("+".join(categories))
    if types:
        parts.append("+".join(types))
    return ".".join(parts)


def _describe(status: RunnerStatus, *, done: bool = False) -> str:
    where = f"checkpoint {status.checkpoint or 'the start'}"
    relayed = plural(status.handled, "event")
    if status.state == "retrying" and status.retrying is not None:
        retrying = status.retrying
        return (
            f"retrying since {retrying.since.isoformat(timespec='seconds')} "
            f"(attempt {retrying.attempts}: {retrying.error}); {relayed} relayed, {where}"
        )
    if status.state == "stopped":
        why = f": {status.error}" if status.error else ""
        return f"stopped{why}; {relayed} relayed, {where}"
    state = "caught up" if done and status.state == "idle" else status.state.replace("_", " ")
    behind = f", {plural(status.lag.events, 'event')} behind" if status.lag is not None else ""
    return f"{state}; {relayed} relayed, {where}{behind}"


@click.command(short_help="Publish the store's log to a broker (NATS, JetStream, RabbitMQ, Redis, Kafka).")
@click.option(
    "--to",
    "to",
    required=True,
    metavar="BROKER_URL",
    help="nats://HOST:4222, nats+jetstream://HOST:4222?stream=NAME, "
    "rabbitmq://USER:PASSWORD@HOST:5672/, redis://HOST:6379/0 or kafka://HOST:9092 "
    "(options in the query string).",
)
@click.option("--category", multiple=True, help="Only events of this category (repeatable; default: all).")
@click.option("--type", "type_", multiple=True, help="Only events of this type (repeatable; default: all).")
@click.option(
    "--name",
    help="The relay's name: its checkpoint is kept under it "
    "(default: the broker kind and the filters, e.g. rabbitmq.order).",
)
@click.option(
    "--batch-size",
    type=click.IntRange(min=1),
    default=500,
    show_default=True,
    help="Events a batch publishes; the checkpoint is saved after each batch is confirmed.",
)
@click.option("--until-caught-up", is_flag=True, help="Stop once every event up to the head is published.")
@click.option(
    "--every",
    type=click.FloatRange(min=0),
    default=5.0,
    show_default=True,
    help="Seconds between progress lines while relaying.",
)
@click.option(
    "--max-backoff",
    type=click.FloatRange(min=0),
    default=10.0,
    show_default=True,
    help="The longest pause between retries while the store or the broker is away.",
)
@url_option
@click.option("--json", "as_json", is_flag=True, help="Each line is the relay's status as JSON.")
@handle_errors
def relay(
    to: str,
    category: tuple[str, ...],
    type_: tuple[str, ...],
    name: str | None,
    batch_size: int,
    until_caught_up: bool,
    every: float,
    max_backoff: float,
    url: str,
    as_json: bool,
) -> None:
    """Publish the store's log to the broker at BROKER_URL, from the relay's checkpoint,
    following new events until Ctrl-C.

    At least once and in order within each stream: each message's id is its event id,
    its headers carry the event's type, stream, version, position, correlation and
    causation ids and trace context, and the checkpoint moves only after the broker
    confirmed. While the broker or the store is away it retries with backoff and
    says so. Run it again with the same name and it goes on where it stopped.
    """
    store = open_store(url)
    if not isinstance(store, CheckpointStore):
        raise fail(f"{url}: its store cannot keep the relay's checkpoint")
    definition = Relay(
        name or _default_name(to, category, type_), categories=category or None, types=type_ or None
    )
    publisher = BlockingPublisher(publisher_for(to))
    click.get_current_context().call_on_close(publisher.close)
    runner = relay_runner(
        store,
        definition,
        publisher,
        policy=FailurePolicy(max_backoff=max_backoff),
        batch_size=batch_size,
    )
    filters = ", ".join(
        [f"categories {' '.join(category)}" if category else "every category"]
        + ([f"types {' '.join(type_)}"] if type_ else [])
    )
    _say(
        as_json,
        None,
        f"relay {definition.name}: {redacted(url)} to {redacted(to)}, {filters} (Ctrl-C to stop)",
    )
    if until_caught_up:
        runner.run_until_caught_up()
        status = runner.status()
        _say(as_json, status, f"relay {definition.name}: {_describe(status, done=True)}")
        return
    _follow(runner, definition.name, every, as_json)


def _say(as_json: bool, status: RunnerStatus | None, text: str) -> None:
    if as_json:
        if status is not None:
            sys.stdout.buffer.write(encode_line(status))
            sys.stdout.buffer.flush()
        return
    click.echo(text)


def _report(as_json: bool, name: str, status: RunnerStatus) -> None:
    _say(as_json, status, f"relay {name}: {_describe(status)}")


def _follow(runner: ProjectionRunner[Any], name: str, every: float, as_json: bool) -> None:
    stopping = threading.Event()

    def stop(signum: int, frame: FrameType | None) -> None:
        stopping.set()

    previous = signal.signal(signal.SIGTERM, stop)
    runner.run_in_background()
    last: tuple[str, int] | None = None
    shown_at = 0.0
    try:
        while not stopping.is_set() and runner.status(lag=False).state != "stopped":
            status = runner.status(lag=False)
            now = time.monotonic()
            changed = last is None or status.state != last[0]
            moved = last is not None and status.handled != last[1] and now - shown_at >= every
            if changed or moved:
                _report(as_json, name, runner.status())
                last, shown_at = (status.state, status.handled), now
            stopping.wait(0.1)
    except KeyboardInterrupt:
        pass
    finally:
        signal.signal(signal.SIGTERM, previous)
        runner.stop()
    status = runner.status(lag=False)
    _report(as_json, name, status)
    if runner.error is not None:
        raise fail(f"relay {name} stopped: {runner.error}")
