"""What console input must be before it reaches the database: one set of rules for every page.

A value from a query string or a form is checked here, at the recipe level (the filterset base,
the keyset cursor decoder, the bulk form), not in each view: a value the database would refuse
(PostgreSQL rejects NUL in text; SQLite binds 64-bit integers only; an aware datetime must be
representable in UTC) becomes a form error or a console notice, never a 500.
"""

from __future__ import annotations

import math
import re
from datetime import UTC, date, datetime
from decimal import Decimal

from django import forms
from django.conf import settings

# Every id in this project is a BigAutoField: 1 .. 2**63-1. Anything else cannot name a row.
ID_MAX = 2**63 - 1
INT64_MIN, INT64_MAX = -(2**63), 2**63 - 1
# ASCII digits only: str.isdigit() is also true for "²", "①" or "٣" (and int() takes some of them).
_ASCII_ID = re.compile(r"[0-9]{1,19}")


def parse_id(text) -> int | None:
    """``text`` as a row id (ASCII digits, 1 .. 2**63-1), else None."""
    if not isinstance(text, str) or not _ASCII_ID.fullmatch(text):
        return None
    value = int(text)
    return value if 1 <= value <= ID_MAX else None


def database_refuses(value) -> str:
    """Why the database would refuse ``value`` as a query parameter ("" when it takes it).

    Containers (lists, tuples, the ``slice`` a django-filter range gives) are checked item by item.
    """
    if value is None or isinstance(value, bool):
        return ""
    if isinstance(value, str):
        return "contains a NUL character" if "\x00" in value else ""
    if isinstance(value, int):
        return "" if INT64_MIN <= value <= INT64_MAX else "is out of range"
    if isinstance(value, float | Decimal):
        if not math.isfinite(value):
            return "is not a finite number"
        return "" if INT64_MIN <= value <= INT64_MAX else "is out of range"
    if isinstance(value, datetime):
        if value.tzinfo is None or value.utcoffset() is None:
            return "has no time zone" if settings.USE_TZ else ""
        try:
            value.astimezone(UTC)  # what both backends do before binding it
        except OverflowError:
            return "is out of range"
        return ""
    if isinstance(value, date):
        return ""
    if isinstance(value, slice):
        return database_refuses((value.start, value.stop))
    if isinstance(value, list | tuple | set | frozenset):
        return next((why for why in map(database_refuses, value) if why), "")
    return ""


class IdListField(forms.Field):
    """Repeated ``name=<id>`` values as a list of ids; any value that cannot be an id is an error."""

    widget = forms.MultipleHiddenInput
    default_error_messages = {"invalid": "Not a valid id: %(values)s."}

    def to_python(self, value) -> list[int]:
        if value in self.empty_values:
            return []
        if not isinstance(value, list | tuple):
            value = [value]
        ids = [parse_id(v) for v in value]
        bad = [v for v, pk in zip(value, ids, strict=True) if pk is None]
        if bad:
            shown = ", ".join(repr(str(v)[:24]) for v in bad[:3]) + (" …" if len(bad) > 3 else "")
            raise forms.ValidationError(self.error_messages["invalid"], code="invalid", params={"values": shown})
        return ids
