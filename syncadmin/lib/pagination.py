"""Keyset ("cursor") pagination for the console's large tables.

OFFSET pagination reads and throws away every row before the page and needs a COUNT(*) to
number the pages: both grow with the table. A keyset page instead starts just after the last
row the operator saw, ``WHERE (sort, id) < (value, id) ORDER BY sort DESC, id DESC LIMIT n+1``,
which costs the same on page 1 and on page 20,000. There is no total: the table says whether
there is more, and the URL (with its cursor) is shareable like any other.
"""

from __future__ import annotations

import base64
import binascii
import json
from dataclasses import dataclass, field
from datetime import datetime

from django.core.exceptions import ValidationError
from django.db.models import IntegerField, Q, QuerySet

from syncadmin.lib.validation import ID_MAX, database_refuses


@dataclass
class KeysetPage:
    rows: list
    sort: str  # the sort in force, e.g. "-received_at"
    next_cursor: str | None = None  # "older" for a descending sort
    prev_cursor: str | None = None
    is_first: bool = True
    notice: str = ""  # e.g. a cursor that could not be read
    per_page: int = 50
    sortable: list[str] = field(default_factory=list)

    @property
    def has_other_pages(self) -> bool:
        return bool(self.next_cursor or self.prev_cursor)


NOT_VALID = "that page link is not valid any more; showing the first page"
# Far above any cursor _encode writes (a 128-character key, JSON-escaped, in base64), and a bound
# on what a hostile link makes the decoder parse.
CURSOR_MAX_CHARS = 4096


def _encode(value, pk) -> str:
    if isinstance(value, datetime):
        value = value.isoformat()
    raw = json.dumps([value, pk], separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def _decode(cursor: str, model_field):
    """(value, pk) from a cursor, or ValueError: only a cursor ``_encode`` could have written passes.

    The value must have the JSON type ``_encode`` writes for the field (an integer for integer
    fields, a string otherwise), the pk must be a possible id, and the field's value must be one
    the database accepts (no NUL in text, a 64-bit integer, a datetime with its zone): anything
    else would be a query error (a 500) or a silently wrong page.
    """
    if len(cursor) > CURSOR_MAX_CHARS:
        raise ValueError(NOT_VALID)
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        decoded = json.loads(raw)
    except (ValueError, binascii.Error, RecursionError) as exc:
        raise ValueError(NOT_VALID) from exc
    if not (isinstance(decoded, list) and len(decoded) == 2):
        raise ValueError(NOT_VALID)
    value, pk = decoded
    if type(pk) is not int or not 1 <= pk <= ID_MAX:
        raise ValueError(NOT_VALID)
    if type(value) is not (int if isinstance(model_field, IntegerField) else str):
        raise ValueError(NOT_VALID)
    try:
        value = model_field.to_python(value)
    except (ValueError, TypeError, OverflowError, ValidationError) as exc:
        raise ValueError(NOT_VALID) from exc
    if value is None or database_refuses(value):
        raise ValueError(NOT_VALID)
    return value, pk


def keyset_page(
    queryset: QuerySet,
    *,
    sort: str | None,
    allowed: dict[str, str],
    default: str,
    per_page: int,
    after: str | None = None,
    before: str | None = None,
) -> KeysetPage:
    """One page of ``queryset`` ordered by ``sort`` (a key of ``allowed``, "-" for descending) then pk.

    ``allowed`` maps the public sort names to model fields; those fields must be NOT NULL.
    ``after`` is the cursor of the last row of the previous page, ``before`` the first row of the next.
    """
    notices = []
    if sort and sort.removeprefix("-") not in allowed:
        notices.append("that column cannot be sorted on; showing the default order")
    sort = sort if sort and sort.removeprefix("-") in allowed else default
    desc = sort.startswith("-")
    field_name = allowed[sort.removeprefix("-")]
    model_field = queryset.model._meta.get_field(field_name)
    page = KeysetPage(rows=[], sort=sort, per_page=per_page, sortable=list(allowed))

    backwards = False
    qs = queryset
    try:
        if after:
            value, pk = _decode(after, model_field)
            qs = _beyond(qs, field_name, value, pk, forward=not desc)
        elif before:
            value, pk = _decode(before, model_field)
            qs = _beyond(qs, field_name, value, pk, forward=desc)
            backwards = True
    except ValueError as exc:
        notices.append(str(exc))
        qs, after, before = queryset, None, None
    page.notice = "; ".join(notices)

    ascending = desc == backwards  # descending sort read backwards is an ascending read
    order = [field_name, "pk"] if ascending else [f"-{field_name}", "-pk"]
    rows = list(qs.order_by(*order)[: per_page + 1])
    more = len(rows) > per_page
    rows = rows[:per_page]
    if backwards:
        rows.reverse()
    page.rows = rows
    if rows:
        first, last = rows[0], rows[-1]
        if backwards:
            page.next_cursor = _encode(getattr(last, field_name), last.pk)
            page.prev_cursor = _encode(getattr(first, field_name), first.pk) if more else None
        else:
            page.next_cursor = _encode(getattr(last, field_name), last.pk) if more else None
            page.prev_cursor = _encode(getattr(first, field_name), first.pk) if after else None
    page.is_first = page.prev_cursor is None
    return page


def _beyond(qs: QuerySet, field_name: str, value, pk: int, *, forward: bool) -> QuerySet:
    """Rows strictly after (value, pk) in ascending order when ``forward``, else strictly before.

    Written as ``field >= v AND NOT (field = v AND pk <= p)`` rather than an OR so the database
    can use the plain index on ``field`` as a range and only filter the ties.
    """
    if forward:
        return qs.filter(**{f"{field_name}__gte": value}).exclude(Q(**{field_name: value}) & Q(pk__lte=pk))
    return qs.filter(**{f"{field_name}__lte": value}).exclude(Q(**{field_name: value}) & Q(pk__gte=pk))
