"""Queries by type and tag, and append conditions: the values of Dynamic Consistency
Boundaries (dcb.events). No I/O; every backend that reads by query
(:class:`chronik.store.DCBStore`) matches with :meth:`Query.matches`.

A :class:`Query` is a list of :class:`QueryItem` OR'd together; an item matches an
event whose type is one of its types (any type when it names none) and that has
all of its tags. ``Query.all()`` (no items) matches every event.

An :class:`AppendCondition` makes an append a decision: it fails with
:class:`chronik.errors.AppendConditionFailedError` when an event matching
``fail_if_events_match`` was stored after the position ``after`` (with no ``after``:
when any matching event exists), so no fact the decision was made on has changed.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Iterator
from typing import Any, Final

from chronik.errors import InvalidEventError, InvalidQueryError, InvalidTagError
from chronik.events import RecordedEvent, validate_tags

__all__ = ["AppendCondition", "Query", "QueryItem", "ReadResult", "lock_keys"]

_MAX_TYPE_LENGTH: Final = 200


def _types(types: object) -> tuple[str, ...]:
    if isinstance(types, (str, bytes)) or not isinstance(types, Iterable):
        raise InvalidQueryError(f"types must be a list of event type names, got {types!r}")
    result = tuple(sorted(set(types)))
    for name in result:
        if not isinstance(name, str) or not name or len(name) > _MAX_TYPE_LENGTH or not name.isprintable():
            raise InvalidQueryError(f"not an event type name: {name!r}")
    return result


class QueryItem:
    """Events of any of ``types`` (any type when empty) that have every one of ``tags``.

    An item needs types or tags: to match every event, use ``Query.all()``.
    """

    __slots__ = ("tags", "types")

    types: tuple[str, ...]
    tags: tuple[str, ...]

    def __init__(self, types: Collection[str] = (), tags: Collection[str] = ()) -> None:
        self.types = _types(types)
        try:
            self.tags = validate_tags(tags)
        except InvalidTagError as err:
            raise InvalidQueryError(f"query item tags: {err}") from err
        if not self.types and not self.tags:
            raise InvalidQueryError("a query item needs types or tags; Query.all() matches every event")

    def matches(self, type: str, tags: Collection[str]) -> bool:
        """Whether an event of ``type`` with ``tags`` matches this item."""
        return (not self.types or type in self.types) and all(tag in tags for tag in self.tags)

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, QueryItem):
            return NotImplemented
        return self.types == other.types and self.tags == other.tags

    def __hash__(self) -> int:
        return hash((self.types, self.tags))

    def __repr__(self) -> str:
        parts = []
        if self.types:
            parts.append(f"types={list(self.types)!r}")
        if self.tags:
            parts.append(f"tags={list(self.tags)!r}")
        return f"QueryItem({', '.join(parts)})"


class Query:
    """Items OR'd together: ``Query(QueryItem(types=[...], tags=[...]), ...)``.

    ``Query.all()`` has no items and matches every event.
    """

    __slots__ = ("items",)

    items: tuple[QueryItem, ...]

    def __init__(self, *items: QueryItem) -> None:
        for item in items:
            if not isinstance(item, QueryItem):
                raise InvalidQueryError(
                    f"a Query takes QueryItem values, got {type(item).__name__}: {item!r}"
                )
        # Repeats change nothing; dropping them keeps statements and lock sets small.
        self.items = tuple(dict.fromkeys(items))

    @classmethod
    def all(cls) -> Query:
        """The query that matches every event."""
        return cls()

    @classmethod
    def of(cls, *, types: Collection[str] = (), tags: Collection[str] = ()) -> Query:
        """A query of one item (``Query.of(types=[...], tags=[...])``)."""
        return cls(QueryItem(types, tags))

    @property
    def matches_all(self) -> bool:
        return not self.items

    def matches(self, type: str, tags: Collection[str]) -> bool:
        """Whether an event of ``type`` with ``tags`` matches some item (any, for ``all()``)."""
        return not self.items or any(item.matches(type, tags) for item in self.items)

    def matches_event(self, event: RecordedEvent) -> bool:
        return self.matches(event.type, event.tags)

    def __or__(self, other: Query) -> Query:
        if not isinstance(other, Query):
            return NotImplemented
        if self.matches_all or other.matches_all:
            return Query.all()
        return Query(*self.items, *other.items)

    def __iter__(self) -> Iterator[QueryItem]:
        return iter(self.items)

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Query):
            return NotImplemented
        return set(self.items) == set(other.items)

    def __hash__(self) -> int:
        return hash(frozenset(self.items))

    def __repr__(self) -> str:
        if not self.items:
            return "Query.all()"
        return f"Query({', '.join(map(repr, self.items))})"


class AppendCondition:
    """Fail the append if an event matching ``fail_if_events_match`` is stored after
    position ``after`` (or at all, when ``after`` is None)."""

    __slots__ = ("after", "fail_if_events_match")

    fail_if_events_match: Query
    after: int | None

    def __init__(self, fail_if_events_match: Query, after: int | None = None) -> None:
        if not isinstance(fail_if_events_match, Query):
            raise InvalidQueryError(
                f"fail_if_events_match must be a Query, got {type(fail_if_events_match).__name__}"
            )
        if after is not None and (isinstance(after, bool) or not isinstance(after, int) or after < 0):
            raise InvalidQueryError(f"after must be a position (an int >= 0) or None, got {after!r}")
        self.fail_if_events_match = fail_if_events_match
        self.after = after

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, AppendCondition):
            return NotImplemented
        return (self.fail_if_events_match, self.after) == (other.fail_if_events_match, other.after)

    def __hash__(self) -> int:
        return hash((self.fail_if_events_match, self.after))

    def __repr__(self) -> str:
        return f"AppendCondition(fail_if_events_match={self.fail_if_events_match!r}, after={self.after!r})"


class ReadResult:
    """What a read by query returns: the matching ``events`` (with their positions) and
    ``head``, the position to pass as ``AppendCondition(after=...)`` for a decision
    made on them (None when the store was empty).

    ``head`` is the last position of the store the read saw, or, when ``limit`` cut
    a forward read short, the position of its last event.
    """

    __slots__ = ("events", "head")

    def __init__(self, events: list[RecordedEvent], head: int | None) -> None:
        self.events = events
        self.head = head

    def __iter__(self) -> Iterator[RecordedEvent]:
        return iter(self.events)

    def __len__(self) -> int:
        return len(self.events)

    def __repr__(self) -> str:
        return f"ReadResult({len(self.events)} events, head={self.head})"


def read_head(
    head: int | None, last: int | None, count: int, limit: int | None, backwards: bool
) -> int | None:
    """The head a read by query reports: the store's head, or the position of the last
    event read (``last``) when a forward read stopped at ``limit`` events, since what
    comes after it was not read. Every store answers with this one rule."""
    if limit is not None and not backwards and count and count == limit:
        return last
    return head


def check_read(query: object, after: object, limit: object) -> tuple[Query, int, int | None]:
    """Validate a read's arguments: the query, ``after`` as an int (0: from the start), the limit."""
    if not isinstance(query, Query):
        raise InvalidQueryError(f"read_query takes a Query, got {type(query).__name__}: {query!r}")
    if after is None:
        start = 0
    elif isinstance(after, bool) or not isinstance(after, int) or after < 0:
        raise InvalidQueryError(f"after must be a position (an int >= 0) or None, got {after!r}")
    else:
        start = after
    if limit is not None and (isinstance(limit, bool) or not isinstance(limit, int) or limit < 0):
        raise InvalidQueryError(f"limit must be an int >= 0 or None, got {limit!r}")
    return query, start, limit


