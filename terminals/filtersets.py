from __future__ import annotations

import django_filters
from django.db.models import Q

from syncadmin.filtersets import ConsoleFilterSet
from terminals.models import Terminal


class TerminalFilterSet(ConsoleFilterSet):
    q = django_filters.CharFilter(method="search", label="Search")

    class Meta:
        model = Terminal
        fields: list[str] = []

    def search(self, queryset, name, value):
        value = value.strip()
        return queryset.filter(Q(code__icontains=value) | Q(name__icontains=value) | Q(store__icontains=value))
