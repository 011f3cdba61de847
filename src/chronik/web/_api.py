"""The HTTP API: JSON under ``/api``, described by ``/openapi.json`` (see ``_openapi``).

Lists come in pages: each answer holds ``next``, the URL of the next page, or null.
The global log pages by checkpoint (``after``), a stream by version, the streams by
id; the page size is ``limit`` (at most 1,000), so no request reads a whole stream or
log. Errors are ``{"error": "..."}`` with the status that fits, and a bad query
parameter or body field is named (``"field"``).
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from datetime import datetime
from typing import Any
from urllib.parse import urlencode

import anyio
import msgspec
from starlette.requests import Request
from starlette.responses import Response, StreamingResponse
from starlette.routing import Route

import chronik
from chronik._app import model_name
from chronik._connect import find_backend
from chronik._operations import (
    categories,
    event_record,
    find_letters,
    forget_subject,
    letter_record,
    projection_rows,
    replay_letter,
    skip_letter,
    states_of,
)
from chronik._options import redacted
from chronik.errors import ChronikError, DuplicateEventError, InvalidInputError, WrongExpectedVersionError
from chronik.events import NewEvent
from chronik.personal import validate_subject
from chronik.store import SubjectKeyStore, Subscribable
from chronik.web._lifecycle import delete_stream, metadata_routes
from chronik.web._support import (
    ApiError,
    Context,
    check_write,
    context,
    json_response,
    parse_checkpoint,
    parse_expected,
    parse_moment,
    query_bool,
    query_checkpoint,
    query_int,
    query_limit,
    query_list,
)
from chronik.web._travel import find_model, travel

__all__ = ["api_routes"]


def _next(request: Request, **params: Any) -> str:
    query = dict(request.query_params.multi_items())
    query.update({k: str(v) for k, v in params.items()})
    return f"{request.url.path}?{urlencode(query)}"


def info_record(ctx: Context) -> dict[str, Any]:
    store = ctx.store
    cats = categories(store)
    head = store.head()
    try:
        backend = find_backend(ctx.url.partition("://")[0].lower()).name if "://" in ctx.url else None
    except ChronikError:
        backend = None
    return {
        "url": redacted(ctx.url),
        "backend": backend or type(store).__name__,
        "events": sum(c["events"] for c in cats),
        "streams": sum(c["streams"] for c in cats),
        "head": None if head is None else str(head),
        "categories": cats,
        "projections": projection_rows(store, ctx.app) if _has_states(store) else [],
        "models": _model_names(ctx),
        "writable": ctx.writable,
        "version": chronik.__version__,
    }


def _has_states(store: object) -> bool:
    try:
        states_of(store)
    except ChronikError:
        return False
    return True


def _model_names(ctx: Context) -> list[str]:
    return [model_name(m) for m in ctx.app.models]


def info(request: Request) -> Response:
    return json_response(info_record(context(request)))


def streams(request: Request) -> Response:
    ctx = context(request)
    limit = query_limit(request)
    category = request.query_params.get("category") or None
    after = request.query_params.get("after") or None
    found = ctx.store.list_streams(category=category, after=after, limit=limit)
    records = [{"stream_id": s.stream_id, "category": s.category, "version": s.version} for s in found]
    more = len(found) == limit
    return json_response(
        {"streams": records, "next": _next(request, after=found[-1].stream_id) if more else None}
    )


def stream(request: Request) -> Response:
    ctx = context(request)
    stream_id = request.path_params["stream_id"]
    limit = query_limit(request)
    start = query_int(request, "from", 1, minimum=1)
    end = query_int(request, "to", None, minimum=1)
    backwards = query_bool(request, "backwards")
    assert start is not None
    info = ctx.store.stream_info(stream_id)
    if info.deleted is not None:
        raise ApiError(404, f"stream {stream_id!r} was deleted", stream_id=stream_id, deleted=info.deleted)
    if not info.exists:
        raise ApiError(404, f"stream {stream_id!r} does not exist", stream_id=stream_id)
    events = ctx.store.read_stream(stream_id, start, end, backwards=backwards, limit=limit)
    following = None
    if len(events) == limit:
        last = events[-1].version
        if backwards and last > start:
            following = _next(request, to=last - 1)
        elif not backwards and last < (end or info.version):
            following = _next(request, **{"from": last + 1})
    return json_response(
        {
            "stream_id": stream_id,
            "version": info.version,
            "events": [event_record(e) for e in events],
            "next": following,
        }
    )


def log(request: Request) -> Response:
    ctx = context(request)
    limit = query_limit(request)
    after = query_checkpoint(request)
    events = list(
        ctx.store.read_all(
            after, categories=query_list(request, "category"), types=query_list(request, "type"), limit=limit
        )
    )
    last = str(events[-1].checkpoint) if events else None
    return json_response(
        {
            "events": [event_record(e) for e in events],
            "checkpoint": last,
            "next": _next(request, after=last) if len(events) == limit else None,
        }
    )


class EventIn(msgspec.Struct, forbid_unknown_fields=True):
    type: str
    data: Any = None
    metadata: dict[str, Any] | None = None
    event_id: uuid.UUID | None = None


class AppendIn(msgspec.Struct, forbid_unknown_fields=True):
    events: list[EventIn]
    expected_version: int | str | None = None


async def _body(request: Request, limit: int) -> bytes:
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise ApiError(413, f"the body is larger than {limit:,} bytes", limit=limit)
    chunks = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise ApiError(413, f"the body is larger than {limit:,} bytes", limit=limit)
        chunks.append(chunk)
    return b"".join(chunks)


def _field_of(err: msgspec.ValidationError) -> str | None:
    text = str(err)
    marker = " - at `$."
    if marker in text:
        return text.split(marker, 1)[1].rstrip("`")
    return None


async def append(request: Request) -> Response:
    check_write(request)
    ctx = context(request)
    stream_id = request.path_params["stream_id"]
    raw = await _body(request, ctx.max_body)
    try:
        body = msgspec.json.decode(raw, type=AppendIn)
    except msgspec.ValidationError as err:
        field = _field_of(err)
        raise ApiError(400, f"invalid body: {err}", field=field) from None
    except msgspec.DecodeError as err:
        raise ApiError(400, f"the body is not JSON: {err}", field=None) from None
    if not body.events:
        raise ApiError(400, "events must hold at least one event", field="events")
    expected = parse_expected(body.expected_version)
    new = [NewEvent(e.type, e.data, e.metadata, e.event_id) for e in body.events]
    try:
        result = await anyio.to_thread.run_sync(lambda: ctx.store.append(stream_id, new, expected))
    except WrongExpectedVersionError as err:
        raise ApiError(
            409,
            str(err),
            stream_id=stream_id,
            expected=body.expected_version if body.expected_version is not None else "any",
            actual=err.actual,
        ) from None
    except DuplicateEventError as err:
        raise ApiError(409, str(err), stream_id=stream_id) from None
    except InvalidInputError as err:
        raise ApiError(400, str(err), field=_input_field(err)) from None
    return json_response(
        {
            "stream_id": result.stream_id,
            "version": result.version,
            "position": result.position,
            "checkpoint": str(result.checkpoint),
        }
    )


def _input_field(err: InvalidInputError) -> str:
    name = type(err).__name__
    if "StreamId" in name:
        return "stream_id"
    if "Metadata" in name or "metadata" in str(err):
        return "metadata"
    return "events"


def projections(request: Request) -> Response:
    ctx = context(request)
    return json_response({"projections": projection_rows(ctx.store, ctx.app)})


def _known(ctx: Context, name: str) -> None:
    if name in ctx.app.names:
        return
    if any(s.name == name for s in states_of(ctx.store).projection_states(name)):
        return
    raise ApiError(404, f"unknown projection {name!r}", projection=name)


def dead_letters(request: Request) -> Response:
    ctx = context(request)
    name = request.path_params["name"]
    _known(ctx, name)
    letters = states_of(ctx.store).dead_letters(name)
    return json_response({"dead_letters": [letter_record(d) for d in letters]})


def _runnable(ctx: Context, name: str) -> None:
    _known(ctx, name)
    if name not in ctx.app.names:
        raise ApiError(
            409, f"projection {name!r} is not in the application: start the UI with --app", projection=name
        )


async def rebuild(request: Request) -> Response:
    check_write(request)
    ctx = context(request)
    name = request.path_params["name"]
    _runnable(ctx, name)

    def work() -> dict[str, Any]:
        runner = ctx.app.runner(ctx.store, name)
        runner.reset()
        handled = runner.run_until_caught_up()
        return {"projection": name, "handled": handled, "parked": runner.parked, "checkpoint": _str(runner)}

    return json_response(await anyio.to_thread.run_sync(work))


def _str(runner: Any) -> str | None:
    return None if runner.checkpoint is None else str(runner.checkpoint)


async def reset(request: Request) -> Response:
    check_write(request)
    ctx = context(request)
    name = request.path_params["name"]
    _runnable(ctx, name)

    def work() -> dict[str, Any]:
        runner = ctx.app.runner(ctx.store, name)
        runner.reset()
        return {"projection": name, "version": runner.projection.version}

    return json_response(await anyio.to_thread.run_sync(work))


def _letter(ctx: Context, request: Request) -> Any:
    name = request.path_params["name"]
    _known(ctx, name)
    try:
        [letter] = find_letters(ctx.store, name, (request.path_params["position"],))
    except InvalidInputError as err:
        raise ApiError(404, str(err), projection=name) from None
    return letter


async def skip(request: Request) -> Response:
    check_write(request)
    ctx = context(request)
    letter = _letter(ctx, request)
    await anyio.to_thread.run_sync(lambda: skip_letter(ctx.store, letter))
    return json_response({"skipped": letter_record(letter)})


async def replay(request: Request) -> Response:
    check_write(request)
    ctx = context(request)
    letter = _letter(ctx, request)
    _runnable(ctx, letter.projection)

    def work() -> None:
        replay_letter(ctx.store, ctx.app.runner(ctx.store, letter.projection), letter)

    try:
        await anyio.to_thread.run_sync(work)
    except Exception as err:
        raise ApiError(
            422, f"still failing: {type(err).__name__}: {err}", dead_letter=letter_record(letter)
        ) from None
    return json_response({"replayed": letter_record(letter)})


async def forget(request: Request) -> Response:
    """Crypto-shredding: destroy a subject's key (docs/lifecycle.md)."""
    check_write(request)
    ctx = context(request)
    subject = validate_subject(request.path_params["subject"])
    if not isinstance(ctx.store, SubjectKeyStore):
        raise ApiError(409, "this store keeps no subjects' keys (it is not a SubjectKeyStore)")
    await anyio.to_thread.run_sync(lambda: forget_subject(ctx.store, subject))
    return json_response({"forgotten": subject})


