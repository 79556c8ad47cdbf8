"""The ``cursor`` query parameter of every keyset-paged list (``store/keyset.py``)."""

from api.errors import FieldInvalid
from store import keyset


def cursor_key(cursor: str | None, *kinds: type) -> keyset.Key | None:
    """The sort key a ``next_cursor`` carried, or a 422 naming ``cursor``; None (or empty) for the first page."""
    if not cursor:
        return None
    try:
        return keyset.decode(cursor, *kinds)
    except keyset.MalformedCursor as exc:
        raise FieldInvalid("cursor", "malformed cursor: pass back next_cursor unchanged", location="query") from exc
