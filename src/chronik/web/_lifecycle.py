"""Deleting streams, their metadata and scavenging, over HTTP (``docs/lifecycle.md``).

``DELETE /api/streams/{id}`` deletes (``?hard=true`` for good), ``GET`` and ``PUT
/api/metadata/{id}`` show and replace a stream's metadata (with its version and
whether it is deleted), ``POST /api/scavenge`` scavenges. The writes need the token,
as every write does (``_support.check_write``).
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import anyio
import msgspec
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from chronik.errors import InvalidStreamMetadataError, WrongExpectedVersionError
from chronik.lifecycle import StreamMetadata
from chronik.store import Store, StreamDeletion, StreamRetention
from chronik.web._support import ApiError, check_write, context, json_response, parse_expected, query_bool

__all__ = ["delete_stream", "metadata_record", "metadata_routes", "scavenge"]


def _power(store: Store, power: type, what: str) -> Any:
    if not isinstance(store, power):
        raise ApiError(501, f"this store cannot {what}")
    return store


def _expected(request: Request) -> Any:
    text = request.query_params.get("expected_version")
    if text is None or text == "":
        return parse_expected(None)
    return parse_expected(int(text) if text.lstrip("-").isdigit() else text)


async def delete_stream(request: Request) -> Response:
    check_write(request)
    ctx = context(request)
    store = _power(ctx.store, StreamDeletion, "delete streams")
    stream_id = request.path_params["stream_id"]
    hard = query_bool(request, "hard")
    expected = _expected(request)
    try:
        result = await anyio.to_thread.run_sync(lambda: store.delete_stream(stream_id, expected, hard=hard))
    except WrongExpectedVersionError as err:
        shown = request.query_params.get("expected_version") or "any"
        raise ApiError(409, str(err), stream_id=stream_id, expected=shown, actual=err.actual) from None
    return json_response(
        {
            "stream_id": result.stream_id,
            "mode": result.mode,
            "version": result.version,
            "position": result.position,
            "checkpoint": None if result.checkpoint is None else str(result.checkpoint),
        }
    )


def metadata_record(store: Store, stream_id: str) -> dict[str, Any]:
    """A stream's version, deletion and metadata (``max_age`` in seconds)."""
    info = store.stream_info(stream_id)
    metadata = (
        store.get_stream_metadata(stream_id) if isinstance(store, StreamRetention) else StreamMetadata()
    )
    age = metadata.max_age
    return {
        "stream_id": stream_id,
        "version": info.version,
        "deleted": info.deleted,
        "max_count": metadata.max_count,
        "max_age": None if age is None else age.total_seconds(),
        "truncate_before": metadata.truncate_before,
    }


class MetadataIn(msgspec.Struct, forbid_unknown_fields=True):
    max_count: int | None = None
    max_age: float | None = None
    truncate_before: int | None = None


def _metadata(request: Request) -> Response:
    ctx = context(request)
    return json_response(metadata_record(ctx.store, request.path_params["stream_id"]))


async def _set_metadata(request: Request) -> Response:
    check_write(request)
    ctx = context(request)
    store = _power(ctx.store, StreamRetention, "keep stream metadata")
    stream_id = request.path_params["stream_id"]
    raw = await request.body()
    try:
        body = msgspec.json.decode(raw or b"{}", type=MetadataIn)
    except msgspec.ValidationError as err:
        raise ApiError(400, f"invalid body: {err}", field=_field(err)) from None
    except msgspec.DecodeError as err:
        raise ApiError(400, f"the body is not JSON: {err}", field=None) from None
    if body.max_age is not None and not 0 < body.max_age < 2**62 / 1e6:
        raise ApiError(
            400, f"max_age must be a positive number of seconds, got {body.max_age}", field="max_age"
        )
    age = None if body.max_age is None else timedelta(seconds=body.max_age)
    metadata = StreamMetadata(max_count=body.max_count, max_age=age, truncate_before=body.truncate_before)
    try:
        await anyio.to_thread.run_sync(lambda: store.set_stream_metadata(stream_id, metadata))
    except InvalidStreamMetadataError as err:
        raise ApiError(400, str(err), field=err.field) from None
    return json_response(await anyio.to_thread.run_sync(metadata_record, store, stream_id))


def _field(err: msgspec.ValidationError) -> str | None:
    marker = " - at `$."
    text = str(err)
    return text.split(marker, 1)[1].rstrip("`") if marker in text else None


async def metadata(request: Request) -> Response:
    if request.method == "PUT":
        return await _set_metadata(request)
    return await anyio.to_thread.run_sync(_metadata, request)


async def scavenge(request: Request) -> Response:
    check_write(request)
    ctx = context(request)
    store = _power(ctx.store, StreamRetention, "scavenge")
    result = await anyio.to_thread.run_sync(store.scavenge)
    return json_response({"events": result.events, "streams": result.streams})


def metadata_routes() -> list[Route]:
    return [
        Route("/api/metadata/{stream_id:path}", metadata, methods=["GET", "PUT"]),
        Route("/api/scavenge", scavenge, methods=["POST"]),
    ]