def time_travel(request: Request) -> Response:
    ctx = context(request)
    name = request.path_params["model"]
    model = find_model(ctx.app, name)
    if model is None:
        raise ApiError(404, f"the application has no model {name!r}", model=name)
    stream_id = request.path_params["stream_id"]
    version = query_int(request, "version", None)
    as_of = parse_moment(request.query_params.get("as_of"))
    if version is not None and as_of is not None:
        raise ApiError(400, "give version or as_of, not both", field="as_of")
    if not ctx.store.stream_info(stream_id).exists:
        raise ApiError(404, f"stream {stream_id!r} does not exist", stream_id=stream_id)
    return json_response(travel_or_422(ctx, model, stream_id, version, as_of))


def travel_or_422(
    ctx: Context, model: Any, stream_id: str, version: int | None, as_of: datetime | None
) -> Any:
    """The travel, or a 422 naming the event the model cannot apply or decode."""
    try:
        return travel(ctx.store, model, stream_id, version, as_of)
    except ChronikError as err:
        raise ApiError(422, f"{type(err).__name__}: {err}", stream_id=stream_id) from None


# -- Server-Sent Events -----------------------------------------------------------------------------

HEARTBEAT_SECONDS = 15.0


async def subscribe(request: Request) -> Response:
    """The log as Server-Sent Events: each event's ``id`` is its checkpoint, so a
    client that reconnects with ``Last-Event-ID`` resumes right after it."""
    ctx = context(request)
    store = ctx.store
    if not isinstance(store, Subscribable):
        raise ApiError(501, "this store has no subscriptions")
    resume = request.headers.get("last-event-id")
    after = parse_checkpoint(resume, "Last-Event-ID") if resume else query_checkpoint(request)
    if resume is None and request.query_params.get("after") in (None, "") and _from_head(request):
        after = store.head()
    cats, types = query_list(request, "category"), query_list(request, "type")
    subscription = await anyio.to_thread.run_sync(
        lambda: store.subscribe(after, categories=cats, types=types)
    )

    async def stream() -> AsyncIterator[bytes]:
        quiet = 0.0
        try:
            yield b"retry: 1000\n: chronik\n\n"
            while True:
                batch = await anyio.to_thread.run_sync(subscription.next_batch, 1.0)
                if not batch:
                    quiet += 1.0
                    if quiet >= HEARTBEAT_SECONDS:
                        quiet = 0.0
                        yield b": keep-alive\n\n"
                    continue
                quiet = 0.0
                lines = []
                for event in batch:
                    data = msgspec.json.encode(event_record(event))
                    lines.append(
                        b"id: %s\nevent: event\ndata: %s\n\n" % (str(event.checkpoint).encode(), data)
                    )
                yield b"".join(lines)
        finally:
            subscription.close()

    return StreamingResponse(
        stream(),
        media_type="text/event-stream",
        headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
    )


def _from_head(request: Request) -> bool:
    return request.query_params.get("from", "") == "head"


async def stream_or_append(request: Request) -> Response:
    if request.method == "POST":
        return await append(request)
    if request.method == "DELETE":
        return await delete_stream(request)
    return await anyio.to_thread.run_sync(stream, request)


def api_routes() -> list[Route]:
    return [
        Route("/api/info", info),
        Route("/api/streams", streams),
        Route("/api/streams/{stream_id:path}", stream_or_append, methods=["GET", "POST", "DELETE"]),
        *metadata_routes(),
        Route("/api/log", log),
        Route("/api/subscribe", subscribe),
        Route("/api/projections", projections),
        Route("/api/projections/{name}/dead-letters", dead_letters),
        Route("/api/projections/{name}/rebuild", rebuild, methods=["POST"]),
        Route("/api/projections/{name}/reset", reset, methods=["POST"]),
        Route("/api/projections/{name}/dead-letters/{position:int}/replay", replay, methods=["POST"]),
        Route("/api/projections/{name}/dead-letters/{position:int}/skip", skip, methods=["POST"]),
        Route("/api/travel/{model}/{stream_id:path}", time_travel),
        Route("/api/subjects/{subject:path}/forget", forget, methods=["POST"]),
    ]
