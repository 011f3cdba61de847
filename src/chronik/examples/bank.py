"""Bank accounts, written as an aggregate, with an overdraft limit and an audit trail.

:class:`BankAccount` is a dataclass whose fields are its state (so it can be
snapshotted as it is). Its command methods check the rules and record events; the
methods marked ``@applies`` apply each event type. Amounts are in cents.

``MoneyDeposited`` shows an event that changed shape twice. Streams written years
ago still hold the old payloads, and they stay as they are: upcasters rewrite them
on the read path, one version at a time, so :class:`BankAccount` only knows the
current version 3:

- version 1: ``{"amount": 12}``, whole euros;
- version 2: ``{"amount": 12, "currency": "EUR"}``, with the currency;
- version 3: ``{"amount_cents": 1200, "currency": "EUR", "reference": ""}``.

:func:`audit_trail` gives every change of an account with its running balance, when
it was recorded and who asked for it (from the events' metadata).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

import msgspec

from chronik.aggregate import Aggregate, applies
from chronik.examples import registry
from chronik.store import EventStore

__all__ = [
    "AccountError",
    "AccountOpened",
    "AuditEntry",
    "BankAccount",
    "InsufficientFunds",
    "MoneyDeposited",
    "MoneyWithdrawn",
    "audit_trail",
]


@registry.event("AccountOpened")
class AccountOpened(msgspec.Struct, frozen=True):
    owner: str
    overdraft_limit: int  # in cents: how far below zero the balance may go
    currency: str = "EUR"


@registry.event("MoneyDeposited", version=3)
class MoneyDeposited(msgspec.Struct, frozen=True):
    amount_cents: int
    currency: str
    reference: str = ""


@registry.upcaster("MoneyDeposited", from_version=1)
def _deposit_v1_to_v2(data: dict[str, Any]) -> dict[str, Any]:
    # Version 1 was written when every account was in euros.
    return {"amount": data["amount"], "currency": "EUR"}


@registry.upcaster("MoneyDeposited", from_version=2)
def _deposit_v2_to_v3(data: dict[str, Any]) -> dict[str, Any]:
    # Version 3 counts cents, and deposits gained a reference.
    return {"amount_cents": data["amount"] * 100, "currency": data["currency"], "reference": ""}


@registry.event("MoneyWithdrawn")
class MoneyWithdrawn(msgspec.Struct, frozen=True):
    amount_cents: int
    reference: str = ""


class AccountError(Exception):
    """A command that the rules of accounts refuse."""


class InsufficientFunds(AccountError):
    """A withdrawal that would take the balance below the overdraft limit."""

    def __init__(self, balance: int, amount: int, overdraft_limit: int) -> None:
        self.balance = balance
        self.amount = amount
        self.overdraft_limit = overdraft_limit
        super().__init__(
            f"cannot withdraw {amount / 100:,.2f}: the balance is {balance / 100:,.2f} and the "
            f"overdraft limit {overdraft_limit / 100:,.2f}, so at most "
            f"{(balance + overdraft_limit) / 100:,.2f} can be withdrawn"
        )


@dataclass
class BankAccount(Aggregate):
    """An account in streams ``account-<id>``."""

    category = "account"

    owner: str = ""
    currency: str = "EUR"
    balance: int = 0
    overdraft_limit: int = 0
    is_open: bool = False

    # -- commands: check the rules, then record what happened --------------------------

    def open(self, owner: str, *, overdraft_limit: int = 0, currency: str = "EUR") -> None:
        if self.is_open:
            raise AccountError("this account is open already")
        if overdraft_limit < 0:
            raise AccountError(f"the overdraft limit cannot be negative, got {overdraft_limit}")
        self.record(AccountOpened(owner, overdraft_limit, currency))

    def deposit(self, amount_cents: int, reference: str = "") -> None:
        self._must_be_open()
        if amount_cents <= 0:
            raise AccountError(f"a deposit must be a positive amount, got {amount_cents}")
        self.record(MoneyDeposited(amount_cents, self.currency, reference))

    def withdraw(self, amount_cents: int, reference: str = "") -> None:
        self._must_be_open()
        if amount_cents <= 0:
            raise AccountError(f"a withdrawal must be a positive amount, got {amount_cents}")
        if self.balance - amount_cents < -self.overdraft_limit:
            raise InsufficientFunds(self.balance, amount_cents, self.overdraft_limit)
        self.record(MoneyWithdrawn(amount_cents, reference))

    def _must_be_open(self) -> None:
        if not self.is_open:
            raise AccountError("there is no such account: open it first")

    # -- handlers: apply each event to the state; no rules here, events are facts ----

    @applies(AccountOpened)
    def _opened(self, event: AccountOpened) -> None:
        self.owner = event.owner
        self.overdraft_limit = event.overdraft_limit
        self.currency = event.currency
        self.is_open = True

    @applies(MoneyDeposited)
    def _deposited(self, event: MoneyDeposited) -> None:
        self.balance += event.amount_cents

    @applies(MoneyWithdrawn)
    def _withdrawn(self, event: MoneyWithdrawn) -> None:
        self.balance -= event.amount_cents


class AuditEntry(msgspec.Struct, frozen=True):
    """One change to an account, as the audit trail shows it."""

    version: int
    recorded_at: datetime
    type: str
    schema_version: int  # as stored, before any upcasting
    change: int  # in cents: what the event did to the balance
    balance: int  # in cents, after the event
    reference: str
    user: str | None
    correlation_id: str | None
    causation_id: str | None


def audit_trail(store: EventStore, account_id: str) -> list[AuditEntry]:
    """Every event of an account with its running balance and who asked for it."""
    account = BankAccount()
    entries = []
    for event in store.read_stream(account_id):
        before = account.balance
        account.apply(event.data)
        meta = event.metadata
        entries.append(
            AuditEntry(
                event.version,
                event.recorded_at,
                event.type,
                event.schema_version,
                account.balance - before,
                account.balance,
                getattr(event.data, "reference", ""),
                meta.get("user"),
                meta.get("correlation_id"),
                meta.get("causation_id"),
            )
        )
    return entries
