"""Raw nats-py: the same JetStream messages with no library around them, the floor on NATS.

One JetStream stream for the job, subjects ``raw.<job>.<account id>``, and what a
correct store needs from JetStream, as chronik uses it: each save of an account's
pending events is one message on the account's subject (so several events are
atomic), published with ``Nats-Expected-Last-Subject-Sequence`` set to the sequence
the holder last wrote or read (a concurrent writer of the same account fails on it).
The payload is the batch in MessagePack, ``[first_version, [[type, data], ...]]``
with ``data`` the event's JSON, encoded and decoded with msgspec (``_raw.py``). Loading reads
the account's messages with direct gets ("the subject's next message after sequence
N"); the log is read with nats-py's own pull subscription, 1,000 messages a fetch.
Undecoded means the batches are split (MessagePack) and the events counted; decoded
also decodes each payload into its typed Struct. Snapshots go to a key-value bucket.

This floor has no event ids, no idempotent re-send, no metadata and no wake-up of
other readers: it measures what nats-py and the server can do, not a store.
nats-py is asyncio only: the sync calls the workloads make run on one event-loop
thread, as chronik's sync face does.
"""

from __future__ import annotations

import asyncio
import threading
import uuid
from collections.abc import Coroutine, Sequence
from importlib.metadata import version as dist_version
from typing import Any, Final, TypeVar

import msgspec
import nats
import nats.js.errors
from nats.js import api

from benchmarks.contenders import Options, category_name
from benchmarks.contenders._raw import OPENED_JSON, amount_of, decode, deposited_json
from benchmarks.databases import Location
from benchmarks.domain import CATEGORY, OWNER, amount_for

__all__ = ["RawNats", "open_contender"]

T = TypeVar("T")
_pack: Final = msgspec.msgpack.Encoder().encode
_unpack: Final = msgspec.msgpack.Decoder(tuple[int, list[tuple[str, bytes]]]).decode
_FETCH: Final = 1000
_OPENED: Final = OPENED_JSON.encode()
decode_event: Final = decode
_encode: Final = msgspec.json.Encoder().encode


class RawAccount:
    __slots__ = ("balance", "pending", "seq", "stream_id", "version")

    def __init__(self, stream_id: str, version: int = 0, balance: int = 0, seq: int = 0) -> None:
        self.stream_id = stream_id
        self.version = version
        self.balance = balance
        self.seq = seq  # the JetStream sequence of the account's last message
        self.pending: list[tuple[str, bytes]] = []


