"""Reads on terminals."""

from __future__ import annotations

from datetime import datetime, timedelta

from django.conf import settings
from django.db.models import Count, Q

from syncadmin.lib.clock import db_now
from terminals.models import HEALTH_LEVELS, Terminal, TerminalHealthSnapshot


def terminal_health_summary(*, healths: dict | None = None) -> dict[str, int]:
    """How many terminals are healthy / degraded / failing.

    From ``healths`` when given, else from the snapshot the once-a-minute sample stores (cheap:
    for the dashboard; the live score scans the messages of the error window).
    """
    counts = dict.fromkeys(HEALTH_LEVELS, 0)
    levels = (
        [h.level for h in healths.values()] if healths is not None else [lv for _, lv in terminal_health_snapshot()]
    )
    for level in levels:
        counts[level] = counts.get(level, 0) + 1
    return counts


def terminal_health_snapshot() -> list[tuple[str, str]]:
    """(terminal code, level) as of the last once-a-minute sample."""
    return list(TerminalHealthSnapshot.objects.order_by("terminal__code").values_list("terminal__code", "level"))


def terminal_status_counts(*, now: datetime | None = None) -> dict[str, int]:
    """Enabled terminals online (heartbeat within TERMINAL_OFFLINE_SECONDS) / offline, and disabled."""
    now = now or db_now()
    cutoff = now - timedelta(seconds=settings.TERMINAL_OFFLINE_SECONDS)
    return Terminal.objects.aggregate(
        online=Count("pk", filter=Q(enabled=True, last_heartbeat_at__gte=cutoff)),
        offline=Count("pk", filter=Q(enabled=True) & (Q(last_heartbeat_at__lt=cutoff) | Q(last_heartbeat_at=None))),
        disabled=Count("pk", filter=Q(enabled=False)),
    )


def terminal_offline_count(*, now: datetime) -> int:
    """Enabled terminals without a heartbeat within TERMINAL_OFFLINE_SECONDS (or never)."""
    threshold = now - timedelta(seconds=settings.TERMINAL_OFFLINE_SECONDS)
    return (
        Terminal.objects.filter(enabled=True)
        .filter(Q(last_heartbeat_at__lt=threshold) | Q(last_heartbeat_at__isnull=True))
        .count()
    )


# --- console reads -----------------------------------------------------------------------------


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


def terminal_codes() -> list[str]:
    """Every terminal's code, in order (the message list's terminal filter)."""
    return list(Terminal.objects.order_by("code").values_list("code", flat=True))
