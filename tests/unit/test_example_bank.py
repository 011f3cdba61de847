"""The bank account example, specified with given/when/then."""

from chronik.examples import registry
from chronik.examples.bank import (
    AccountError,
    AccountOpened,
    BankAccount,
    InsufficientFunds,
    MoneyDeposited,
    MoneyWithdrawn,
)
from chronik.testing.specs import Specification

given = Specification(BankAccount, registry=registry).given
opened = AccountOpened("ada", overdraft_limit=5_000)


def test_an_account_is_opened_once() -> None:
    account = given().when(lambda account: account.open("ada", overdraft_limit=5_000)).then(opened)
    assert (account.owner, account.is_open, account.overdraft_limit) == ("ada", True, 5_000)
    given(opened).when(lambda account: account.open("ada")).then_raises(AccountError, match="open already")
    given().when(lambda account: account.open("ada", overdraft_limit=-1)).then_raises(AccountError)


def test_deposits_raise_the_balance() -> None:
    account = (
        given(opened, MoneyDeposited(1_000, "EUR"))
        .when(lambda account: account.deposit(250, "gift"))
        .then(MoneyDeposited(250, "EUR", "gift"))
    )
    assert account.balance == 1_250


def test_withdrawals_may_use_the_overdraft_down_to_its_limit() -> None:
    account = (
        given(opened, MoneyDeposited(1_000, "EUR"))
        .when(lambda account: account.withdraw(6_000, "rent"))
        .then(MoneyWithdrawn(6_000, "rent"))
    )
    assert account.balance == -5_000


def test_no_withdrawal_beyond_the_overdraft_limit() -> None:
    err = (
        given(opened, MoneyDeposited(1_000, "EUR"))
        .when(lambda account: account.withdraw(6_001))
        .then_raises(InsufficientFunds, match="at most 60.00 can be withdrawn")
    )
    assert (err.balance, err.amount, err.overdraft_limit) == (1_000, 6_001, 5_000)


def test_amounts_must_be_positive_and_the_account_open() -> None:
    given(opened).when(lambda account: account.deposit(0)).then_raises(AccountError, match="positive")
    given(opened).when(lambda account: account.withdraw(-5)).then_raises(AccountError, match="positive")
    given().when(lambda account: account.deposit(10)).then_raises(AccountError, match="no such account")
