"""The base of every console filterset: a value the database would refuse is a form error, never a 500."""

from __future__ import annotations

import django_filters
from django.db.models import QuerySet

from syncadmin.lib.validation import database_refuses


class _StorableValuesForm:
    """Mixed into a filterset's form: a cleaned value the database would refuse is that field's error."""

    def clean(self):
        data = super().clean()
        for name, value in list(data.items()):
            why = database_refuses(value)
            if why:
                self.add_error(name, f"the value {why}.")
        return data


class ConsoleFilterSet(django_filters.FilterSet):
    """The base of every console filterset.

    Django's form fields already refuse most bad input (NUL in text, unknown choices, impossible
    dates); this adds the database's own limits for every field (out-of-range numbers, dates
    that cannot be expressed in UTC), so a filter type added later is covered too. ``selected``
    and ``notice`` give views one way to answer an invalid filter: no rows and a notice saying
    why, never every row (a silently ignored filter) and never a query that fails.
    """

    def get_form_class(self):
        form_class = super().get_form_class()
        return type(form_class.__name__, (_StorableValuesForm, form_class), {})

    @property
    def selected(self) -> QuerySet:
        """The rows the filters select: none at all when one of them is not valid."""
        if self.is_bound and not self.is_valid():
            return self.queryset.none()
        return self.qs

    @property
    def notice(self) -> str:
        """What is wrong with the filters, for the console's notice line ("" when nothing is)."""
        if not self.is_bound or self.is_valid():
            return ""
        return "Some filters are not valid: " + "; ".join(f"{k}: {' '.join(v)}" for k, v in self.errors.items())
