"""``forget SUBJECT``: crypto-shredding from the command line (docs/lifecycle.md)."""

from __future__ import annotations

import sys

import click

from chronik._operations import forget_subject
from chronik.cli._app import load_app
from chronik.cli._common import app_option, console, fail, handle_errors, open_store, url_option
from chronik.personal import validate_subject

__all__ = ["forget"]


@click.command(short_help="Forget a data subject: destroy its key, so its personal data reads as redacted.")
@click.argument("subject")
@click.option("--yes", is_flag=True, help="Forget without asking first (needed when not on a terminal).")
@url_option
@app_option
@handle_errors
def forget(subject: str, yes: bool, url: str, app_ref: str | None) -> None:
    """Destroy SUBJECT's key. From then on its personal data reads as redacted
    everywhere: reads, subscriptions, rebuilt projections, snapshots, exports and the
    web UI. The rest of each event, and the log's order and versions, stay as they
    are. There is no undo.

    On a terminal it asks first; elsewhere it needs --yes. A subject without a key
    (never seen, or forgotten already) is no error. The key store is the store's own,
    or the one the application's store_options name (--app).
    """
    validate_subject(subject)
    if not yes:
        if not sys.stdin.isatty():
            raise fail(f"forgetting subject {subject!r} cannot be undone: pass --yes to confirm")
        click.confirm(
            f"Forget subject {subject!r} for good? Its personal data will read as redacted everywhere",
            abort=True,
        )
    app = load_app(app_ref)
    store = open_store(url, app.registry, **app.store_options)
    forget_subject(store, subject)
    console().print(f"forgot subject {subject}", markup=False)
