"""The ``nats://`` URL and its options (no I/O)."""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Final
from urllib.parse import urlsplit

from chronik.backend import DEFAULT_MAX_EVENT_SIZE, parse_bool, parse_options, redacted
from chronik.errors import ConfigurationError

__all__ = ["NatsConfig"]

# Stricter than JetStream (which refuses only '.', '*', '>', white space and path
# separators): the store's key-value buckets are named after the stream, and bucket
# names allow only these. 'KV_' and '-state' must still fit JetStream's 255.
_STREAM_NAME: Final = re.compile(r"[A-Za-z0-9_-]{1,200}")


def _positive(kind: Callable[[str], Any]) -> Callable[[str], Any]:
    def parse(text: str) -> Any:
        value = kind(text)
        if value <= 0:
            raise ValueError("must be positive")
        return value

    return parse


def _storage(text: str) -> str:
    if text not in ("file", "memory"):
        raise ValueError("expected file or memory")
    return text


_OPTIONS: Final[Mapping[str, Callable[[str], Any]]] = {
    "stream": str,
    "replicas": _positive(int),
    "storage": _storage,
    "duplicate_window": _positive(float),
    "connect_timeout": _positive(float),
    "request_timeout": _positive(float),
    "create": parse_bool,
    "max_event_size": _positive(int),
}


@dataclass(frozen=True)
class NatsConfig:
    """Where the store lives and how its JetStream stream is made."""

    url: str
    """The URL as given, with any password hidden (for messages)."""
    servers: tuple[str, ...]
    stream: str = "chronik"
    replicas: int = 1
    storage: str = "file"
    duplicate_window: float = 120.0
    connect_timeout: float = 5.0
    request_timeout: float = 10.0
    create: bool = True
    max_event_size: int = DEFAULT_MAX_EVENT_SIZE

    @property
    def prefix(self) -> str:
        """The stream's subjects are ``<prefix>.<category>.<rest of the id>``."""
        return f"chronik.{self.stream}"

    @property
    def ids_bucket(self) -> str:
        """The key-value bucket indexing event ids (idempotent appends)."""
        return f"{self.stream}-ids"

    @property
    def state_bucket(self) -> str:
        """The key-value bucket of snapshots, checkpoints and projection records."""
        return f"{self.stream}-state"

    @property
    def keys_bucket(self) -> str:
        """The key-value bucket of subjects' keys (crypto-shredding)."""
        return f"{self.stream}-keys"

    @property
    def buckets(self) -> tuple[str, ...]:
        """Every key-value bucket of the store."""
        return (self.ids_bucket, self.state_bucket, self.keys_bucket)

    @classmethod
    def parse(cls, url: str, options: Mapping[str, Any]) -> NatsConfig:
        parts = urlsplit(url)
        shown = redacted(url)
        if parts.scheme.lower() != "nats":
            raise ConfigurationError(f"not a nats:// URL: {shown!r}")
        if parts.path not in ("", "/"):
            raise ConfigurationError(
                f"a nats:// URL takes no path: {shown!r} (name the stream with ?stream=NAME)"
            )
        userinfo, _, hosts = parts.netloc.rpartition("@")
        auth = f"{userinfo}@" if userinfo else ""
        servers = tuple(f"nats://{auth}{host.strip()}" for host in hosts.split(",") if host.strip())
        if not servers:
            servers = (f"nats://{auth}127.0.0.1:4222",)
        values = parse_options(url, options, _OPTIONS)
        stream = values.get("stream", "chronik")
        if not isinstance(stream, str) or not _STREAM_NAME.fullmatch(stream):
            raise ConfigurationError(
                f"stream={stream!r} in {shown!r}: a chronik stream name is 1 to 200 letters, digits, "
                "'-' or '_' (JetStream refuses '.', '*', '>', spaces and slashes in stream names, "
                "and the store's key-value buckets allow only these)"
            )
        return cls(shown, servers, **values)