def check_condition(condition: object) -> AppendCondition | None:
    if condition is not None and not isinstance(condition, AppendCondition):
        raise InvalidQueryError(
            f"condition must be an AppendCondition or None, got {type(condition).__name__}"
        )
    return condition


def check_events(events: object) -> list[Any]:
    if isinstance(events, (str, bytes)) or not isinstance(events, Iterable):
        raise InvalidEventError(f"append_if takes a list of events, got {type(events).__name__}")
    return list(events)


# -- lock keys (stores that lock by key instead of globally: PostgreSQL) -------------------
#
# An event of type t with tags T is covered by the keys (t, *), (t, a) and (*, a) for
# every a in T, and (*, *). A query item (types S, tags A) needs just one key that every
# event it matches is covered by: (t, min A) for each t in S, or (*, min A) without
# types, or (t, *) without tags; Query.all() needs (*, *). So a writer that holds its
# events' keys and a decision that holds its condition's keys always share a key when
# an event of the writer matches the condition.

_ANY: Final = "\x1e"  # no type or tag can be this: both are printable


def event_keys(type: str, tags: Iterable[str]) -> set[tuple[str, str]]:
    """The keys an event of ``type`` with ``tags`` is covered by."""
    keys = {(_ANY, _ANY), (type, _ANY)}
    for tag in tags:
        keys.add((type, tag))
        keys.add((_ANY, tag))
    return keys


def query_keys(query: Query) -> set[tuple[str, str]]:
    """The keys a decision on ``query`` holds, one shared with every event it matches."""
    if query.matches_all:
        return {(_ANY, _ANY)}
    keys: set[tuple[str, str]] = set()
    for item in query.items:
        tag = item.tags[0] if item.tags else _ANY
        for type in item.types or (_ANY,):
            keys.add((type, tag))
    return keys


def lock_keys(keys: Iterable[tuple[str, str]]) -> list[str]:
    """Keys as the text a store hashes for its lock, sorted (locks taken in one order
    by every writer cannot deadlock)."""
    return sorted(f"{type}\x1f{tag}" for type, tag in keys)
