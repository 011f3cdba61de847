"""What the crypto-shredding tests of every backend share: an application with personal
data, and every read path a user has to it (issue 16's "done when").

Each backend's test writes the people below with crypto-shredding on, searches the raw
bytes of its database for their plaintext (its own way: a file, rows as text, stored
messages), forgets one, searches again, and checks that every read path shows the
redacted value while the rest of each event, and the log's order, stay as they were.
"""

from __future__ import annotations

import base64
import binascii
import uuid
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Annotated, Any

import msgspec

import chronik
from chronik import REDACTED, CommandHandler, Decider, PersonalData, RecordedEvent, SnapshotPolicy
from chronik.projections import CheckpointedTarget, EventHandlers, Projection, ProjectionRunner
from chronik.store import Store


class CustomerRegistered(msgspec.Struct, frozen=True):
    customer: str
    name: Annotated[str, PersonalData(subject="customer")]
    email: Annotated[str, PersonalData(subject="customer")]
    plan: str = "basic"


class CustomerUpgraded(msgspec.Struct, frozen=True):
    customer: str
    plan: str


def registry() -> chronik.EventRegistry:
    found = chronik.EventRegistry()
    found.register(CustomerRegistered, "CustomerRegistered")
    found.register(CustomerUpgraded, "CustomerUpgraded")
    return found


class Customer(msgspec.Struct, frozen=True):
    """The state a snapshot keeps: the customer's name, personal data."""

    name: str = ""
    plan: str = ""


def _decide(command: tuple[str, str, str, str], state: Customer) -> list[object]:
    customer, name, email, plan = command
    if not state.name:
        return [CustomerRegistered(customer, name, email)]
    return [CustomerUpgraded(customer, plan)]


def _evolve(state: Customer, event: object) -> Customer:
    if isinstance(event, CustomerRegistered):
        return Customer(event.name, event.plan)
    assert isinstance(event, CustomerUpgraded)
    return Customer(state.name, event.plan)


customers: Decider[tuple[str, str, str, str], object, Customer] = Decider(
    _decide, _evolve, Customer(), category="customer"
)


@dataclass(frozen=True)
class Person:
    """A data subject, its stream, and the plaintext that must never be stored."""

    subject: str
    stream: str
    name: str
    email: str

    @property
    def secrets(self) -> list[bytes]:
        return [self.name.encode(), self.email.encode()]


def people(count: int = 2) -> list[Person]:
    """People whose personal data is unique to this run (so a search cannot match another's)."""
    found = []
    for _ in range(count):
        tag = uuid.uuid4().hex[:10]
        name, email = f"Ada Lovelace {tag}", f"ada.{tag}@example.org"
        found.append(Person(f"subject-{tag}", f"customer-{tag}", name, email))
    return found


def handler(store: Store) -> CommandHandler[tuple[str, str, str, str], Customer]:
    """Commands with a snapshot after every event: snapshots hold the name too."""
    return CommandHandler(store, customers, snapshots=SnapshotPolicy(every=1))


def write(store: Store, who: Iterable[Person]) -> None:
    """Register and upgrade each person (through the command handler: snapshots too)."""
    commands = handler(store)
    for person in who:
        commands.handle(person.stream, (person.subject, person.name, person.email, ""))
        commands.handle(person.stream, (person.subject, "", "", "gold"))


def find_plaintext(blobs: Iterable[bytes], who: Iterable[Person]) -> list[str]:
    """Which of the people's secrets appear in any of ``blobs``, or in what they carry
    encoded: the strings of a JSON blob, and those strings base64-decoded (a stored
    message may hold a snapshot's bytes as base64)."""
    data: list[bytes] = []
    for blob in blobs:
        data.extend(_expanded(blob))
    return [s.decode() for p in who for s in p.secrets if any(s in blob for blob in data)]


