"""Store options: merging a URL's query string with keyword options (no I/O)."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any
from urllib.parse import parse_qsl, urlsplit

from chronik.errors import ConfigurationError

__all__ = ["parse_bool", "parse_options"]


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
