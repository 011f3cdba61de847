"""``chronik.connect(url)``: open a store by URL.

Backends are found by URL scheme and imported only when used, so the core never
imports a backend and a missing optional dependency becomes an install hint.
"""

from __future__ import annotations

import importlib
import os
from collections.abc import Callable, Mapping
from typing import Any, Final
from urllib.parse import parse_qsl, urlsplit

from chronik.codec import EventRegistry
from chronik.errors import ConfigurationError
from chronik.store import AsyncEventStore, EventStore

__all__ = ["DEFAULT_URL", "connect", "connect_async", "parse_options"]

DEFAULT_URL: Final = "sqlite:///chronik.db"

# scheme -> (module, extra to install if its import fails)
_BACKENDS: Final[dict[str, tuple[str, str | None]]] = {
    "memory": ("chronik.stores.memory", None),
    "sqlite": ("chronik.stores.sqlite", None),
    "postgresql": ("chronik.stores.postgres", "postgres"),
    "postgres": ("chronik.stores.postgres", "postgres"),
    "nats": ("chronik.stores.nats", "nats"),
}


def _backend(url: str | None) -> tuple[str, Any]:
    if url is None:
        url = os.environ.get("CHRONIK_URL") or DEFAULT_URL
    if not isinstance(url, str):
        raise ConfigurationError(f"store URL must be a str, got {type(url).__name__}")
    try:
        scheme = urlsplit(url).scheme.lower()
    except ValueError as err:  # e.g. an unclosed [ in an IPv6 host
        raise ConfigurationError(f"cannot parse store URL {url!r}: {err}") from err
    if "://" not in url or scheme not in _BACKENDS:
        known = ", ".join(f"{s}://" for s in _BACKENDS)
        raise ConfigurationError(f"cannot open store URL {url!r}: unknown scheme (known: {known})")
    module_name, extra = _BACKENDS[scheme]
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as err:
        if extra is None or (err.name or "").startswith("chronik"):
            if (err.name or "") == module_name:
                raise ConfigurationError(f"{scheme}:// stores are not available in this chronik") from err
            raise
        raise ConfigurationError(
            f"{scheme}:// needs the {extra!r} extra: pip install 'chronik[{extra}]' ({err})"
        ) from err
    return url, module


def connect(url: str | None = None, *, registry: EventRegistry | None = None, **options: Any) -> EventStore:
    """Open the store at ``url`` (default: ``$CHRONIK_URL``, else ``sqlite:///chronik.db``).

    ``memory://``, ``sqlite:///relative/path.db`` and ``sqlite:////absolute/path.db``;
    options can be given as keyword arguments or in the URL's query string.
    """
    url, module = _backend(url)
    store: EventStore = module.open_store(url, registry, options)
    return store


def connect_async(
    url: str | None = None, *, registry: EventRegistry | None = None, **options: Any
) -> AsyncEventStore:
    """The asyncio twin of :func:`connect`: same URLs, same options."""
    url, module = _backend(url)
    store: AsyncEventStore = module.open_async_store(url, registry, options)
    return store


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
