"""The OpenAPI 3.1 description of the HTTP API, served at ``/openapi.json``.

Written out rather than generated: the API is small, and a description kept next to
the routes says exactly what a client may rely on (schemathesis checks the running
server against it).
"""

from __future__ import annotations

from typing import Any

import chronik

__all__ = ["openapi"]


def _ref(name: str) -> dict[str, Any]:
    return {"$ref": f"#/components/schemas/{name}"}


def _json(schema: dict[str, Any], description: str) -> dict[str, Any]:
    return {"description": description, "content": {"application/json": {"schema": schema}}}


def _error(description: str) -> dict[str, Any]:
    return _json(_ref("Error"), description)


def _query(name: str, description: str, schema: dict[str, Any] | None = None) -> dict[str, Any]:
    return {
        "name": name,
        "in": "query",
        "required": False,
        "description": description,
        "schema": schema or {"type": "string"},
    }


def _path(name: str, description: str, schema: dict[str, Any] | None = None) -> dict[str, Any]:
    return {
        "name": name,
        "in": "path",
        "required": True,
        "description": description,
        "schema": schema or {"type": "string", "minLength": 1},
    }


_LIMIT = _query("limit", "Page size (at most 1,000; default 100).", {"type": "integer", "minimum": 1})
_AFTER = _query("after", "Only events after this checkpoint (opaque: take it from a page or an event).")
_CATEGORY = _query("category", "Only events of this category (repeatable).")
_TYPE = _query("type", "Only events of this type (repeatable).")
_NAME = _path("name", "The projection's name.")
_POSITION = _path("position", "The position of the parked event.", {"type": "integer", "minimum": 0})
# A subject id: printable, at most 200 characters (chronik.personal.validate_subject).
_SUBJECT = {"type": "string", "minLength": 1, "maxLength": 200, "pattern": "^[^\\x00-\\x1f\\x7f]+$"}
_WRITE: list[dict[str, list[str]]] = [{"bearer": []}]
_WRITE_ERRORS = {
    "401": _error("The write carries no token, or the wrong one."),
    "403": _error("The UI is read-only (started without a token), or the write is cross-site."),
}

