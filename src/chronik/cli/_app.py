"""``--app``: the application the commands run, from :mod:`chronik._app` (which the
web UI shares)."""

from __future__ import annotations

from chronik._app import App, load_app

__all__ = ["App", "load_app"]