def holds(blobs: Iterable[bytes], needle: bytes) -> bool:
    """Whether ``needle`` is in any of ``blobs``, or in what they carry encoded."""
    return any(needle in part for blob in blobs for part in _expanded(blob))


def _expanded(blob: bytes) -> list[bytes]:
    found = [blob]
    try:
        decoded = msgspec.json.decode(blob)
    except msgspec.DecodeError:
        return found
    stack = [decoded]
    while stack:
        value = stack.pop()
        if isinstance(value, dict):
            stack.extend(value.values())
        elif isinstance(value, list):
            stack.extend(value)
        elif isinstance(value, str):
            found.append(value.encode())
            try:
                raw = base64.b64decode(value, validate=True)
            except (binascii.Error, ValueError):
                continue
            found.extend(_expanded(raw))
    return found


def _names(events: Iterable[RecordedEvent], person: Person) -> list[tuple[str, str, str]]:
    return [(e.data.name, e.data.email, e.data.plan) for e in events if e.type == "CustomerRegistered"]


def read_paths(store: Store, person: Person) -> dict[str, Any]:
    """What each read path shows of ``person``: reads, read_all, a subscription, a
    rebuilt projection, the handler's state (from a snapshot when usable), the plain JSON."""
    found: dict[str, Any] = {}
    events = store.read_stream(person.stream)
    found["read_stream"] = _names(events, person)
    found["redacted"] = [e.redacted for e in events]
    found["read_all"] = _names((e for e in store.read_all() if e.stream_id == person.stream), person)
    with store.subscribe(categories=["customer"]) as subscription:
        seen: list[RecordedEvent] = []
        while len([e for e in seen if e.stream_id == person.stream]) < 2:
            batch = subscription.next_batch(30.0)
            assert batch, "the subscription stalled"
            seen.extend(batch)
    found["subscription"] = _names((e for e in seen if e.stream_id == person.stream), person)
    names: dict[str, str] = {}
    handlers = EventHandlers[dict[str, str]](store.codec.registry)

    @handlers.on(CustomerRegistered)
    def registered(event: RecordedEvent[CustomerRegistered], model: dict[str, str]) -> None:
        model[event.data.customer] = event.data.name

    runner = ProjectionRunner(
        store, Projection(f"names-{uuid.uuid4().hex[:6]}", handlers), CheckpointedTarget(names, store)
    )
    runner.rebuild()
    found["projection"] = names.get(person.subject)
    loaded = handler(store).load(person.stream)
    found["state"] = loaded.state.name
    found["from_snapshot"] = loaded.snapshot_version is not None
    found["plain"] = [msgspec.json.decode(e.plain_data) for e in events]
    return found


def expected_before(person: Person) -> dict[str, Any]:
    one = [(person.name, person.email, "basic")]
    return {
        "read_stream": one,
        "redacted": [(), ()],
        "read_all": one,
        "subscription": one,
        "projection": person.name,
        "state": person.name,
        "from_snapshot": True,
        "plain": [
            {"customer": person.subject, "name": person.name, "email": person.email, "plan": "basic"},
            {"customer": person.subject, "plan": "gold"},
        ],
    }


def expected_after_forget(person: Person) -> dict[str, Any]:
    gone = [(REDACTED, REDACTED, "basic")]
    return {
        "read_stream": gone,
        "redacted": [("name", "email"), ()],
        "read_all": gone,
        "subscription": gone,
        "projection": REDACTED,
        "state": REDACTED,
        "from_snapshot": False,  # the snapshot held the name: it is ignored, the stream replayed
        "plain": [
            {"customer": person.subject, "name": REDACTED, "email": REDACTED, "plan": "basic"},
            {"customer": person.subject, "plan": "gold"},
        ],
    }


def log_of(store: Store) -> list[tuple[str, int, int, str]]:
    """The log's order and versions: what forgetting must not change."""
    return [(e.stream_id, e.version, e.position, str(e.event_id)) for e in store.read_all()]
