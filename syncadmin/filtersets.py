from __future__ import annotations

import django_filters

from syncadmin.models import AuditEntry


class AuditEntryFilterSet(django_filters.FilterSet):
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
