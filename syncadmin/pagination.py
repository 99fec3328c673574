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
from django.db.models import Q, QuerySet


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


def _encode(value, pk) -> str:
    if isinstance(value, datetime):
        value = value.isoformat()
    raw = json.dumps([value, pk], separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def _decode(cursor: str, model_field):
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        value, pk = json.loads(raw)
        return model_field.to_python(value), int(pk)
    except (ValueError, TypeError, binascii.Error, ValidationError) as exc:
        raise ValueError("that page link is not valid any more; showing the first page") from exc


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
    sort = sort if sort and sort.lstrip("-") in allowed else default
    desc = sort.startswith("-")
    field_name = allowed[sort.lstrip("-")]
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
        page.notice = str(exc)
        qs, after, before = queryset, None, None

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
