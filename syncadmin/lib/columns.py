"""Table columns and cell text shared by every console table (django-tables2)."""

from __future__ import annotations

import django_tables2 as tables
from django.utils import timezone


def stamp(value) -> str:
    """Local time as text. Used instead of DateTimeColumn, which compiles a template per cell."""
    return timezone.localtime(value).strftime("%Y-%m-%d %H:%M:%S") if value else "—"


class StampColumn(tables.Column):
    """A datetime column shown as ``stamp`` text."""

    def render(self, value):
        return stamp(value)
