"""Time travel: an aggregate's or a decider's state at a version or a moment, and
what the event at that version changed.

The state is loaded by the application's own :class:`~chronik.CommandHandler`
(snapshots and upcasters included), at ``version`` and at the version before, and
the two are compared field by field.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

import msgspec

from chronik._app import App, model_name
from chronik._operations import event_record
from chronik.aggregate import Aggregate
from chronik.decider import Decider
from chronik.handling import CommandHandler
from chronik.store import Store

__all__ = ["find_model", "plain", "travel"]


def find_model(app: App, name: str) -> Decider[Any, Any, Any] | type[Aggregate] | None:
    for model in app.models:
        if model_name(model) == name:
            return model
    return None


def models_for(app: App, stream_id: str) -> list[str]:
    """Names of the application's models whose category is the stream's (or any)."""
    category = stream_id.partition("-")[0]
    found = []
    for model in app.models:
        wanted = model.category
        if wanted is None or wanted == category:
            found.append(model_name(model))
    return found


def _hook(value: Any) -> Any:
    if hasattr(value, "__dict__"):
        return {k: v for k, v in vars(value).items() if not k.startswith("_")}
    slots = getattr(type(value), "__slots__", None)
    if slots:
        return {k: getattr(value, k) for k in slots if not k.startswith("_") and hasattr(value, k)}
    return repr(value)


def plain(state: Any) -> Any:
    """The state as JSON-ready values (fields of Structs, dataclasses and objects)."""
    return msgspec.to_builtins(state, enc_hook=_hook, str_keys=True)


def _flatten(value: Any, path: str, out: dict[str, Any]) -> None:
    if isinstance(value, dict) and value:
        for key, item in value.items():
            _flatten(item, f"{path}.{key}" if path else str(key), out)
    elif isinstance(value, list) and value:
        for index, item in enumerate(value):
            _flatten(item, f"{path}[{index}]", out)
    else:
        out[path or "(state)"] = value


def changes(before: Any, after: Any) -> list[dict[str, Any]]:
    """Each leaf that differs between two plain states: path, before and after."""
    old: dict[str, Any] = {}
    new: dict[str, Any] = {}
    _flatten(before, "", old)
    _flatten(after, "", new)
    found = []
    for path in [*old, *(p for p in new if p not in old)]:
        if old.get(path, _MISSING) != new.get(path, _MISSING):
            found.append({"path": path, "before": old.get(path), "after": new.get(path)})
    return found


_MISSING = object()


def travel(
    store: Store,
    model: Decider[Any, Any, Any] | type[Aggregate],
    stream_id: str,
    version: int | None = None,
    as_of: datetime | None = None,
) -> dict[str, Any]:
    """The state of ``stream_id`` after its first ``version`` events (or as of a
    moment, or now), the event at that version and the changes it made."""
    handler: CommandHandler[Any, Any] = CommandHandler(store, model)
    current = store.stream_info(stream_id).version
    if version is not None:
        version = min(version, current)
    loaded = handler.load(stream_id, version=version, as_of=as_of)
    state = plain(loaded.state)
    event = None
    changed: list[dict[str, Any]] = []
    if loaded.version > 0:
        previous = handler.load(stream_id, version=loaded.version - 1)
        changed = changes(plain(previous.state), state)
        [recorded] = store.read_stream(stream_id, loaded.version, loaded.version)
        event = event_record(recorded)
    return {
        "model": model_name(model),
        "stream_id": stream_id,
        "version": loaded.version,
        "stream_version": current,
        "recorded_at": None if loaded.recorded_at is None else loaded.recorded_at.isoformat(),
        "state": state,
        "event": event,
        "changes": changed,
    }
