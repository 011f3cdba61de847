"""``chronik.connect(url)``: open a store by URL.

Backends are found by URL scheme among the installed entry points of the group
``chronik.backends`` (chronik's own register there too, in its ``pyproject.toml``),
and imported only when used: the core imports no backend, a backend installed from
another package is as good as one of chronik's, and a missing optional dependency
becomes an install hint.
"""

from __future__ import annotations

import functools
import json
import os
from collections.abc import Mapping
from importlib.metadata import EntryPoint, entry_points
from typing import Any, Final, cast
from urllib.parse import urlsplit
from urllib.request import url2pathname

from chronik.backend import Backend
from chronik.codec import EventRegistry
from chronik.errors import ConfigurationError
from chronik.store import AsyncStore, Store, is_async

__all__ = ["DEFAULT_URL", "ENTRY_POINT_GROUP", "backends", "connect", "connect_async", "find_backend"]

DEFAULT_URL: Final = "sqlite:///chronik.db"
ENTRY_POINT_GROUP: Final = "chronik.backends"


@functools.cache
def _entry_points() -> dict[str, list[EntryPoint]]:
    found: dict[str, list[EntryPoint]] = {}
    for entry in entry_points(group=ENTRY_POINT_GROUP):
        found.setdefault(entry.name.lower(), []).append(entry)
    return found


def backends() -> list[str]:
    """The URL schemes of the installed backends, sorted."""
    return sorted(_entry_points())


def _entries(scheme: str) -> list[EntryPoint]:
    entries = _entry_points().get(scheme.lower(), [])
    if not entries:
        _entry_points.cache_clear()  # installed since we last looked?
        entries = _entry_points().get(scheme.lower(), [])
    return entries


def _unknown(what: str) -> ConfigurationError:
    known = ", ".join(f"{s}://" for s in backends())
    return ConfigurationError(f"{what}: unknown scheme (installed backends: {known})")


def find_backend(scheme: str) -> Backend:
    """The installed backend of URL scheme ``scheme`` (its module is imported now)."""
    entries = _entries(scheme)
    if not entries:
        raise _unknown(f"no chronik backend is installed for {scheme}://")
    distinct = {e.value for e in entries}
    if len(distinct) > 1:
        raise ConfigurationError(
            f"several backends are installed for {scheme}://: {', '.join(sorted(distinct))}; uninstall one"
        )
    entry = entries[0]
    try:
        backend = entry.load()
    except ModuleNotFoundError as err:
        missing = err.name or ""
        if missing.split(".")[0] == entry.module.split(".")[0]:
            raise  # the backend package itself is broken: not a missing extra
        raise ConfigurationError(
            f"{scheme}:// stores need {missing!r}: {_install_hint(entry)} ({err})"
        ) from err
    if not isinstance(backend, Backend):
        raise ConfigurationError(
            f"the entry point {entry.name} = {entry.value!r} of group {ENTRY_POINT_GROUP} is not a "
            f"chronik.backend.Backend (it is {type(backend).__name__})"
        )
    return backend


def _install_hint(entry: EntryPoint) -> str:
    dist = entry.dist
    name = dist.name if dist is not None else entry.module.split(".")[0]
    extras = ",".join(entry.extras)
    if not extras:
        return f"install what {name} needs"
    origin: Any = None
    try:
        text = dist.read_text("direct_url.json") if dist is not None else None
        origin = json.loads(text) if text else None
    except (OSError, ValueError):  # unreadable: fall back to the index form
        pass
    return install_command(name, extras, origin if isinstance(origin, Mapping) else None)


def install_command(name: str, extras: str, origin: Mapping[str, Any] | None) -> str:
    """The pip command that adds ``extras`` to ``name`` from where it was installed.

    ``origin`` is the distribution's ``direct_url.json`` (PEP 610), present when it
    was installed from a directory, a VCS or an archive URL rather than an index:
    chronik, not on PyPI yet, is installed that way, and ``pip install
    'chronik[postgres]'`` would look for it on PyPI in vain.
    """
    url = origin.get("url") if origin is not None else None
    if not isinstance(url, str) or origin is None:
        return f"pip install '{name}[{extras}]'"
    vcs = origin.get("vcs_info")
    if isinstance(vcs, Mapping):
        commit = vcs.get("commit_id")
        pinned = f"@{commit}" if isinstance(commit, str) and commit else ""
        return f"pip install '{name}[{extras}] @ {vcs.get('vcs', 'git')}+{url}{pinned}'"
    directory = origin.get("dir_info")
    if isinstance(directory, Mapping) and url.startswith("file:"):
        editable = "-e " if directory.get("editable") else ""
        return f"pip install {editable}'{url2pathname(urlsplit(url).path)}[{extras}]'"
    return f"pip install '{name}[{extras}] @ {url}'"


