"""Reads for the console as a whole: the dashboard's figures, metric history, the audit log."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from django.conf import settings
from django.db.models import Q, Sum

from messages.selectors import deadletter_open_count, message_backlog, message_state_counts_fast, message_throughput
from messages.services import db_now
from syncadmin.models import AuditEntry, DeadLetterGroupNote, MetricSample
from terminals.models import Terminal
from terminals.selectors import terminal_health_summary


def metric_samples(*, since: datetime, limit: int = 1440) -> list[MetricSample]:
    """The once-a-minute samples since ``since``, oldest first (at most ``limit``)."""
    return list(MetricSample.objects.filter(at__gte=since).order_by("-at")[:limit])[::-1]


def terminal_offline_count(*, now: datetime) -> int:
    """Enabled terminals without a heartbeat within TERMINAL_OFFLINE_SECONDS (or never)."""
    threshold = now - timedelta(seconds=settings.TERMINAL_OFFLINE_SECONDS)
    return (
        Terminal.objects.filter(enabled=True)
        .filter(Q(last_heartbeat_at__lt=threshold) | Q(last_heartbeat_at__isnull=True))
        .count()
    )


def discrepancy_open_count() -> int | None:
    """Open reconciliation discrepancies, or None while the reconciliation app does not offer it."""
    try:
        from reconciliation.selectors import discrepancy_open_count as count
    except ImportError:
        return None
    return count()


@dataclass
class Dashboard:
    now: datetime
    states: dict[str, int]
    estimated_states: set[str]
    backlog: int
    oldest_backlog_at: datetime | None
    oldest_backlog_seconds: float | None
    throughput_hour: int
    throughput_source: str  # "samples" | "live"
    failed_hour: int | None
    dead_letters_open: int
    terminals_total: int
    terminals_offline: int
    discrepancies_open: int | None
    terminal_health: dict[str, int]  # healthy / degraded / failing, from the minute snapshot


def dashboard_summary() -> Dashboard:
    """Everything the dashboard shows at a glance, in a handful of indexed queries."""
    now = db_now()
    states, estimated = message_state_counts_fast()
    backlog = message_backlog()
    hour_ago = now - timedelta(hours=1)
    # The sampler already counted each minute's throughput: summing 60 samples is far cheaper
    # than counting processed rows on a large table. Without samples, count live.
    sampled = MetricSample.objects.filter(at__gt=hour_ago).aggregate(
        processed=Sum("processed_last_minute"), failed=Sum("failed_last_minute")
    )
    if sampled["processed"] is not None:
        throughput, source, failed = sampled["processed"], "samples", sampled["failed"]
    else:
        throughput, source, failed = message_throughput(since=hour_ago), "live", None
    oldest = backlog["oldest_received_at"]
    return Dashboard(
        now=now,
        states=states,
        estimated_states=estimated,
        backlog=backlog["count"],
        oldest_backlog_at=oldest,
        oldest_backlog_seconds=(now - oldest).total_seconds() if oldest else None,
        throughput_hour=throughput,
        throughput_source=source,
        failed_hour=failed,
        dead_letters_open=deadletter_open_count(),
        terminals_total=Terminal.objects.count(),
        terminals_offline=terminal_offline_count(now=now),
        discrepancies_open=discrepancy_open_count(),
        terminal_health=terminal_health_summary(),
    )


def audit_entry_queryset():
    return AuditEntry.objects.all()


def deadletter_group_notes(*, grouping: str) -> dict[str, DeadLetterGroupNote]:
    return {n.key: n for n in DeadLetterGroupNote.objects.filter(grouping=grouping)}
