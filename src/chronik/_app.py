"""``--app``: where the command line and the web UI find an application's registry,
projections, process managers and models.

An application is named ``module:attribute`` (or just ``module``), as Flask, uvicorn
and Celery name theirs; without ``--app`` the command line reads ``app`` from the
``[tool.chronik]`` table of ``pyproject.toml`` in the current directory. The object
found there (a module, or any object) is read for three attributes, each optional:

``registry``          the :class:`~chronik.EventRegistry` of the application's events
``projections``       its :class:`~chronik.projections.Projection` values
``process_managers``  its :class:`~chronik.ProcessManager` values
``policies``          a mapping of projection names to their
                      :class:`~chronik.projections.FailurePolicy` (retries, parking)
``models``            its :class:`~chronik.Decider` values and
                      :class:`~chronik.Aggregate` classes (time travel in the web UI)
``targets``           a mapping of projection names to a function of the store
                      giving the projection's target, for a read model that is not
                      in the store's own database (and on a store without
                      transactions, such as NATS, for every projection)
``store_options``     options the command line and the web UI open the store with
                      (``chronik.connect``'s: the ``cipher`` of encryption at rest,
                      ``compress``, ``subject_keys``...)

The command line runs each projection as ``ProjectionRunner(store, projection,
target, policy=...)`` does, its read model in the store's own database unless
``targets`` names another target, and each process manager as
``process_manager_runner`` does.

:class:`App` is a small record with exactly these, for applications that do not keep
them as module globals. The current directory is put on ``sys.path`` first, as
``python -m`` does. A wrong application is a :class:`~chronik.ConfigurationError`
naming what is wrong (the command line prints it as one line).
"""

from __future__ import annotations

import dataclasses
import importlib
import os
import sys
import tomllib
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from chronik.aggregate import Aggregate
from chronik.codec import EventRegistry
from chronik.decider import Decider
from chronik.errors import ConfigurationError
from chronik.process_managers import ProcessManager, process_manager_runner
from chronik.projections import FailurePolicy, Projection, ProjectionRunner, ProjectionTarget
from chronik.store import EventStore

__all__ = ["App", "load_app", "model_name"]


def fail(message: str) -> ConfigurationError:
    return ConfigurationError(message)


def model_name(model: Decider[Any, Any, Any] | type[Aggregate]) -> str:
    """How the UI names a model: a decider's name or category, an aggregate's class name."""
    if isinstance(model, Decider):
        return model.name or model.category or "decider"
    return model.__name__


@dataclass(frozen=True)
class App:
    """What the command line needs of an application, in one value::

    # shop/app.py; then: chronik projections list --app shop.app:app
    app = App(registry=registry, projections=[order_totals], process_managers=[thanks], models=[order])
    """

    registry: EventRegistry | None = None
    projections: Iterable[Projection[Any]] = ()
    process_managers: Iterable[ProcessManager] = ()
    policies: Mapping[str, FailurePolicy] = field(default_factory=dict)
    source: str = field(default="", compare=False)
    """Where it was found (for messages)."""
    models: Iterable[Decider[Any, Any, Any] | type[Aggregate]] = ()
    """Its deciders and aggregate classes, whose streams the web UI travels back in time."""
    targets: Mapping[str, Callable[[EventStore], ProjectionTarget[Any]]] = field(default_factory=dict)
    """Where a projection's read model lives when not in the store's own database:
    ``{"totals": lambda store: SQLAlchemyTarget(metadata, "sqlite:///totals.db")}``."""
    store_options: Mapping[str, Any] = field(default_factory=dict)
    """What the store is opened with (``chronik.connect`` options): ``{"cipher":
    StaticKeys.from_env(), "compress": True}`` for encryption at rest, say."""

    def __post_init__(self) -> None:
        where = self.source or "the application"
        if self.registry is not None and not isinstance(self.registry, EventRegistry):
            raise fail(f"{where}: registry is a {type(self.registry).__name__}, not a chronik.EventRegistry")
        projections = tuple(self.projections)
        managers = tuple(self.process_managers)
        for p in projections:
            if not isinstance(p, Projection):
                raise fail(f"{where}: projections holds a {type(p).__name__}, not a Projection")
        for m in managers:
            if not isinstance(m, ProcessManager):
                raise fail(f"{where}: process_managers holds a {type(m).__name__}, not a ProcessManager")
        models = tuple(self.models)
        for model in models:
            if not isinstance(model, Decider) and not (
                isinstance(model, type) and issubclass(model, Aggregate)
            ):
                raise fail(f"{where}: models holds {model!r}, not a chronik.Decider or an Aggregate subclass")
        model_names = [model_name(m) for m in models]
        twice_models = sorted({n for n in model_names if model_names.count(n) > 1})
        if twice_models:
            raise fail(f"{where}: two models are named {', '.join(twice_models)}")
        object.__setattr__(self, "models", models)
        names = [p.name for p in projections] + [m.name for m in managers]
        twice = sorted({n for n in names if names.count(n) > 1})
        if twice:
            raise fail(f"{where}: two projections or process managers are named {', '.join(twice)}")
        for name, policy in dict(self.policies).items():
            if name not in names or not isinstance(policy, FailurePolicy):
                raise fail(f"{where}: policies[{name!r}] must be the FailurePolicy of one of its projections")
        projection_names = {p.name for p in projections}
        for name, target in dict(self.targets).items():
            if name not in projection_names or not callable(target):
                raise fail(
                    f"{where}: targets[{name!r}] must be a function of the store giving the target "
                    "of one of its projections"
                )
        object.__setattr__(self, "projections", projections)
        object.__setattr__(self, "process_managers", managers)
        if not isinstance(self.store_options, Mapping):
            raise fail(f"{where}: store_options must be a mapping of chronik.connect options")

    @property
    def names(self) -> list[str]:
        """Names of its projections and process managers, sorted."""
        return sorted([p.name for p in self.projections] + [m.name for m in self.process_managers])

    def find(self, name: str) -> Projection[Any] | ProcessManager:
        for p in self.projections:
            if p.name == name:
                return p
        for m in self.process_managers:
            if m.name == name:
                return m
        known = ", ".join(self.names) or "none"
        hint = "" if self.source else " (name the application with --app module:attribute)"
        raise fail(f"unknown projection {name!r}: the application has {known}{hint}")

    def runner(self, store: EventStore, name: str, **options: Any) -> ProjectionRunner[Any]:
        """A runner of the projection or process manager ``name`` on ``store``."""
        found = self.find(name)
        options.setdefault("policy", self.policies.get(name))
        if isinstance(found, ProcessManager):
            return process_manager_runner(store, found, **options)
        target = self.targets.get(name)
        if target is not None:
            options.setdefault("target", target(store))
        return ProjectionRunner(store, found, **options)


