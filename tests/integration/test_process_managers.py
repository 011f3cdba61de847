"""Process managers over aggregates and deciders, on the memory store and on SQLite, both faces.

A transfer moves money between two accounts (an aggregate class), and records its
outcome on a ledger (a decider): the process manager runs commands on both, with
optimistic concurrency, and a reaction delivered again runs no command twice.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import msgspec
import pytest

import chronik
from chronik import STREAM_EXISTS, Aggregate, Decider, EventRegistry, RecordedEvent, applies
from chronik.errors import StreamNotFoundError
from chronik.handling import CommandHandler, CommandResult
from chronik.process_managers import (
    AsyncProcessContext,
    ProcessContext,
    ProcessManager,
    process_manager_runner,
)
from chronik.projections import FailurePolicy, ProjectionFailedError
from chronik.store import CheckpointStore, EventStore

registry = EventRegistry()


@registry.event("Deposited")
class Deposited(msgspec.Struct, frozen=True):
    amount: int


@registry.event("Withdrawn")
class Withdrawn(msgspec.Struct, frozen=True):
    amount: int


@registry.event("TransferRequested")
class TransferRequested(msgspec.Struct, frozen=True):
    source: str
    target: str
    amount: int


@registry.event("TransferRecorded")
class TransferRecorded(msgspec.Struct, frozen=True):
    transfer: str


class InsufficientFunds(Exception):
    pass


@dataclass
class Account(Aggregate):
    category = "account"
    balance: int = 0

    def deposit(self, amount: int) -> None:
        self.record(Deposited(amount))

    def withdraw(self, amount: int) -> None:
        if amount > self.balance:
            raise InsufficientFunds(f"{amount} is more than the balance of {self.balance}")
        self.record(Withdrawn(amount))

    @applies(Deposited)
    def _deposited(self, event: Deposited) -> None:
        self.balance += event.amount

    @applies(Withdrawn)
    def _withdrawn(self, event: Withdrawn) -> None:
        self.balance -= event.amount


def _record(command: str, recorded: frozenset[str]) -> list[TransferRecorded]:
    return [] if command in recorded else [TransferRecorded(command)]


ledger = Decider(
    decide=_record,
    evolve=lambda recorded, event: recorded | {event.transfer},
    initial_state=frozenset[str](),
    category="ledger",
)

FAST = FailurePolicy(retries=2, backoff=0.0)


def _transfer(event: RecordedEvent, ctx: ProcessContext) -> None:
    data: TransferRequested = event.data
    withdrawn = ctx.execute(Account, f"account-{data.source}", lambda a: a.withdraw(data.amount))
    assert isinstance(withdrawn, CommandResult)
    ctx.execute(Account, f"account-{data.target}", lambda a: a.deposit(data.amount))
    ctx.execute(ledger, "ledger-main", event.stream_id)


transfers = ProcessManager("transfers", {"TransferRequested": _transfer})


@pytest.fixture(params=["memory", "sqlite"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[EventStore]:
    url = "memory://" if request.param == "memory" else f"sqlite:///{tmp_path / 'bank.db'}"
    store = chronik.connect(url, registry=registry)
    yield store
    store.close()


def _balance(store: EventStore, account: str) -> int:
    return CommandHandler(store, Account).load(f"account-{account}").state.balance


def test_a_process_manager_runs_commands_on_aggregates_and_deciders(store: EventStore) -> None:
    CommandHandler(store, Account).handle("account-ada", lambda a: a.deposit(100))
    store.append(
        "transfer-1", [registry.new_event(TransferRequested("ada", "bob", 30), metadata={"user": "ada"})]
    )
    assert process_manager_runner(store, transfers).run_until_caught_up() == 1
    assert (_balance(store, "ada"), _balance(store, "bob")) == (70, 30)
    assert [e.data for e in store.read_stream("ledger-main")] == [TransferRecorded("transfer-1")]
    trigger = store.read_stream("transfer-1")[0]
    [withdrawn] = store.read_stream("account-ada")[1:]
    assert withdrawn.metadata == {
        "user": "ada",
        "correlation_id": str(trigger.event_id),
        "causation_id": str(trigger.event_id),
    }


def test_a_reaction_delivered_again_runs_no_command_twice(store: EventStore) -> None:
    # As after a crash between a reaction and its checkpoint on a store without
    # transactions: the commands' events are stored, the checkpoint is not.
    CommandHandler(store, Account).handle("account-ada", lambda a: a.deposit(100))
    store.append("transfer-1", [TransferRequested("ada", "bob", 30)])
    results: list[list[CommandResult[Any]]] = []

    def transfer(event: RecordedEvent, ctx: ProcessContext) -> None:
        done: list[CommandResult[Any]] = [
            ctx.execute(Account, "account-ada", lambda a: a.withdraw(30)),
            ctx.execute(Account, "account-bob", lambda a: a.deposit(30)),
        ]
        ctx.append("mail-ada", [registry.new_event(TransferRecorded(event.stream_id))])
        done.append(ctx.execute(ledger, "ledger-main", event.stream_id))
        results.append(done)

    manager = ProcessManager("transfers", {"TransferRequested": transfer})
    process_manager_runner(store, manager).run_until_caught_up()
    before = [e.event_id for e in store.read_all()]
    assert isinstance(store, CheckpointStore)
    store.delete_checkpoint("projection:transfers:v1")
    assert process_manager_runner(store, manager).run_until_caught_up() == 1
    assert [e.event_id for e in store.read_all()] == before
    assert [[r.already_handled for r in done] for done in results] == [[False] * 3, [True] * 3]
    assert results[1][0].events == (Withdrawn(30),) and results[1][0].version == 2
    assert (_balance(store, "ada"), _balance(store, "bob")) == (70, 30)


def test_a_command_decides_again_when_another_writer_got_there_first() -> None:
    # On a store without transactions (the store itself as the context's writer).
    store = chronik.connect("memory://", registry=registry)
    CommandHandler(store, Account).handle("account-ada", lambda a: a.deposit(100))
    store.append("transfer-1", [TransferRequested("ada", "bob", 30)])
    seen: list[int] = []

    def withdraw(account: Account) -> None:
        seen.append(account.balance)
        if len(seen) == 1:  # someone else withdraws between the read and the append
            store.append("account-ada", [Withdrawn(50)])
        account.withdraw(30)

    ctx = ProcessContext("transfers", store.read_stream("transfer-1")[0], store, store.codec)
    result = ctx.execute(Account, "account-ada", withdraw)
    assert seen == [100, 50]  # decided again on what the other writer left
    assert (result.attempts, result.version, result.state.balance) == (2, 3, 20)
    assert [e.data for e in store.read_stream("account-ada")] == [
        Deposited(100),
        Withdrawn(50),
        Withdrawn(30),
    ]
    store.close()


def test_a_command_that_needs_its_stream_stops_a_process_manager_named_as_one(store: EventStore) -> None:
    store.append("transfer-1", [TransferRequested("nobody", "bob", 30)])

    def transfer(event: RecordedEvent, ctx: ProcessContext) -> None:
        data: TransferRequested = event.data
        ctx.execute(
            Account,
            f"account-{data.source}",
            lambda a: a.withdraw(data.amount),
            expected_version=STREAM_EXISTS,
        )

    manager = ProcessManager("mailer", {"TransferRequested": transfer})
    runner = process_manager_runner(store, manager, policy=FailurePolicy(retries=5, backoff=0.0))
    with pytest.raises(ProjectionFailedError) as caught:
        runner.run_until_caught_up()
    assert str(caught.value).startswith(
        "process manager 'mailer' v1 stopped at stream 'transfer-1' version 1 (type 'TransferRequested'"
    )
    assert caught.value.kind == "process manager" and caught.value.attempts == 1
    assert isinstance(caught.value.__cause__, StreamNotFoundError)
    assert store.read_stream("account-nobody") == []


def test_a_process_context_loads_state_as_its_transaction_sees_it(store: EventStore) -> None:
    CommandHandler(store, Account).handle("account-ada", lambda a: a.deposit(100))
    store.append("transfer-1", [TransferRequested("ada", "bob", 30)])
    seen: list[tuple[int, int]] = []

    def react(event: RecordedEvent, ctx: ProcessContext) -> None:
        before = ctx.load(Account, "account-ada")
        ctx.execute(Account, "account-ada", lambda a: a.withdraw(30))
        after = ctx.load(Account, "account-ada")
        seen.append((before.state.balance, after.state.balance))

    process_manager_runner(store, ProcessManager("peek", {"TransferRequested": react})).run_until_caught_up()
    assert seen == [(100, 70)]


@pytest.mark.parametrize("backend", ["memory", "sqlite"])
def test_the_asyncio_face_runs_commands_on_aggregates_and_deciders(backend: str, tmp_path: Path) -> None:
    url = "memory://" if backend == "memory" else f"sqlite:///{tmp_path / 'bank.db'}"

    async def transfer(event: RecordedEvent, ctx: AsyncProcessContext) -> None:
        data: TransferRequested = event.data
        result = await ctx.execute(Account, f"account-{data.source}", lambda a: a.withdraw(data.amount))
        assert result.state.balance == 70
        await ctx.execute(Account, f"account-{data.target}", lambda a: a.deposit(data.amount))
        await ctx.execute(ledger, "ledger-main", event.stream_id)
        assert (await ctx.load(ledger, "ledger-main")).state == {event.stream_id}

    async def main() -> None:
        store = chronik.connect_async(url, registry=registry)
        await store.append("account-ada", [Deposited(100)])
        await store.append("transfer-1", [TransferRequested("ada", "bob", 30)])
        runner = process_manager_runner(store, ProcessManager("transfers", {"TransferRequested": transfer}))
        assert await runner.run_until_caught_up() == 1
        assert [e.type for e in await store.read_stream("account-bob")] == ["Deposited"]
        assert len(await store.read_stream("ledger-main")) == 1
        await store.close()

    asyncio.run(main())
