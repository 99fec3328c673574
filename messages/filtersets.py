"""Filters of the message list (django-filter). Each one is meant to hit an index at 1M+ rows."""

from __future__ import annotations

import django_filters
from django import forms
from django.http import QueryDict

from messages.models import DeadLetter, Message, MessageState, SavedView
from messages.selectors import message_list_queryset
from syncadmin.filtersets import ConsoleFilterSet
from syncadmin.lib.validation import parse_id
from terminals.models import Terminal


class MessageFilterSet(ConsoleFilterSet):
    q = django_filters.CharFilter(method="filter_message_id", label="Message id")
    state = django_filters.ChoiceFilter(choices=MessageState.choices, empty_label="Any state")
    terminal = django_filters.ModelChoiceFilter(
        queryset=Terminal.objects.only("pk", "code"), to_field_name="code", empty_label="Any terminal"
    )
    message_type = django_filters.CharFilter(label="Type")
    entity_type = django_filters.CharFilter(label="Entity type")
    entity_key = django_filters.CharFilter(label="Entity key")
    received = django_filters.DateFromToRangeFilter(
        field_name="received_at",
        label="Received",
        widget=django_filters.widgets.DateRangeWidget(attrs={"type": "date"}),
    )
    error = django_filters.CharFilter(field_name="last_error", lookup_expr="icontains", label="Error contains")
    # Drill-in from the dead-letter page: the open dead letters of one failure-reason group.
    group = django_filters.CharFilter(method="filter_group", label="Dead-letter group", widget=forms.HiddenInput)

    class Meta:
        model = Message
        fields: list[str] = []

    def filter_message_id(self, queryset, name, value):
        value = value.strip()
        # A bare number may be the hub's own id (as shown in URLs) as well as the terminal's id.
        # The unique index is (terminal, message_id): naming the (few) terminals lets the
        # database probe it once per terminal instead of scanning the table.
        by_terminal_id = queryset.filter(terminal_id__in=Terminal.objects.values("pk"), message_id=value)
        pk = parse_id(value)  # ASCII digits within the id range only: "²" or "①" is a terminal's id at most
        if pk is not None:
            return queryset.filter(pk__in=by_terminal_id.values("pk")) | queryset.filter(pk=pk)
        return by_terminal_id

    def filter_group(self, queryset, name, value):
        return queryset.filter(pk__in=DeadLetter.objects.filter(resolution="", group_key=value).values("message_id"))

    @property
    def active(self) -> dict[str, str]:
        """The filters in force, for the bulk-action confirmation and the audit entry."""
        if not self.is_bound:
            return {}
        return {k: v for k, v in self.data.items() if k in self.filters and v not in ("", None)}


def message_filterset(data) -> MessageFilterSet:
    """The message list's filters bound to ``data`` (a QueryDict), over the list's base queryset."""
    return MessageFilterSet(data, queryset=message_list_queryset())


def message_filter_queryset(query: str):
    """The messages the message list's filters in ``query`` (a query string) select.

    What a bulk action or a background bulk job on "all messages matching the filter" runs on
    (messages/services/bulk.py); ValueError, saying why, when a filter is not valid.
    """
    fs = MessageFilterSet(QueryDict(query), queryset=Message.objects.all())
    if not fs.is_valid():
        raise ValueError(fs.errors.as_text())
    return fs.qs


class SavedViewFilterSet(ConsoleFilterSet):
    name = django_filters.CharFilter(lookup_expr="icontains", label="Name contains")
    shared = django_filters.ChoiceFilter(
        choices=[("false", "mine"), ("true", "the team's")], method="filter_shared", empty_label="Mine and the team's"
    )

    class Meta:
        model = SavedView
        fields: list[str] = []

    def filter_shared(self, queryset, name, value):
        return queryset.filter(shared=value == "true")
