"""Health and counts: what the dashboard shows (syncadmin/dashboard.py), as JSON."""

# No `from __future__ import annotations`: ninja reads the endpoints' annotations through the
# idempotency wrapper, whose module cannot resolve these names from text.
from datetime import datetime

from ninja import Router, Schema

from messages.models import VIEW_PERM
from syncadmin.api.auth import require
from syncadmin.api.problems import COMMON
from syncadmin.dashboard import dashboard_summary
from terminals.selectors import terminal_status_counts

router = Router(tags=["health"])


class HealthOut(Schema):
    now: datetime
    states: dict[str, int]
    estimated_states: list[str]
    backlog: int
    oldest_backlog_at: datetime | None
    oldest_backlog_seconds: float | None
    throughput_hour: int
    throughput_source: str
    failed_hour: int | None
    dead_letters_open: int
    terminals_total: int
    terminals_online: int
    terminals_offline: int
    terminals_disabled: int
    discrepancies_open: int | None
    terminal_health: dict[str, int]


@router.get("", response={200: HealthOut, **COMMON}, summary="Backlog, states, terminals offline (the dashboard)")
def health(request):
    require(request, VIEW_PERM)
    d = dashboard_summary()
    status = terminal_status_counts(now=d.now)
    return HealthOut(
        now=d.now, states=d.states, estimated_states=sorted(d.estimated_states), backlog=d.backlog,
        oldest_backlog_at=d.oldest_backlog_at, oldest_backlog_seconds=d.oldest_backlog_seconds,
        throughput_hour=d.throughput_hour, throughput_source=d.throughput_source, failed_hour=d.failed_hour,
        dead_letters_open=d.dead_letters_open, terminals_total=d.terminals_total, terminals_online=status["online"],
        terminals_offline=d.terminals_offline, terminals_disabled=status["disabled"],
        discrepancies_open=d.discrepancies_open, terminal_health=d.terminal_health,
    )  # fmt: skip
