"""The dashboard's figures: a read of every app's core, in a handful of indexed queries (an interface)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from django.db.models import Sum

from messages.selectors import deadletter_open_count, message_backlog, message_state_counts_fast, message_throughput
from messages.selectors.pauses import PauseRow, queue_pauses
from reconciliation.alerts.selectors import incidents_open
from reconciliation.models import Incident
from reconciliation.selectors import discrepancy_open_count
from syncadmin.lib.clock import db_now
from syncadmin.models import MetricSample
from terminals.models import Terminal
from terminals.selectors import terminal_health_summary, terminal_offline_count


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
    pauses: list[PauseRow]  # what is paused, by whom, since when, why
    incidents_open: int = 0
    incidents: list[Incident] | None = None  # the newest open ones


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
    open_count, incidents = incidents_open(limit=5)
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
        pauses=queue_pauses(),
        incidents_open=open_count,
        incidents=incidents,
    )
