"""The ``chronik`` command line: a client of the library, nothing more.

Every command takes ``--url`` (default ``$CHRONIK_URL``, else
``sqlite:///chronik.db``); lists print rich tables, or JSON Lines with ``--json``.
An error prints one line and exits with status 1 (2 for wrong usage). The commands
that need the application's code (projections, dead letters, ``verify``) find it with
``--app module:attribute`` or ``[tool.chronik] app`` in ``pyproject.toml``
(:mod:`chronik.cli._app`, :class:`App`). ``docs/cli.md`` is generated from here.
"""

from __future__ import annotations

from pathlib import Path

import click

from chronik.cli._app import App
from chronik.cli._forget import forget
from chronik.cli._inspect import append, info, log, read, streams, tail
from chronik.cli._lifecycle import delete, metadata, repair, scavenge
from chronik.cli._maintain import migrate, verify
from chronik.cli._projections import dead_letters, projections
from chronik.cli._relay import relay
from chronik.cli._serve import serve
from chronik.cli._transfer import copy, export, import_

__all__ = ["App", "main"]


@click.group(context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.version_option(package_name="chronik")
def main() -> None:
    """chronik: event sourcing for Python.

    Look inside a store, follow it, append to it, move it, delete and repair
    streams, and run the application's projections, from a terminal.
    """


@main.command()
@click.option(
    "--db",
    "db",
    type=click.Path(dir_okay=False, path_type=Path),
    default=Path("chronik-demo.db"),
    show_default=True,
    help="SQLite file the demo writes to.",
)
def demo(db: Path) -> None:
    """A narrated tour of chronik on an embedded SQLite file."""
    from chronik.demo import run_demo

    run_demo(db)


for _command in (
    info,
    streams,
    read,
    log,
    tail,
    append,
    delete,
    metadata,
    scavenge,
    repair,
    export,
    import_,
    copy,
    verify,
    migrate,
    forget,
    projections,
    dead_letters,
    relay,
    serve,
):
    main.add_command(_command)
