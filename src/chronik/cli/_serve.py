"""``chronik serve``: the web UI and HTTP API of a store (:mod:`chronik.web`), run with uvicorn."""

from __future__ import annotations

import click

from chronik.cli._app import load_app
from chronik.cli._common import app_option, fail, handle_errors, open_store, url_option

__all__ = ["serve"]


@click.command(short_help="The web UI and HTTP API of a store.")
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to listen on.")
@click.option("--port", type=click.IntRange(0, 65535), default=8000, show_default=True, help="Port.")
@click.option(
    "--token",
    envvar="CHRONIK_UI_TOKEN",
    show_envvar=True,
    help="Allow writes (appends, rebuilds, resets, dead letters) that carry it as a bearer token; "
    "without it the UI is read-only.",
)
@url_option
@app_option
@handle_errors
def serve(host: str, port: int, token: str | None, url: str, app_ref: str | None) -> None:
    """Serve the web UI and HTTP API (/api, described at /openapi.json) of a store.

    It listens on 127.0.0.1 unless told otherwise, and is read-only unless given a
    token. With --app it shows and runs the application's projections and travels
    back in time through the streams of its models.
    """
    try:
        import uvicorn

        from chronik.web import create_app
    except ModuleNotFoundError as err:
        raise fail(
            f"chronik serve needs the web extra ({err.name} is missing): pip install 'chronik[web]'"
        ) from err
    if token is not None and not token.strip():
        raise fail("--token is empty: give a token, or leave it out for a read-only UI")
    app = load_app(app_ref)
    store = open_store(url, app.registry, **app.store_options)
    web = create_app(store, app=app, token=token)
    web.state.chronik.url = url
    where = f"http://{host if ':' not in host else f'[{host}]'}:{port}/"
    mode = "writes need the token" if token else "read-only"
    click.echo(f"chronik UI on {url} at {where} ({mode}); Ctrl-C to stop", err=True)
    uvicorn.run(web, host=host, port=port, log_level="warning", timeout_graceful_shutdown=1)
