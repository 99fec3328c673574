"""Filters of the audit log page."""

from __future__ import annotations

import django_filters

from syncadmin.lib.filtersets import ConsoleFilterSet
from syncadmin.models import AuditEntry


class AuditEntryFilterSet(ConsoleFilterSet):
    actor = django_filters.CharFilter(lookup_expr="icontains")
    action = django_filters.CharFilter(lookup_expr="startswith", label="Action")
    object_id = django_filters.CharFilter(label="Object")
    reason = django_filters.CharFilter(lookup_expr="icontains", label="Reason contains")
    at = django_filters.DateFromToRangeFilter(
        label="When", widget=django_filters.widgets.DateRangeWidget(attrs={"type": "date"})
    )

    class Meta:
        model = AuditEntry
        fields: list[str] = []
