"""chronik's web UI and HTTP API: see inside a store, follow it live, travel back in time.

:func:`create_app` returns a Starlette application (ASGI), which ``chronik serve``
runs with uvicorn and which mounts inside another ASGI application::

    from chronik.web import create_app

    ui = create_app("sqlite:///shop.db", app=shop_app, token=None)
    # Starlette: Mount("/chronik", app=ui)   FastAPI: api.mount("/chronik", ui)

The JSON API lives under ``/api`` and is described at ``/openapi.json``; the pages are
rendered on the server (Jinja2, with autoescaping: every string of an event is text,
never markup) and made live with small vendored scripts (htmx, uPlot) served from
``/static``: nothing is fetched from elsewhere. It is read-only unless given a token;
writes then need ``Authorization: Bearer <token>`` (see ``_support``). No CORS
headers are sent, so other sites' pages cannot read it or write to it.

Needs the ``web`` extra (Starlette, uvicorn, Jinja2, python-multipart).
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

try:
    from starlette.applications import Starlette
    from starlette.exceptions import HTTPException
    from starlette.requests import Request
    from starlette.responses import Response
    from starlette.routing import Mount, Route
    from starlette.staticfiles import StaticFiles
except ModuleNotFoundError as _missing:  # pragma: no cover - depends on the install
    from chronik.errors import ConfigurationError

    raise ConfigurationError(
        f"chronik.web needs the web extra ({_missing.name} is missing): pip install 'chronik[web]'"
    ) from _missing

import chronik
from chronik._app import App
from chronik._operations import operator_options
from chronik.errors import (
    ChronikError,
    ConfigurationError,
    InvalidInputError,
    StoreClosedError,
    StreamDeletedError,
)
from chronik.store import Store, is_async
from chronik.web._api import api_routes
from chronik.web._openapi import openapi
from chronik.web._pages import page_routes
from chronik.web._support import ApiError, Context, error_response, json_response

__all__ = ["create_app"]

STATIC = Path(__file__).parent / "static"


def create_app(
    store_or_url: Store | str,
    app: App | None = None,
    token: str | None = None,
    *,
    max_body: int = 1 << 20,
) -> Starlette:
    """The UI and API of a store (a sync :class:`~chronik.Store`, or a URL to open).

    ``app`` is the application whose projections, process managers and models
    (deciders and aggregates, for time travel) the UI shows and runs, as ``--app``
    finds it (:class:`chronik.cli.App`). Without ``token`` every write is refused;
    with one, writes must carry it as a bearer token. An append's body is at most
    ``max_body`` bytes. A store opened here from a URL is closed when the
    application shuts down (its lifespan); a store passed in stays the caller's.
    """
    app = app or App()
    if token is not None and (not isinstance(token, str) or not token):
        raise ConfigurationError("token must be a non-empty string, or None for a read-only UI")
    if isinstance(store_or_url, str):
        url = store_or_url
        store = chronik.connect(url, registry=app.registry, **operator_options(app.store_options))
        owns = True
    else:
        store = store_or_url
        if is_async(store):
            raise ConfigurationError("create_app takes a sync store (chronik.connect), not an asyncio one")
        url = getattr(store, "url", None) or repr(store)
        owns = False
    ctx = Context(store=store, app=app, url=url, token=token, max_body=max_body, owns_store=owns)

    @asynccontextmanager
    async def lifespan(_: Starlette) -> AsyncIterator[None]:
        try:
            yield
        finally:
            if ctx.owns_store:
                store.close()

    async def schema(_: Request) -> Response:
        return json_response(openapi())

    web = Starlette(
        routes=[
            Route("/openapi.json", schema),
            *api_routes(),
            *page_routes(),
            Mount("/static", app=StaticFiles(directory=STATIC), name="static"),
        ],
        exception_handlers={
            HTTPException: _http_error,
            ApiError: _api_error,
            InvalidInputError: _invalid_input,
            StoreClosedError: _closed,
            StreamDeletedError: _gone,
            ChronikError: _chronik_error,
        },
        lifespan=lifespan,
    )
    web.state.chronik = ctx
    return web


async def _http_error(request: Request, err: Exception) -> Response:
    """Starlette's own 404 and 405, as JSON under /api (and as text elsewhere)."""
    assert isinstance(err, HTTPException)
    if request.url.path.startswith(request.scope.get("root_path", "") + "/api"):
        return error_response(ApiError(err.status_code, err.detail, headers=dict(err.headers or {})))
    return Response(err.detail, err.status_code, err.headers, media_type="text/plain")


async def _api_error(_: Request, err: Exception) -> Response:
    assert isinstance(err, ApiError)
    return error_response(err)


async def _invalid_input(_: Request, err: Exception) -> Response:
    return error_response(ApiError(400, str(err)))


async def _gone(_: Request, err: Exception) -> Response:
    assert isinstance(err, StreamDeletedError)
    return error_response(ApiError(410, str(err), stream_id=err.stream_id, deleted=err.mode))


async def _closed(_: Request, err: Exception) -> Response:
    return error_response(ApiError(503, str(err)))


async def _chronik_error(_: Request, err: Exception) -> Response:
    return error_response(ApiError(500, f"{type(err).__name__}: {err}"))