def _configured(directory: Path) -> str | None:
    path = directory / "pyproject.toml"
    if not path.is_file():
        return None
    try:
        config = tomllib.loads(path.read_text(encoding="utf-8"))
    except (OSError, tomllib.TOMLDecodeError) as err:
        raise fail(f"cannot read {path}: {err}") from err
    value = config.get("tool", {}).get("chronik", {}).get("app")
    if value is not None and not isinstance(value, str):
        raise fail(f"{path}: [tool.chronik] app must be a string such as 'shop.app:app'")
    return value


def load_app(ref: str | None, *, required: bool = False) -> App:
    """The application named by ``ref`` (``module[:attribute]``), by pyproject.toml, or none."""
    where = "--app"
    if ref is None:
        ref = _configured(Path.cwd())
        where = "[tool.chronik] app in pyproject.toml"
    if ref is None:
        if required:
            raise fail(
                "no application: name it with --app module:attribute "
                "or [tool.chronik] app = 'module:attribute' in pyproject.toml"
            )
        return App()
    module_name, _, attribute = ref.partition(":")
    if not module_name or ref.count(":") > 1:
        raise fail(f"{where} {ref!r} is not module:attribute")
    cwd = os.getcwd()
    if cwd not in sys.path:
        sys.path.insert(0, cwd)
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as err:
        raise fail(f"{where} {ref!r}: cannot import {module_name!r} ({err})") from err
    except Exception as err:
        raise fail(f"{where} {ref!r}: importing {module_name!r} raised {type(err).__name__}: {err}") from err
    found: Any = module
    for part in filter(None, attribute.split(".")):
        if not hasattr(found, part):
            raise fail(f"{where} {ref!r}: {module_name!r} has no attribute {attribute!r}")
        found = getattr(found, part)
    if isinstance(found, App):
        return found if found.source else dataclasses.replace(found, source=ref)
    if not any(hasattr(found, a) for a in ("registry", "projections", "process_managers", "models")):
        raise fail(f"{where} {ref!r} has none of registry, projections, process_managers, models")
    return App(
        getattr(found, "registry", None),
        _iterable(getattr(found, "projections", ())),
        _iterable(getattr(found, "process_managers", ())),
        getattr(found, "policies", None) or {},
        ref,
        _iterable(getattr(found, "models", ())),
        getattr(found, "targets", None) or {},
        getattr(found, "store_options", None) or {},
    )


def _iterable(value: Any) -> Iterable[Any]:
    if value is None:
        return ()
    if isinstance(value, Projection | ProcessManager | Decider | type):
        return (value,)
    found: Iterable[Any] = value
    return found
