"""Reads on terminals for the console."""

from __future__ import annotations

from datetime import datetime, timedelta

from django.conf import settings
from django.db.models import Max, Q

from terminals.models import Terminal


def terminal_online_threshold(*, now: datetime) -> datetime:
    return now - timedelta(seconds=settings.TERMINAL_OFFLINE_SECONDS)


def terminal_list_queryset(*, status: str = "", now: datetime):
    qs = Terminal.objects.all().order_by("code")
    threshold = terminal_online_threshold(now=now)
    if status == "online":
        qs = qs.filter(last_heartbeat_at__gte=threshold)
    elif status == "offline":
        qs = qs.filter(Q(last_heartbeat_at__lt=threshold) | Q(last_heartbeat_at__isnull=True), enabled=True)
    elif status == "disabled":
        qs = qs.filter(enabled=False)
    return qs


def terminal_latest_reported_counts(*, terminal: Terminal) -> list:
    """The newest ReportedCount per entity type this terminal reported."""
    from reconciliation.models import ReportedCount

    latest = (
        ReportedCount.objects.filter(terminal=terminal).values("entity_type").annotate(as_of=Max("as_of")).order_by()
    )
    wanted = Q()
    for row in latest:
        wanted |= Q(entity_type=row["entity_type"], as_of=row["as_of"])
    if not latest:
        return []
    rows = ReportedCount.objects.filter(terminal=terminal).filter(wanted).order_by("entity_type", "-received_at")
    seen, out = set(), []
    for r in rows:
        if r.entity_type not in seen:
            seen.add(r.entity_type)
            out.append(r)
    return out
