"""The ``chronik`` command line: a client of the library, nothing more."""

from __future__ import annotations

from pathlib import Path

import click

__all__ = ["main"]


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="chronik")
def main() -> None:
    """chronik: event sourcing for Python."""


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