class RawNats:
    def __init__(self, location: Location, options: Options) -> None:
        self.log_lags_commits = False
        self.stream = location.name
        self.bucket = f"{location.name}-snapshots"
        self.snapshots = options.snapshots or bool(options.snapshot_every)
        self.snapshot_every = options.snapshot_every
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name="raw-nats", daemon=True)
        self._thread.start()
        self._run(self._open(location.nats_url))

    def _run(self, coroutine: Coroutine[Any, Any, T]) -> T:
        return asyncio.run_coroutine_threadsafe(coroutine, self._loop).result()

    async def _open(self, url: str) -> None:
        self.nc = await nats.connect(url)
        self.js = self.nc.jetstream()
        await self.js.add_stream(name=self.stream, subjects=[f"raw.{self.stream}.>"])
        await self.js.create_key_value(bucket=self.bucket, history=1)

    def _subject(self, stream_id: str) -> str:
        return f"raw.{self.stream}.{stream_id}"

    # -- writing ----------------------------------------------------------------------

    def create(self) -> RawAccount:
        account = RawAccount(f"{CATEGORY}-{uuid.uuid4()}")
        account.pending.append(("Opened", _OPENED))
        return account

    def deposit(self, account: RawAccount, amount: int) -> None:
        account.balance += amount
        account.pending.append(("Deposited", deposited_json(amount).encode()))

    async def _publish(self, account: RawAccount) -> None:
        payload = _pack((account.version + 1, account.pending))
        headers = {"Nats-Expected-Last-Subject-Sequence": str(account.seq)}
        ack = await self.js.publish(self._subject(account.stream_id), payload, headers=headers)
        every = self.snapshot_every
        after = account.version + len(account.pending)
        if every and after // every > account.version // every:
            snapshot = {"version": after, "seq": ack.seq, "owner": OWNER, "balance": account.balance}
            await self.js.publish(f"$KV.{self.bucket}.{account.stream_id}", _encode(snapshot))
        account.seq = ack.seq
        account.version = after
        account.pending = []

    async def _save(self, accounts: Sequence[RawAccount]) -> None:
        for account in accounts:  # one message per account: JetStream 2.9 has no batch publish
            await self._publish(account)

    def save(self, accounts: Sequence[RawAccount]) -> None:
        self._run(self._save(accounts))

    def account_id(self, account: RawAccount) -> str:
        return account.stream_id

    def open_account(self) -> str:
        account = self.create()
        self.save([account])
        return account.stream_id

    # -- loading ----------------------------------------------------------------------

    async def _load(self, account_id: str) -> RawAccount:
        """The snapshot (when asked for) and the account's messages after it, decoded."""
        account = RawAccount(account_id)
        if self.snapshots:
            try:
                raw = await self.js.get_msg(f"KV_{self.bucket}", subject=f"$KV.{self.bucket}.{account_id}")
            except nats.js.errors.NotFoundError:
                pass
            else:
                snapshot = msgspec.json.decode(raw.data or b"{}")
                account.version, account.seq = snapshot["version"], snapshot["seq"]
                account.balance = snapshot["balance"]
        subject = self._subject(account_id)
        while True:
            try:
                raw = await self.js.get_msg(self.stream, seq=account.seq + 1, subject=subject, next=True)
            except nats.js.errors.NotFoundError:
                return account
            first, events = _unpack(raw.data or b"")
            for type_, data in events:
                account.balance += amount_of(type_, data)
            account.version = first + len(events) - 1
            account.seq = raw.seq or 0

    def deposit_command(self, account_id: str, amounts: Sequence[int]) -> None:
        async def command() -> None:
            account = await self._load(account_id)
            for amount in amounts:
                self.deposit(account, amount)
            await self._publish(account)

        self._run(command())

    def load(self, account_id: str) -> int:
        return self._run(self._load(account_id)).version

    def take_snapshot(self, account_id: str) -> None:
        async def snapshot() -> None:
            account = await self._load(account_id)
            value = {
                "version": account.version,
                "seq": account.seq,
                "owner": OWNER,
                "balance": account.balance,
            }
            await self.js.publish(f"$KV.{self.bucket}.{account_id}", _encode(value))

        self._run(snapshot())

    # -- the log ----------------------------------------------------------------------

    async def _read_log(self, decode: bool) -> int:
        config = api.ConsumerConfig(ack_policy=api.AckPolicy.NONE, deliver_policy=api.DeliverPolicy.ALL)
        pending = (await self.js.stream_info(self.stream)).state.messages
        if not pending:
            return 0
        sub = await self.js.pull_subscribe(f"raw.{self.stream}.>", stream=self.stream, config=config)
        count = 0
        try:
            while pending:
                messages = await sub.fetch(_FETCH, timeout=10)
                for message in messages:
                    _, events = _unpack(message.data)
                    count += len(events)
                    if decode:
                        for type_, data in events:
                            decode_event(type_, data)
                pending = messages[-1].metadata.num_pending
        finally:
            await sub.unsubscribe()
        return count

    def read_log(self, *, decode: bool, page_size: int) -> int:
        return self._run(self._read_log(decode))

    def bulk_build(self, streams: int, events_per_stream: int, chunk: int, categories: int = 1) -> list[str]:
        # One message per account (its events as one batch), published concurrently.
        async def build() -> list[str]:
            accounts = []
            for n in range(streams):
                account = self.create()
                account.stream_id = f"{category_name(n % categories)}-{uuid.uuid4()}"
                for i in range(1, events_per_stream):
                    self.deposit(account, amount_for(i))
                accounts.append(account)
            per_round = max(1, chunk // events_per_stream)
            for start in range(0, streams, per_round):
                await asyncio.gather(*(self._publish(a) for a in accounts[start : start + per_round]))
            return [a.stream_id for a in accounts]

        return self._run(build())

    def count_events(self) -> int:
        return self.read_log(decode=False, page_size=_FETCH)

    def info(self) -> dict[str, Any]:
        return {
            "library": f"nats-py {dist_version('nats-py')}",
            "api": "nats-py JetStream: publish with Nats-Expected-Last-Subject-Sequence, "
            "direct get, pull_subscribe + fetch",
        }

    def close(self) -> None:
        try:
            self._run(self.nc.close())
        finally:
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join()
            self._loop.close()


def open_contender(location: Location, options: Options) -> RawNats:
    return RawNats(location, options)