_SCHEMAS: dict[str, Any] = {
    "Error": {
        "type": "object",
        "required": ["error"],
        "properties": {"error": {"type": "string"}, "field": {"type": ["string", "null"]}},
    },
    "Event": {
        "type": "object",
        "required": [
            "stream_id",
            "version",
            "position",
            "type",
            "schema_version",
            "data",
            "metadata",
            "event_id",
            "recorded_at",
            "checkpoint",
            "tags",
        ],
        "properties": {
            "stream_id": {"type": "string"},
            "version": {"type": "integer", "minimum": 1},
            "position": {"type": "integer"},
            "type": {"type": "string"},
            "schema_version": {"type": "integer"},
            "data": {},
            "metadata": {"type": "object"},
            "event_id": {"type": "string", "format": "uuid"},
            "recorded_at": {"type": "string", "format": "date-time"},
            "checkpoint": {"type": "string"},
            "tags": {"type": "array", "items": {"type": "string"}, "description": "DCB tags, sorted."},
        },
    },
    "Events": {
        "type": "object",
        "required": ["events", "next"],
        "properties": {
            "events": {"type": "array", "items": _ref("Event")},
            "checkpoint": {"type": ["string", "null"]},
            "next": {"type": ["string", "null"], "description": "The URL of the next page, or null."},
        },
    },
    "Stream": {
        "type": "object",
        "required": ["stream_id", "version", "events", "next"],
        "properties": {
            "stream_id": {"type": "string"},
            "version": {"type": "integer"},
            "events": {"type": "array", "items": _ref("Event")},
            "next": {"type": ["string", "null"]},
        },
    },
    "Streams": {
        "type": "object",
        "required": ["streams", "next"],
        "properties": {
            "streams": {
                "type": "array",
                "items": {
                    "type": "object",
                    "required": ["stream_id", "category", "version"],
                    "properties": {
                        "stream_id": {"type": "string"},
                        "category": {"type": "string"},
                        "version": {"type": "integer"},
                    },
                },
            },
            "next": {"type": ["string", "null"]},
        },
    },
    "Projection": {
        "type": "object",
        "required": ["name", "status", "dead_letters", "runners"],
        "properties": {
            "name": {"type": "string"},
            "kind": {"type": ["string", "null"]},
            "version": {"type": ["integer", "null"]},
            "status": {"type": "string"},
            "active": {"type": "boolean"},
            "dead_letters": {"type": "integer"},
            "checkpoint": {"type": ["string", "null"]},
            "lag_events": {"type": "integer"},
            "lag_seconds": {"type": "number"},
            "failure": {"type": "string"},
            "updated_at": {"type": "string"},
            "runners": {
                "type": "array",
                "items": _ref("Runner"),
                "description": "Runners of this projection that wrote a heartbeat (live, stale or stopped).",
            },
        },
    },
    "Runner": {
        "type": "object",
        "description": (
            "What one runner (of a projection, a process manager, a consumer-group member) last said "
            "about itself in its heartbeat. `stale` is true when it should be running but has not "
            "been heard from for `stale_after` seconds (three of its intervals): stuck, gone, or cut "
            "off from the store; the other fields are then what it last said."
        ),
        "required": [
            "runner_id",
            "name",
            "version",
            "kind",
            "host",
            "pid",
            "state",
            "since",
            "stale",
            "heard_at",
            "heard_seconds_ago",
            "interval",
            "summary",
        ],
        "properties": {
            "runner_id": {"type": "string"},
            "name": {"type": "string"},
            "version": {"type": "integer"},
            "kind": {"type": "string"},
            "partition": {"type": ["string", "null"], "description": "The consumer-group member, e.g. 0of2."},
            "host": {"type": "string"},
            "pid": {"type": "integer"},
            "state": {"type": "string", "enum": ["idle", "running", "caught_up", "retrying", "stopped"]},
            "label": {"type": "string", "description": "The state as shown, or `stale`."},
            "since": {"type": "string", "description": "When it entered its state."},
            "stale": {"type": "boolean"},
            "heard_at": {"type": "string", "description": "When it last wrote (its own clock)."},
            "heard_seconds_ago": {"type": "number"},
            "interval": {"type": "number", "description": "Seconds between its heartbeats."},
            "stale_after": {"type": "number"},
            "started_at": {"type": "string"},
            "checkpoint": {"type": ["string", "null"]},
            "lag_events": {"type": ["integer", "null"]},
            "lag_seconds": {"type": ["number", "null"]},
            "handled": {"type": "integer"},
            "parked": {"type": "integer"},
            "retrying": {
                "type": ["object", "null"],
                "description": "The run of transient failures going on.",
                "properties": {
                    "since": {"type": "string"},
                    "attempts": {"type": "integer"},
                    "error": {"type": "string"},
                },
            },
            "error": {"type": ["string", "null"], "description": "Why it stopped (null: it was asked to)."},
            "recovered": {
                "type": ["object", "null"],
                "description": "The last run of transient failures that ended.",
                "properties": {
                    "since": {"type": "string"},
                    "until": {"type": "string"},
                    "attempts": {"type": "integer"},
                    "error": {"type": "string"},
                    "seconds": {"type": "number"},
                },
            },
            "summary": {"type": "string", "description": "All of it in one sentence."},
        },
    },
    "DeadLetter": {
        "type": "object",
        "required": ["projection", "projection_version", "position", "stream_id", "version", "type"],
        "properties": {
            "projection": {"type": "string"},
            "projection_version": {"type": "integer"},
            "position": {"type": "integer"},
            "stream_id": {"type": "string"},
            "version": {"type": "integer"},
            "type": {"type": "string"},
            "event_id": {"type": "string"},
            "checkpoint": {"type": "string"},
            "error": {"type": ["string", "null"]},
            "attempts": {"type": "integer"},
            "parked_at": {"type": "string"},
        },
    },
    "Info": {
        "type": "object",
        "required": ["backend", "events", "streams", "head", "categories", "projections", "writable"],
        "properties": {
            "url": {"type": "string"},
            "backend": {"type": "string"},
            "events": {"type": "integer"},
            "streams": {"type": "integer"},
            "head": {"type": ["string", "null"]},
            "categories": {
                "type": "array",
                "items": {
                    "type": "object",
                    "properties": {
                        "category": {"type": "string"},
                        "streams": {"type": "integer"},
                        "events": {"type": "integer"},
                    },
                },
            },
            "projections": {"type": "array", "items": _ref("Projection")},
            "models": {"type": "array", "items": {"type": "string"}},
            "writable": {"type": "boolean"},
            "version": {"type": "string"},
        },
    },
    "NewEvent": {
        "type": "object",
        "required": ["type"],
        "additionalProperties": False,
        "properties": {
            "type": {"type": "string", "minLength": 1},
            "data": {},
            "metadata": {"type": ["object", "null"]},
            "event_id": {
                "type": ["string", "null"],
                "format": "uuid",
                "description": "Sending the same id again appends nothing (idempotent).",
            },
            "tags": {
                "type": ["array", "null"],
                "items": {"type": "string", "minLength": 1, "maxLength": 200},
                "description": "DCB tags (docs/dcb.md): printable strings of 1 to 200 characters; "
                "kept sorted, without repeats.",
            },
        },
    },
    "Append": {
        "type": "object",
        "required": ["events"],
        "additionalProperties": False,
        "properties": {
            "expected_version": {
                "oneOf": [
                    {"type": "integer", "minimum": 0},
                    {"type": "string", "enum": ["any", "no-stream", "stream-exists"]},
                    {"type": "null"},
                ],
                "description": "The stream's version the append expects (0: no stream); default any.",
            },
            "events": {"type": "array", "minItems": 1, "items": _ref("NewEvent")},
        },
    },
    "Appended": {
        "type": "object",
        "required": ["stream_id", "version", "position", "checkpoint"],
        "properties": {
            "stream_id": {"type": "string"},
            "version": {"type": "integer"},
            "position": {"type": "integer"},
            "checkpoint": {"type": "string"},
        },
    },
    "Conflict": {
        "type": "object",
        "required": ["error"],
        "properties": {
            "error": {"type": "string"},
            "stream_id": {"type": "string"},
            "expected": {},
            "actual": {"type": "integer"},
        },
    },
    "Deleted": {
        "type": "object",
        "required": ["stream_id", "mode", "version", "position", "checkpoint"],
        "properties": {
            "stream_id": {"type": "string"},
            "mode": {"type": "string", "enum": ["soft", "hard", "archived"]},
            "version": {
                "type": "integer",
                "minimum": 0,
                "description": "The deletion event's version; 0 when nothing was written (deleted already).",
            },
            "position": {"type": ["integer", "null"]},
            "checkpoint": {"type": ["string", "null"]},
        },
    },
    "StreamMetadata": {
        "type": "object",
        "required": ["stream_id", "version", "deleted", "max_count", "max_age", "truncate_before"],
        "properties": {
            "stream_id": {"type": "string"},
            "version": {"type": "integer", "description": "0 while the stream is deleted."},
            "deleted": {"type": ["string", "null"], "enum": ["soft", "hard", "archived", None]},
            "max_count": {"type": ["integer", "null"]},
            "max_age": {"type": ["number", "null"], "description": "Seconds."},
            "truncate_before": {"type": ["integer", "null"]},
        },
    },
    "SetStreamMetadata": {
        "type": "object",
        "additionalProperties": False,
        "description": "Replaces every limit: one left out (or null) is removed.",
        "properties": {
            "max_count": {
                "type": ["integer", "null"],
                "minimum": 1,
                "description": "Keep the last N events.",
            },
            "max_age": {
                "type": ["number", "null"],
                "exclusiveMinimum": 0,
                "description": "Hide events older than this many seconds.",
            },
            "truncate_before": {
                "type": ["integer", "null"],
                "minimum": 1,
                "description": "Hide the versions before this one.",
            },
        },
    },
    "Travel": {
        "type": "object",
        "required": ["model", "stream_id", "version", "stream_version", "state", "event", "changes"],
        "properties": {
            "model": {"type": "string"},
            "stream_id": {"type": "string"},
            "version": {"type": "integer"},
            "stream_version": {"type": "integer"},
            "recorded_at": {"type": ["string", "null"]},
            "state": {},
            "event": {"oneOf": [_ref("Event"), {"type": "null"}]},
            "changes": {
                "type": "array",
                "items": {
                    "type": "object",
                    "properties": {"path": {"type": "string"}, "before": {}, "after": {}},
                },
            },
        },
    },
}


