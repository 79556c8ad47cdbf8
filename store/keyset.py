"""Keyset pagination, one way for every list (tickets, people, the inbox, the ledger, the audit log).

A page is the rows after the last one shown, in the list's order; the cursor is that last row's
sort key — ``(created_at, id)``, or just ``id`` — as base64url JSON without padding. Rows added
meanwhile never shift a page. Callers: ``decode`` the cursor they were given, filter with
``after`` (or ``before`` for newest-first lists), fetch ``limit + 1`` rows and let ``page`` cut
them and name the next cursor.
"""

import base64
import binascii
import json
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from typing import Any, TypeVar

import sqlalchemy as sa

T = TypeVar("T")
Key = tuple[Any, ...]

MAX_ID = 2**63 - 1  # a BIGINT: larger ids in a cursor are malformed, not a driver error


class MalformedCursor(ValueError):
    """The cursor was not one this module wrote (the API answers 422)."""


def encode(*key: str | int | datetime) -> str:
    values = [v.isoformat() if isinstance(v, datetime) else v for v in key]
    return base64.urlsafe_b64encode(json.dumps(values).encode()).decode().rstrip("=")


def decode(cursor: str, *kinds: type) -> Key:
    """The sort key in ``cursor``, one value per kind (``datetime``, ``int`` or ``str``)."""
    try:
        raw = base64.b64decode(cursor + "=" * (-len(cursor) % 4), altchars=b"-_", validate=True)
        values = json.loads(raw)
    except (binascii.Error, UnicodeDecodeError, ValueError) as exc:
        raise MalformedCursor(cursor) from exc
    if not isinstance(values, list) or len(values) != len(kinds):
        raise MalformedCursor(cursor)
    return tuple(_value(v, kind, cursor) for v, kind in zip(values, kinds, strict=True))


def _value(value: Any, kind: type, cursor: str) -> Any:
    if kind is datetime and isinstance(value, str):
        try:
            moment = datetime.fromisoformat(value)
            # This module wrote zone-aware times that exist in UTC; anything else was forged.
            if moment.tzinfo is None:
                raise ValueError("no time zone")
            return moment.astimezone(UTC)
        except (ValueError, OverflowError) as exc:
            raise MalformedCursor(cursor) from exc
    if kind is int and type(value) is int and 0 <= value <= MAX_ID:
        return value
    if kind is str and isinstance(value, str) and value:
        return value
    raise MalformedCursor(cursor)


def before(columns: Sequence[Any], key: Key) -> Any:
    """Rows after ``key`` in descending order of ``columns`` (newest first)."""
    return _beyond(columns, key, lambda c, v: c < v)


def after(columns: Sequence[Any], key: Key) -> Any:
    """Rows after ``key`` in ascending order of ``columns``."""
    return _beyond(columns, key, lambda c, v: c > v)


def _beyond(columns: Sequence[Any], key: Key, past: Callable[[Any, Any], Any]) -> Any:
    """``c1 ≷ v1 OR (c1 = v1 AND c2 ≷ v2) OR …``: a row-value comparison both backends index."""
    (column, value), rest = (columns[0], key[0]), (columns[1:], key[1:])
    if not rest[0]:
        return past(column, value)
    return sa.or_(past(column, value), sa.and_(column == value, _beyond(rest[0], rest[1], past)))


def page(rows: Sequence[T], limit: int, key: Callable[[T], Key]) -> tuple[list[T], str | None]:
    """The first ``limit`` of ``limit + 1`` rows fetched, and the cursor of the next page (None: last)."""
    shown = list(rows[:limit])
    return shown, encode(*key(shown[-1])) if len(rows) > limit and shown else None
