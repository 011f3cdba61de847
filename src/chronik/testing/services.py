"""Tests that need a real server: where to find it, and what to do when it is not there.

A test reads the server's URL from an environment variable with a loopback default.
When the server does not answer, the test skips with a reason that says how to run
it, except under ``CI=true``, where it fails: CI must never pass by skipping.
"""

from __future__ import annotations

import os
import socket
from typing import NoReturn
from urllib.parse import urlsplit

import pytest

__all__ = ["NATS", "POSTGRES", "RABBITMQ", "REDIS", "Service", "reachable", "unavailable"]


class Service:
    """A server the tests may use: its URL variable, default URL and default port."""

    def __init__(self, variable: str, default: str, port: int) -> None:
        self.variable = variable
        self.default = default
        self.port = port

    @property
    def url(self) -> str:
        return os.environ.get(self.variable) or self.default

    def require(self) -> str:
        """The URL, after checking that something listens there (skip or fail if not)."""
        url = self.url
        if not reachable(url, self.port):
            unavailable(f"nothing answers at {url}: start the server or set {self.variable}")
        return url


POSTGRES = Service("CHRONIK_TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/test", 5432)
REDIS = Service("CHRONIK_TEST_REDIS_URL", "redis://127.0.0.1:6379/0", 6379)
NATS = Service("CHRONIK_TEST_NATS_URL", "nats://127.0.0.1:4222", 4222)
RABBITMQ = Service("CHRONIK_TEST_RABBITMQ_URL", "amqp://guest:guest@127.0.0.1:5672/", 5672)


def reachable(url: str, default_port: int) -> bool:
    """Whether a TCP connection to the URL's host and port succeeds within 2 seconds."""
    parts = urlsplit(url)
    try:
        with socket.create_connection((parts.hostname or "127.0.0.1", parts.port or default_port), timeout=2):
            return True
    except OSError:
        return False


def unavailable(message: str) -> NoReturn:
    """Skip the test with ``message``, or fail it under ``CI=true``."""
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail(message, pytrace=False)
    pytest.skip(message)
