"""django-filter filtersets for the reconciliation console."""

import django_filters

from reconciliation.models import (
    AlertKind,
    AlertNotification,
    Discrepancy,
    DiscrepancyKind,
    Incident,
    IncidentState,
    NotificationChannel,
    NotificationState,
    ReconciliationRun,
    RunStatus,
    RunTrigger,
)
from syncadmin.filtersets import ConsoleFilterSet


class DiscrepancyFilterSet(ConsoleFilterSet):
    terminal = django_filters.CharFilter(field_name="terminal_code", lookup_expr="istartswith", label="Terminal")
    entity_type = django_filters.CharFilter(field_name="entity_type", lookup_expr="exact", label="Entity type")
    kind = django_filters.MultipleChoiceFilter(choices=DiscrepancyKind.choices)
    explained = django_filters.BooleanFilter(field_name="explained_at", lookup_expr="isnull", exclude=True)

    class Meta:
        model = Discrepancy
        fields = ["terminal", "entity_type", "kind", "explained"]


class ReconciliationRunFilterSet(ConsoleFilterSet):
    status = django_filters.ChoiceFilter(choices=RunStatus.choices)
    trigger = django_filters.ChoiceFilter(choices=RunTrigger.choices)

    class Meta:
        model = ReconciliationRun
        fields = ["status", "trigger"]


class IncidentFilterSet(ConsoleFilterSet):
    state = django_filters.ChoiceFilter(choices=IncidentState.choices)
    rule = django_filters.ChoiceFilter(field_name="rule__kind", choices=AlertKind.choices, label="Rule")
    subject = django_filters.CharFilter(lookup_expr="istartswith", label="Terminal")

    class Meta:
        model = Incident
        fields: list[str] = []


class AlertNotificationFilterSet(ConsoleFilterSet):
    state = django_filters.ChoiceFilter(choices=NotificationState.choices)
    channel = django_filters.ChoiceFilter(choices=NotificationChannel.choices)

    class Meta:
        model = AlertNotification
        fields: list[str] = []
