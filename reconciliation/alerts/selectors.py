"""The console's reads of alerts: incidents (live first), the outbox and the rules."""

from __future__ import annotations

from django.db.models import Case, Count, IntegerField, Value, When

from reconciliation.models import AlertKind, AlertNotification, AlertRule, Incident, IncidentState, NotificationState


def incident_list_queryset():
    """Every incident, open first, then pending, then cleared; newest first within each."""
    rank = Case(
        When(state=IncidentState.OPEN, then=Value(0)),
        When(state=IncidentState.PENDING, then=Value(1)),
        default=Value(2),
        output_field=IntegerField(),
    )
    return Incident.objects.select_related("rule").annotate(rank=rank).order_by("rank", "-first_seen_at", "-pk")


def incidents_open(*, limit: int = 10) -> tuple[int, list[Incident]]:
    """How many incidents are open, and the newest ``limit`` of them (the dashboard)."""
    qs = Incident.objects.select_related("rule").filter(state=IncidentState.OPEN).order_by("-opened_at", "-pk")
    return qs.count(), list(qs[:limit])


def notification_list_queryset():
    """The outbox, failed first (they need someone), then pending, then sent; newest first."""
    rank = Case(
        When(state=NotificationState.FAILED, then=Value(0)),
        When(state=NotificationState.PENDING, then=Value(1)),
        default=Value(2),
        output_field=IntegerField(),
    )
    return (
        AlertNotification.objects.select_related("incident__rule")
        .annotate(rank=rank)
        .order_by("rank", "-created_at", "-pk")
    )


def notification_failed_count() -> int:
    return AlertNotification.objects.filter(state=NotificationState.FAILED).count()


def alert_rules() -> list[AlertRule]:
    return list(AlertRule.objects.order_by("kind"))


def incidents_open_by_rule() -> dict[str, int]:
    """Open incidents per rule kind, every kind present (0 when quiet): /metrics' alert gauge, one small query."""
    counts = dict.fromkeys(AlertKind.values, 0)
    rows = Incident.objects.filter(state=IncidentState.OPEN).values_list("rule__kind").annotate(n=Count("pk"))
    counts.update(rows.order_by())
    return counts