def openapi() -> dict[str, Any]:
    """The description, as a JSON-ready dict."""
    stream_id = _path("stream_id", "The stream's id, such as order-42.")
    ok = "200"
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "chronik",
            "version": chronik.__version__,
            "description": "An event store's streams, global log, projections and live subscription.",
        },
        "components": {
            "schemas": _SCHEMAS,
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}},
        },
        "paths": {
            "/api/info": {
                "get": {
                    "summary": "Counts, categories, head and projections",
                    "responses": {ok: _json(_ref("Info"), "The store at a glance.")},
                }
            },
            "/api/streams": {
                "get": {
                    "summary": "Streams by id",
                    "parameters": [
                        _query("category", "Only streams of this category."),
                        _query("after", "Streams after this id (take it from next)."),
                        _LIMIT,
                    ],
                    "responses": {
                        ok: _json(_ref("Streams"), "A page of streams."),
                        "400": _error("A query parameter is wrong."),
                    },
                }
            },
            "/api/streams/{stream_id}": {
                "get": {
                    "summary": "A stream's events",
                    "parameters": [
                        stream_id,
                        _query("from", "Lowest version (default 1).", {"type": "integer", "minimum": 1}),
                        _query("to", "Highest version.", {"type": "integer", "minimum": 1}),
                        _query("backwards", "Highest version first.", {"type": "boolean"}),
                        _LIMIT,
                    ],
                    "responses": {
                        ok: _json(_ref("Stream"), "A page of the stream's events."),
                        "400": _error("A query parameter is wrong."),
                        "404": _error("The stream does not exist (deleted names how it was deleted)."),
                    },
                },
                "post": {
                    "summary": "Append events",
                    "security": _WRITE,
                    "parameters": [stream_id],
                    "requestBody": {
                        "required": True,
                        "content": {"application/json": {"schema": _ref("Append")}},
                    },
                    "responses": {
                        ok: _json(_ref("Appended"), "Appended (or already there: same event ids)."),
                        "400": _error("The body is wrong; field names the part."),
                        **_WRITE_ERRORS,
                        "409": _json(_ref("Conflict"), "The stream is not at the expected version."),
                        "410": _error("The stream was deleted for good, or archived."),
                        "413": _error("The body is over the size limit."),
                    },
                },
                "delete": {
                    "summary": "Delete a stream (hard=true: its events now, and its id for good)",
                    "security": _WRITE,
                    "parameters": [
                        stream_id,
                        _query("hard", "Remove its events now and forbid its id.", {"type": "boolean"}),
                        _query(
                            "expected_version",
                            "Delete only at this version (0: no stream; any, no-stream, stream-exists).",
                        ),
                    ],
                    "responses": {
                        ok: _json(_ref("Deleted"), "Deleted (or deleted that way already: version 0)."),
                        "400": _error("A query parameter is wrong, or the stream cannot be deleted."),
                        **_WRITE_ERRORS,
                        "409": _json(_ref("Conflict"), "The stream is not at the expected version."),
                        "501": _error("This store cannot delete streams."),
                    },
                },
            },
            "/api/metadata/{stream_id}": {
                "get": {
                    "summary": "A stream's metadata, version and whether it is deleted",
                    "parameters": [stream_id],
                    "responses": {
                        ok: _json(_ref("StreamMetadata"), "What the stream keeps, and its state."),
                        "400": _error("The stream id is not one."),
                    },
                },
                "put": {
                    "summary": "Replace a stream's metadata (reads respect it at once)",
                    "security": _WRITE,
                    "parameters": [stream_id],
                    "requestBody": {
                        "required": False,
                        "content": {"application/json": {"schema": _ref("SetStreamMetadata")}},
                    },
                    "responses": {
                        ok: _json(_ref("StreamMetadata"), "The stream's metadata now."),
                        "400": _error("A value is out of range; field names it."),
                        **_WRITE_ERRORS,
                        "410": _error("The stream was deleted for good."),
                        "501": _error("This store keeps no stream metadata."),
                    },
                },
            },
            "/api/scavenge": {
                "post": {
                    "summary": "Remove what deletes and stream metadata hide, and give the space back",
                    "security": _WRITE,
                    "responses": {
                        ok: _json(
                            {
                                "type": "object",
                                "required": ["events", "streams"],
                                "properties": {"events": {"type": "integer"}, "streams": {"type": "integer"}},
                            },
                            "How many events it removed, from how many streams.",
                        ),
                        **_WRITE_ERRORS,
                        "501": _error("This store cannot scavenge."),
                    },
                }
            },
            "/api/log": {
                "get": {
                    "summary": "The global log, in order",
                    "parameters": [_AFTER, _CATEGORY, _TYPE, _LIMIT],
                    "responses": {
                        ok: _json(_ref("Events"), "A page of the log."),
                        "400": _error("A query parameter is wrong."),
                    },
                }
            },
            "/api/rate": {
                "get": {
                    "summary": "Events per second over the last five minutes (the overview's chart)",
                    "responses": {
                        ok: _json(
                            {
                                "type": "object",
                                "required": ["seconds", "counts"],
                                "properties": {
                                    "seconds": {"type": "array", "items": {"type": "integer"}},
                                    "counts": {"type": "array", "items": {"type": "integer"}},
                                },
                            },
                            "Unix seconds and the events recorded in each.",
                        )
                    },
                }
            },
            "/api/subscribe": {
                "get": {
                    "summary": "Follow the log as Server-Sent Events",
                    "description": "Each event's SSE id is its checkpoint: reconnecting with Last-Event-ID "
                    "resumes after it. from=head starts at the end of the log.",
                    "parameters": [
                        _AFTER,
                        _CATEGORY,
                        _TYPE,
                        _query(
                            "from",
                            "head: only events appended from now on.",
                            {"type": "string", "enum": ["head"]},
                        ),
                        {
                            "name": "Last-Event-ID",
                            "in": "header",
                            "required": False,
                            "schema": {"type": "string"},
                        },
                    ],
                    "responses": {
                        ok: {
                            "description": "An event stream (event: event, data: an Event).",
                            "content": {"text/event-stream": {"schema": {"type": "string"}}},
                        },
                        "400": _error("A checkpoint is wrong."),
                    },
                }
            },
            "/api/projections": {
                "get": {
                    "summary": "Projections: status, checkpoint, lag, dead letters, runners' heartbeats",
                    "responses": {
                        ok: _json(
                            {
                                "type": "object",
                                "properties": {"projections": {"type": "array", "items": _ref("Projection")}},
                            },
                            "Every projection.",
                        )
                    },
                }
            },
            "/api/projections/{name}/dead-letters": {
                "get": {
                    "summary": "A projection's dead letters",
                    "parameters": [_NAME],
                    "responses": {
                        ok: _json(
                            {
                                "type": "object",
                                "properties": {
                                    "dead_letters": {"type": "array", "items": _ref("DeadLetter")}
                                },
                            },
                            "Its dead letters.",
                        ),
                        "404": _error("No such projection."),
                    },
                }
            },
            **{
                f"/api/projections/{{name}}/{action}": {
                    "post": {
                        "summary": summary,
                        "security": _WRITE,
                        "parameters": [_NAME],
                        "responses": {
                            ok: _json({"type": "object"}, "Done."),
                            **_WRITE_ERRORS,
                            "404": _error("No such projection."),
                            "409": _error("The projection is not in the application (--app)."),
                        },
                    }
                }
                for action, summary in (
                    ("rebuild", "Rebuild from the start of the log"),
                    ("reset", "Forget the read model and checkpoint"),
                )
            },
            **{
                f"/api/projections/{{name}}/dead-letters/{{position}}/{action}": {
                    "post": {
                        "summary": summary,
                        "security": _WRITE,
                        "parameters": [_NAME, _POSITION],
                        "responses": {
                            ok: _json({"type": "object"}, "Done."),
                            **_WRITE_ERRORS,
                            "404": _error("No such projection or dead letter."),
                            "409": _error("The projection is not in the application (--app)."),
                            "422": _error("The handler still fails; the letter stays."),
                        },
                    }
                }
                for action, summary in (
                    ("replay", "Handle the parked event again"),
                    ("skip", "Drop the dead letter"),
                )
            },
            "/api/subjects/{subject}/forget": {
                "post": {
                    "summary": "Forget a data subject: destroy its key (crypto-shredding)",
                    "description": "From then on the subject's personal data reads as redacted "
                    "everywhere; the rest of each event stays as it is. There is no undo. "
                    "Forgetting a subject that has no key is no error.",
                    "security": _WRITE,
                    "parameters": [_path("subject", "The data subject's id.", _SUBJECT)],
                    "responses": {
                        ok: _json(
                            {
                                "type": "object",
                                "required": ["forgotten"],
                                "properties": {"forgotten": {"type": "string"}},
                            },
                            "Forgotten.",
                        ),
                        "400": _error("Not a subject id."),
                        **_WRITE_ERRORS,
                        "409": _error("The store keeps no subjects' keys."),
                    },
                }
            },
            "/api/travel/{model}/{stream_id}": {
                "get": {
                    "summary": "A model's state at a version or a moment, and the change its event made",
                    "parameters": [
                        _path("model", "A model of the application (--app)."),
                        stream_id,
                        _query(
                            "version", "The version (default: the last).", {"type": "integer", "minimum": 0}
                        ),
                        _query("as_of", "A moment (ISO 8601).", {"type": "string", "format": "date-time"}),
                    ],
                    "responses": {
                        ok: _json(_ref("Travel"), "The state then."),
                        "400": _error("A query parameter is wrong."),
                        "404": _error("No such model or stream."),
                        "422": _error(
                            "The stream holds an event the model cannot apply, or is not of its category."
                        ),
                    },
                }
            },
        },
    }
