"""URLs of stores and brokers: merging a URL's query string with keyword options, and
showing a URL without its password (no I/O)."""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from typing import Any, Final
from urllib.parse import parse_qsl, urlsplit

from chronik.errors import ConfigurationError

__all__ = ["parse_bool", "parse_options", "redacted"]

_PASSWORD_OPTION: Final = re.compile(r"(?i)([?&]password=)[^&#]*")


def redacted(url: str) -> str:
    """``url`` with its password shown as ``***`` (``amqp://guest:***@host/``), for
    messages, logs, reprs and pages; a ``password=`` option of its query string too.

    The user information is found as a URL parser finds it (up to the last ``@`` before
    the path), without parsing the rest, so a URL that does not parse (a port that is
    not a number, several hosts: ``nats://u:p@a:4222,b:4222``) is redacted too: it is
    mostly shown in the error that says so.
    """
    scheme, sep, rest = url.partition("://")
    if sep:
        end = min((i for i in (rest.find(c) for c in "/?#") if i != -1), default=len(rest))
        userinfo, at, hosts = rest[:end].rpartition("@")
        if at and ":" in userinfo:
            user = userinfo.split(":", 1)[0]
            url = f"{scheme}://{user}:***@{hosts}{rest[end:]}"
    return _PASSWORD_OPTION.sub(r"\1***", url)


def parse_options(
    url: str, given: Mapping[str, Any], spec: Mapping[str, Callable[[str], Any]]
) -> dict[str, Any]:
    """Merge the URL's query options with keyword options, converting query text.

    Keyword options win over the query string; unknown names are an error.
    """
    merged: dict[str, Any] = {}
    for name, text in parse_qsl(urlsplit(url).query, keep_blank_values=True):
        if name not in spec:
            raise ConfigurationError(f"unknown option {name!r} in {url!r} (known: {', '.join(sorted(spec))})")
        try:
            merged[name] = spec[name](text)
        except ValueError as err:
            raise ConfigurationError(f"option {name}={text!r} in {url!r}: {err}") from err
    for name, value in given.items():
        if name not in spec:
            raise ConfigurationError(f"unknown option {name!r} (known: {', '.join(sorted(spec))})")
        merged[name] = value
    return merged


def parse_bool(text: str) -> bool:
    lowered = text.lower()
    if lowered in ("1", "true", "yes", "on"):
        return True
    if lowered in ("0", "false", "no", "off"):
        return False
    raise ValueError("expected true or false")
