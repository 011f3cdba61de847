"""The pages: rendered on the server with Jinja2 (autoescaped, so an event's strings
are always text), made live with htmx fragments and a few lines of vendored script.

Each page reads a bounded amount: a page of streams or events, or a scan of the log
that stops after a limit (a correlation's events, an event found by id).
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import msgspec
from jinja2 import Environment, FileSystemLoader, select_autoescape
from starlette.requests import Request
from starlette.responses import HTMLResponse, RedirectResponse, Response
from starlette.routing import Route

from chronik._app import model_name
from chronik._operations import (
    all_streams,
    categories,
    letter_record,
    pretty_json,
    projection_rows,
    states_of,
)
from chronik._options import redacted
from chronik.errors import ChronikError, DecodeError
from chronik.events import RecordedEvent
from chronik.store import StreamDeletion
from chronik.web._api import info_record, travel_or_422
from chronik.web._lifecycle import metadata_record
from chronik.web._meter import rate
from chronik.web._support import (
    ApiError,
    context,
    json_response,
    parse_moment,
    query_checkpoint,
    query_int,
    query_limit,
)
from chronik.web._travel import find_model, models_for

__all__ = ["page_routes"]

SCAN_LIMIT = 100_000
"""How many events of the log a page scans at most (correlations, events by id)."""

_env = Environment(
    loader=FileSystemLoader(Path(__file__).parent / "templates"),
    autoescape=select_autoescape(["html"], default=True),
    trim_blocks=True,
    lstrip_blocks=True,
)


def _pretty(value: Any) -> str:
    """Any value (msgspec.Raw included) as indented JSON."""
    return msgspec.json.format(msgspec.json.encode(value), indent=2).decode()


_env.filters["pretty"] = _pretty
_env.globals["model_name"] = model_name


def _render(request: Request, name: str, status: int = 200, **values: Any) -> HTMLResponse:
    ctx = context(request)
    root = request.scope.get("root_path", "")
    html = _env.get_template(name).render(
        request=request, root=root, writable=ctx.writable, url=redacted(ctx.url), **values
    )
    return HTMLResponse(
        html, status, headers={"X-Frame-Options": "DENY", "X-Content-Type-Options": "nosniff"}
    )


def _view(event: RecordedEvent) -> dict[str, Any]:
    # The JSON as the application wrote it: opened, personal fields redacted where their
    # subject was forgotten; an event that cannot be opened says why, in its place.
    try:
        data = pretty_json(event.plain_data)
        metadata = event.plain_metadata
    except DecodeError as err:
        data, metadata = f"(cannot be opened: {err})", None
    meta: dict[str, Any] = {}
    if metadata:
        try:
            decoded = msgspec.json.decode(metadata)
            meta = decoded if isinstance(decoded, dict) else {}
        except msgspec.DecodeError:
            meta = {}
    return {
        "stream_id": event.stream_id,
        "version": event.version,
        "position": event.position,
        "type": event.type,
        "schema_version": event.schema_version,
        "event_id": str(event.event_id),
        "recorded_at": event.recorded_at.isoformat(timespec="milliseconds").replace("+00:00", "Z"),
        "checkpoint": str(event.checkpoint),
        "tags": list(event.tags),
        "data": data,
        "metadata": pretty_json(metadata) if metadata else "",
        "correlation_id": _str_or_none(meta.get("correlation_id")),
        "causation_id": _str_or_none(meta.get("causation_id")),
    }


def _str_or_none(value: Any) -> str | None:
    return None if value is None else str(value)


def overview(request: Request) -> Response:
    return _render(request, "overview.html", info=info_record(context(request)), page="overview")


def projections_fragment(request: Request) -> Response:
    ctx = context(request)
    rows = projection_rows(ctx.store, ctx.app)
    return _render(request, "_projections.html", projections=rows)


def projections_page(request: Request) -> Response:
    ctx = context(request)
    rows = projection_rows(ctx.store, ctx.app)
    letters = [letter_record(d) for d in states_of(ctx.store).dead_letters()]
    return _render(request, "projections.html", projections=rows, letters=letters, page="projections")


def streams_page(request: Request) -> Response:
    ctx = context(request)
    limit = query_limit(request)
    category = request.query_params.get("category") or None
    search = (request.query_params.get("q") or "").strip()
    after = request.query_params.get("after") or None
    found: list[Any] = []
    more = False
    if search:
        if ctx.store.stream_info(search).exists:
            return RedirectResponse(f"{request.scope.get('root_path', '')}/streams/{search}", 303)
        for scanned, stream in enumerate(all_streams(ctx.store, category)):
            if after is not None and stream.stream_id <= after:
                continue
            if search.lower() in stream.stream_id.lower():
                found.append(stream)
            if len(found) > limit or scanned >= SCAN_LIMIT:
                break
        more = len(found) > limit
        found = found[:limit]
    else:
        found = ctx.store.list_streams(category=category, after=after, limit=limit + 1)
        more = len(found) > limit
        found = found[:limit]
    return _render(
        request,
        "streams.html",
        streams=found,
        categories=categories(ctx.store),
        category=category,
        search=search,
        next_after=found[-1].stream_id if more and found else None,
        page="streams",
    )


def stream_page(request: Request) -> Response:
    ctx = context(request)
    stream_id = request.path_params["stream_id"]
    limit = query_limit(request)
    start = query_int(request, "from", 1, minimum=1)
    assert start is not None
    info = ctx.store.stream_info(stream_id)
    if not info.exists and info.deleted is None:
        return _render(request, "missing.html", 404, what=f"stream {stream_id}", page="streams")
    events = ctx.store.read_stream(stream_id, start, limit=limit)
    last = events[-1].version if events else start - 1
    return _render(
        request,
        "stream.html",
        stream_id=stream_id,
        version=info.version,
        state=metadata_record(ctx.store, stream_id),
        can_delete=isinstance(ctx.store, StreamDeletion),
        events=[_view(e) for e in events],
        previous_from=max(1, start - limit) if start > 1 else None,
        next_from=last + 1 if last < info.version else None,
        models=models_for(ctx.app, stream_id),
        page="streams",
    )


def _scan(request: Request) -> Iterator[RecordedEvent]:
    ctx = context(request)
    for scanned, event in enumerate(ctx.store.read_all()):
        if scanned >= SCAN_LIMIT:
            return
        yield event


def correlation_page(request: Request) -> Response:
    wanted = request.path_params["correlation_id"]
    found = []
    for event in _scan(request):
        view = _view(event)
        if view["correlation_id"] == wanted or view["event_id"] == wanted:
            found.append(view)
            if len(found) >= 1000:
                break
    return _render(request, "correlation.html", correlation_id=wanted, events=found, page="log")


def event_page(request: Request) -> Response:
    wanted = request.path_params["event_id"]
    for event in _scan(request):
        if str(event.event_id) == wanted:
            root = request.scope.get("root_path", "")
            return RedirectResponse(
                f"{root}/streams/{event.stream_id}?from={event.version}#v{event.version}", 303
            )
    return _render(request, "missing.html", 404, what=f"event {wanted}", page="log")


def log_page(request: Request) -> Response:
    ctx = context(request)
    limit = query_limit(request)
    after = query_checkpoint(request)
    events = list(ctx.store.read_all(after, limit=limit))
    return _render(
        request,
        "log.html",
        events=[_view(e) for e in events],
        next_after=str(events[-1].checkpoint) if len(events) == limit else None,
        page="log",
    )


def travel_index(request: Request) -> Response:
    ctx = context(request)
    models = []
    for model in ctx.app.models:
        streams = list(ctx.store.list_streams(category=model.category, limit=200))
        models.append({"name": model_name(model), "category": model.category, "streams": streams})
    return _render(request, "travel_index.html", models=models, page="travel")


def _travel(request: Request) -> tuple[Any, str, dict[str, Any]]:
    ctx = context(request)
    name = request.path_params["model"]
    model = find_model(ctx.app, name)
    if model is None:
        raise ApiError(404, f"the application has no model {name!r}")
    stream_id = request.path_params["stream_id"]
    if not ctx.store.stream_info(stream_id).exists:
        raise ApiError(404, f"stream {stream_id!r} does not exist")
    version = query_int(request, "version", None)
    as_of_text = request.query_params.get("as_of") or None
    as_of = parse_moment(as_of_text) if version is None else None
    return model, stream_id, travel_or_422(ctx, model, stream_id, version, as_of)


def travel_page(request: Request) -> Response:
    try:
        _, _, found = _travel(request)
    except ApiError as err:
        return _render(request, "missing.html", err.status, what=err.message, page="travel")
    return _render(request, "travel.html", t=found, page="travel")


def travel_state(request: Request) -> Response:
    try:
        _, _, found = _travel(request)
    except (ApiError, ChronikError) as err:
        message = err.message if isinstance(err, ApiError) else str(err)
        return HTMLResponse(f"<p class=error>{_env.filters['e'](message)}</p>", 400)
    return _render(request, "_travel_state.html", t=found)


def rate_fragment(request: Request) -> Response:
    return json_response(rate(context(request)))


def page_routes() -> list[Route]:
    return [
        Route("/", overview),
        Route("/api/rate", rate_fragment),
        Route("/fragments/projections", projections_fragment),
        Route("/projections", projections_page),
        Route("/streams", streams_page),
        Route("/streams/{stream_id:path}", stream_page),
        Route("/correlations/{correlation_id:path}", correlation_page),
        Route("/events/{event_id}", event_page),
        Route("/log", log_page),
        Route("/travel", travel_index),
        Route("/travel/{model}/{stream_id:path}/state", travel_state),
        Route("/travel/{model}/{stream_id:path}", travel_page),
    ]