def _resolve(url: str | None) -> tuple[str, Backend]:
    if url is None:
        url = os.environ.get("CHRONIK_URL") or DEFAULT_URL
    if not isinstance(url, str):
        raise ConfigurationError(f"store URL must be a str, got {type(url).__name__}")
    try:
        scheme = urlsplit(url).scheme.lower()
    except ValueError as err:  # e.g. an unclosed [ in an IPv6 host
        raise ConfigurationError(f"cannot parse store URL {url!r}: {err}") from err
    if "://" not in url or not scheme or not _entries(scheme):
        raise _unknown(f"cannot open store URL {url!r}")
    return url, find_backend(scheme)


_CODEC_OPTIONS: Final[tuple[str, ...]] = (
    "cipher",
    "compress",
    "encrypt_metadata",
    "subject_keys",
    "shredding",
)


def _split(options: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    """The options the codec takes (the same on every backend), and the backend's own."""
    codec = {name: options.pop(name) for name in _CODEC_OPTIONS if name in options}
    return codec, options


def _configure(store: Any, options: Mapping[str, Any]) -> None:
    """Give the store's codec its cipher and key store (see :func:`connect`)."""
    if not options:
        return
    codec = store.codec
    cipher = options.get("cipher")
    if cipher is not None or options.get("compress") or options.get("encrypt_metadata"):
        codec.protect(
            cipher=cipher,
            compress=bool(options.get("compress", False)),
            encrypt_metadata=bool(options.get("encrypt_metadata", False)),
        )
    keys = options.get("subject_keys")
    if keys is not None:
        if not callable(getattr(keys, "subject_keys", None)) or not callable(getattr(keys, "forget", None)):
            raise ConfigurationError(
                "subject_keys= takes a chronik.store.SubjectKeyStore (subject_keys() and forget()), "
                f"got {keys!r}"
            )
        codec.subject_keys = keys
    if options.get("shredding"):
        codec.shredding = True


def connect(url: str | None = None, *, registry: EventRegistry | None = None, **options: Any) -> Store:
    """Open the store at ``url`` (default: ``$CHRONIK_URL``, else ``sqlite:///chronik.db``).

    ``memory://``, ``sqlite:///relative/path.db``, ``sqlite:////absolute/path.db``,
    ``postgresql://...`` and the schemes of installed third-party backends; options
    can be given as keyword arguments or in the URL's query string.

    Every backend takes these keyword options, which live in the codec
    (``docs/lifecycle.md``): ``cipher`` (a ``chronik.cipher.KeyProvider``: payloads
    and snapshots are encrypted at rest with its current key), ``compress``
    (zlib, before encrypting), ``encrypt_metadata`` (metadata stays clear
    otherwise), ``subject_keys`` (the ``chronik.store.SubjectKeyStore`` that keeps
    subjects' keys for crypto-shredding, instead of the store's own) and
    ``shredding`` (read personal data even when the registry declares none, as the
    command line does).

    It is typed as :class:`chronik.Store`, every power at once, which each of
    chronik's own stores has; a third-party store may lack some (check with
    ``isinstance`` against the Protocols in ``chronik.store``).
    """
    url, backend = _resolve(url)
    codec_options, options = _split(dict(options))
    store = backend.open(url, registry, options)
    if is_async(store):
        raise ConfigurationError(f"the {backend.name} backend's open() returned an asyncio store: {store!r}")
    try:
        _configure(store, codec_options)
    except BaseException:
        store.close()
        raise
    return cast(Store, store)


def connect_async(
    url: str | None = None, *, registry: EventRegistry | None = None, **options: Any
) -> AsyncStore:
    """The asyncio twin of :func:`connect`: same URLs, same options."""
    url, backend = _resolve(url)
    codec_options, options = _split(dict(options))
    store = backend.open_async(url, registry, options)
    if not is_async(store):
        raise ConfigurationError(
            f"the {backend.name} backend's open_async() returned a sync store: {store!r}"
        )
    _configure(store, codec_options)  # asyncio stores connect lazily: nothing to close yet
    return cast(AsyncStore, store)
