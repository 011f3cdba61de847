"""Turning a ``postgresql://`` URL and keyword options into a store configuration.

chronik's own options (``schema``, ``migrate``, pool sizes, ...) may sit in the URL's
query string next to libpq's parameters (``sslmode``, ``connect_timeout``, ...): the
former are taken out and checked here, the rest are handed to libpq, which checks
them in turn. Everything is checked before any connection is made.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Final
from urllib.parse import parse_qsl, quote, urlencode, urlsplit, urlunsplit

import psycopg
from psycopg.conninfo import conninfo_to_dict, make_conninfo

from chronik.backend import DEFAULT_MAX_EVENT_SIZE, parse_bool, parse_options, redacted
from chronik.errors import ConfigurationError

__all__ = ["DEFAULT_SCHEMA", "PostgresConfig", "parse_config", "validate_schema_name"]

DEFAULT_SCHEMA: Final = "chronik"
_SCHEMA_NAME: Final = re.compile(r"[a-z_][a-z0-9_]{0,62}")


def _positive_int(text: str) -> int:
    value = int(text)
    if value < 1:
        raise ValueError("must be an int >= 1")
    return value


def _seconds(text: str) -> float:
    value = float(text)
    if not value >= 0:  # also refuses NaN
        raise ValueError("must be a number of seconds >= 0")
    return value


_OPTIONS: Final[dict[str, Callable[[str], Any]]] = {
    "schema": str,
    "migrate": parse_bool,
    "max_event_size": int,
    "pool_min_size": int,
    "pool_max_size": _positive_int,
    "pool_timeout": _seconds,
    "notify": parse_bool,
    "visibility_timeout": _seconds,
    "read_model_schema": str,
}


@dataclass(frozen=True)
class PostgresConfig:
    """Everything a PostgreSQL store needs to open, checked.

    ``conninfo`` is the libpq connection string (chronik's options removed);
    ``where`` names the server, database and schema for error messages, never the
    password.
    """

    conninfo: str
    where: str
    schema: str = DEFAULT_SCHEMA
    migrate: bool = True
    max_event_size: int = DEFAULT_MAX_EVENT_SIZE
    pool_min_size: int = 1
    pool_max_size: int = 10
    pool_timeout: float = 30.0
    notify: bool = True
    visibility_timeout: float = 5.0
    read_model_schema: str | None = None
    """Where unqualified table names of your own SQL resolve (``None``: the store's schema)."""

    @property
    def channel(self) -> str:
        """The LISTEN/NOTIFY channel of this store (one per schema)."""
        return f"chronik_{self.schema}"

    @property
    def search_path(self) -> str:
        """Every pooled connection's ``search_path``: the read models' schema, then ``public``.

        A read model's ``CREATE TABLE totals`` in a store transaction lands beside the
        store's tables (or in ``read_model_schema``); ``public`` stays visible for
        reading what is there. chronik's own statements name their schema, always.
        """
        first = self.read_model_schema or self.schema
        return "public" if first == "public" else f'"{first}", public'


def validate_schema_name(name: object) -> str:
    """Return ``name`` if it is a plain lower-case PostgreSQL identifier."""
    if not isinstance(name, str) or not _SCHEMA_NAME.fullmatch(name) or name.startswith("pg_"):
        raise ConfigurationError(
            f"schema must be a lower-case identifier ([a-z_][a-z0-9_]*, at most 63 characters, "
            f"not starting with pg_), got {name!r}"
        )
    return name


def _read_model_schema(name: object) -> str:
    try:
        return validate_schema_name(name)
    except ConfigurationError as err:
        raise ConfigurationError(f"read_model_schema: {err}") from None


def _where(params: dict[str, Any], schema: str) -> str:
    host = params.get("host") or params.get("hostaddr") or "localhost"
    port = params.get("port") or "5432"
    dbname = params.get("dbname") or params.get("user") or "(default database)"
    return f"postgresql://{host}:{port}/{dbname} (schema {schema})"


def parse_config(url: str, options: dict[str, Any]) -> PostgresConfig:
    """Check ``url`` and ``options``; raise :class:`ConfigurationError` on any problem."""
    try:
        parts = urlsplit(url)
        query = parse_qsl(parts.query, keep_blank_values=True)
    except ValueError as err:
        raise ConfigurationError(f"cannot parse PostgreSQL URL {redacted(url)!r}: {err}") from err
    if parts.scheme.lower() not in ("postgresql", "postgres"):
        raise ConfigurationError(f"not a PostgreSQL URL: {redacted(url)!r} (use postgresql://...)")
    ours = [(k, v) for k, v in query if k in _OPTIONS]
    libpq = [(k, v) for k, v in query if k not in _OPTIONS]
    opts = parse_options("postgresql://?" + urlencode(ours), options, _OPTIONS)
    # quote, not quote_plus: libpq reads %20 as a space but not +.
    query_text = urlencode(libpq, quote_via=quote)
    bare = urlunsplit((parts.scheme, parts.netloc, parts.path, query_text, parts.fragment))
    try:
        params: dict[str, Any] = conninfo_to_dict(bare)
    except psycopg.Error as err:
        raise ConfigurationError(f"cannot parse PostgreSQL URL {redacted(url)!r}: {err}") from err
    for port in str(params.get("port") or "5432").split(","):
        if port and not port.isdigit():
            raise ConfigurationError(f"PostgreSQL URL {redacted(url)!r} has an invalid port {port!r}")
    params.setdefault("connect_timeout", 10)
    params.setdefault("fallback_application_name", "chronik")
    schema = validate_schema_name(opts.pop("schema", DEFAULT_SCHEMA))
    if opts.get("read_model_schema") is not None:
        opts["read_model_schema"] = _read_model_schema(opts["read_model_schema"])
    config = PostgresConfig(make_conninfo("", **params), _where(params, schema), schema, **opts)
    _check(config)
    return config


def _check(config: PostgresConfig) -> None:
    for name in ("migrate", "notify"):
        if not isinstance(getattr(config, name), bool):
            raise ConfigurationError(f"{name} must be True or False, got {getattr(config, name)!r}")
    for name in ("pool_min_size", "pool_max_size", "max_event_size"):
        value = getattr(config, name)
        if isinstance(value, bool) or not isinstance(value, int) or value < 0:
            raise ConfigurationError(f"{name} must be an int >= 0, got {value!r}")
    if config.pool_max_size < max(config.pool_min_size, 1):
        raise ConfigurationError(
            f"pool_max_size ({config.pool_max_size}) must be >= 1 and >= pool_min_size "
            f"({config.pool_min_size})"
        )
    for name in ("pool_timeout", "visibility_timeout"):
        value = getattr(config, name)
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not value >= 0:
            raise ConfigurationError(f"{name} must be a number of seconds >= 0, got {value!r}")
