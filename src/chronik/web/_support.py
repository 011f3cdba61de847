"""What the API and the pages share: the store and application behind them, the token,
JSON responses, query parameters read with errors that name them, and the write guard.

Writes (appends, rebuilds, resets, dead-letter actions) are refused unless the UI was
given a token; with one, a write must carry ``Authorization: Bearer <token>``,
compared with :func:`hmac.compare_digest` so that its time does not tell how much of
a guess was right. A browser never adds that header on its own, and without CORS
(none is configured) a page of another site cannot add it either, so a cross-site
form or script cannot write: that is the CSRF defence, with the ``Origin`` check below
as a second one.
"""

from __future__ import annotations

import hmac
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import msgspec
from starlette.requests import Request
from starlette.responses import Response

import chronik
from chronik._app import App
from chronik.errors import InvalidCheckpointError
from chronik.events import Checkpoint
from chronik.store import Store

__all__ = [
    "ApiError",
    "Context",
    "check_write",
    "context",
    "error_response",
    "json_response",
    "parse_checkpoint",
    "parse_expected",
    "parse_moment",
    "query_bool",
    "query_checkpoint",
    "query_int",
    "query_limit",
    "query_list",
]

_encoder = msgspec.json.Encoder()

MAX_LIMIT = 1000
DEFAULT_LIMIT = 100


class ApiError(Exception):
    """An error answered as ``{"error": message, ...}`` with ``status``."""

    def __init__(
        self, status: int, message: str, headers: dict[str, str] | None = None, **extra: Any
    ) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.headers = headers
        self.extra = extra


@dataclass
class Context:
    """The store and application a UI shows, kept in ``app.state.chronik``."""

    store: Store
    app: App
    url: str
    token: str | None = None
    max_body: int = 1 << 20
    owns_store: bool = False
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def writable(self) -> bool:
        return self.token is not None


def context(request: Request) -> Context:
    found: Context = request.app.state.chronik
    return found


def json_response(value: Any, status: int = 200, headers: dict[str, str] | None = None) -> Response:
    return Response(_encoder.encode(value), status, headers, media_type="application/json")


def error_response(err: ApiError) -> Response:
    return json_response({"error": err.message, **err.extra}, err.status, err.headers)


def query_int(request: Request, name: str, default: int | None, *, minimum: int = 0) -> int | None:
    """The integer query parameter ``name``; a 400 naming it when it is not one."""
    text = request.query_params.get(name)
    if text is None or text == "":
        return default
    try:
        value = int(text)
    except ValueError:
        raise ApiError(
            400, f"query parameter {name!r} must be an integer, got {text!r}", field=name
        ) from None
    if value < minimum:
        raise ApiError(400, f"query parameter {name!r} must be at least {minimum}, got {value}", field=name)
    return value


_TRUE, _FALSE = ("true", "1", "yes"), ("false", "0", "no", "")


def query_bool(request: Request, name: str) -> bool:
    """The boolean query parameter ``name`` (true/false, 1/0, yes/no), given once."""
    values = request.query_params.getlist(name)
    if len(values) > 1:
        raise ApiError(400, f"query parameter {name!r} is given {len(values)} times", field=name)
    text = values[0].lower() if values else ""
    if text not in _TRUE + _FALSE:
        raise ApiError(400, f"query parameter {name!r} must be true or false, got {values[0]!r}", field=name)
    return text in _TRUE


def query_limit(request: Request) -> int:
    limit = query_int(request, "limit", DEFAULT_LIMIT, minimum=1)
    assert limit is not None
    return min(limit, MAX_LIMIT)


def parse_checkpoint(text: str | None, name: str) -> Checkpoint | None:
    if text is None or text == "":
        return None
    try:
        return Checkpoint.parse(text)
    except (InvalidCheckpointError, ValueError) as err:
        raise ApiError(
            400, f"{name} {text!r} is not a checkpoint of this store ({err})", field=name
        ) from None


def query_checkpoint(request: Request, name: str = "after") -> Checkpoint | None:
    return parse_checkpoint(request.query_params.get(name), name)


def parse_moment(text: str | None, name: str = "as_of") -> datetime | None:
    """An ISO 8601 moment (UTC when it names no offset), or a 400 naming ``name``."""
    if not text:
        return None
    try:
        at = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise ApiError(400, f"{name} {text!r} is not an ISO 8601 date and time", field=name) from None
    return at if at.utcoffset() is not None else at.replace(tzinfo=UTC)


def query_list(request: Request, name: str) -> list[str] | None:
    values = [v for v in request.query_params.getlist(name) if v]
    return values or None


_NAMED = {"any": chronik.ANY, "no-stream": chronik.NO_STREAM, "stream-exists": chronik.STREAM_EXISTS}


def parse_expected(value: int | str | None) -> Any:
    """An expected version as the API takes it (a number, 'any', 'no-stream',
    'stream-exists'; None: any), or a 400 naming ``expected_version``."""
    if value is None:
        return chronik.ANY
    if isinstance(value, str):
        if value.lower() not in _NAMED:
            raise ApiError(
                400,
                f"expected_version {value!r}: give a version (0 for no stream), 'any', 'no-stream' "
                "or 'stream-exists'",
                field="expected_version",
            )
        return _NAMED[value.lower()]
    if value < 0:
        raise ApiError(400, f"expected_version must be 0 or more, got {value}", field="expected_version")
    return value


def check_write(request: Request) -> None:
    """Refuse a write unless the UI has a token and the request carries it."""
    ctx = context(request)
    if ctx.token is None:
        raise ApiError(403, "read-only: start the UI with --token (or CHRONIK_UI_TOKEN) to allow writes")
    origin = request.headers.get("origin")
    if origin is not None and origin != f"{request.url.scheme}://{request.url.netloc}":
        raise ApiError(403, f"cross-site write refused (Origin {origin})")
    scheme, _, given = request.headers.get("authorization", "").partition(" ")
    if scheme.lower() != "bearer" or not hmac.compare_digest(given.strip().encode(), ctx.token.encode()):
        raise ApiError(
            401,
            "this write needs the UI's token as 'Authorization: Bearer <token>'",
            headers={"WWW-Authenticate": "Bearer"},
        )
