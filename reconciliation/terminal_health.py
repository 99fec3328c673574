"""A terminal's health score (healthy / degraded / failing, with reasons), and its once-a-minute snapshot.

The score reads each terminal's heartbeat (terminals), its messages (messages) and its open
reconciliation discrepancies: this top core is the lowest floor that sees all three. The
snapshot it stores (terminals.TerminalHealthSnapshot) is what /metrics and the dashboard read.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from django.conf import settings
from django.db import transaction
from django.db.models import Count, OuterRef, Q, Subquery

from messages.models import Message, MessageState
from messages.selectors import message_counts_for_terminals
from reconciliation.selectors import discrepancy_open_count_by_terminal
from syncadmin.lib.clock import db_now
from terminals.models import HEALTH_LEVELS, Terminal, TerminalHealthSnapshot

S = MessageState


@dataclass
class TerminalHealth:
    terminal_id: int
    code: str
    level: str = "healthy"
    reasons: list[str] = field(default_factory=list)
    heartbeat_age: float | None = None
    backlog: int = 0  # Received + Failed
    backlog_age: float | None = None
    dead_letters: int = 0  # shown beside the score; not graded (the dead-letter alerts are)
    recent_messages: int = 0
    error_rate: float | None = None
    apply_stalled_for: float | None = None
    drift: int | None = None
    app_version: str = ""

    def flag(self, level: str, reason: str) -> None:
        self.reasons.append(reason)
        if HEALTH_LEVELS.index(level) > HEALTH_LEVELS.index(self.level):
            self.level = level


def _version_tuple(value: str) -> tuple[int, ...]:
    return tuple(int(n) for n in re.findall(r"\d+", value or ""))


def _grade(health: TerminalHealth, value: float | None, degraded: float, failing: float, reason: str) -> None:
    if value is None:
        return
    if value >= failing:
        health.flag("failing", reason)
    elif value >= degraded:
        health.flag("degraded", reason)


def terminal_health(*, terminal_ids=None, now: datetime | None = None) -> dict[int, TerminalHealth]:
    """Health (healthy/degraded/failing, with reasons) of every terminal, in four queries.

    Inputs: heartbeat age, backlog (Received+Failed) and its oldest message's age, the share
    of recently received messages that failed or needed a retry, how long the terminal's
    newest message has waited since its last successful apply, open reconciliation
    discrepancies and the client version. Thresholds are the SYNC_HEALTH_* settings.
    Cost grows with the number of terminals, the backlog and the messages received in the
    error window, never with the whole message table.
    """
    now = now or db_now()
    s = settings
    terminals = Terminal.objects.all()
    messages = Message.objects.all()
    if terminal_ids is not None:
        terminals = terminals.filter(pk__in=terminal_ids)
        messages = messages.filter(terminal_id__in=terminal_ids)
    # The newest message and the newest applied one: one index probe each per terminal.
    newest = Message.objects.filter(terminal=OuterRef("pk")).order_by("-received_at")
    last_ok = newest.filter(state=S.PROCESSED)
    rows = terminals.annotate(
        newest_state=Subquery(newest.values("state")[:1]),
        newest_received=Subquery(newest.values("received_at")[:1]),
        last_ok_at=Subquery(last_ok.values("processed_at")[:1]),
    ).values_list(
        "pk", "code", "enabled", "last_heartbeat_at", "app_version", "newest_state", "newest_received", "last_ok_at"
    )
    # The backlog, its age and the dead letters: the same one grouped read the terminal pages use.
    waiting = message_counts_for_terminals(terminal_ids=terminal_ids)
    window = now - timedelta(seconds=s.SYNC_HEALTH_ERROR_WINDOW_SECONDS)
    recent = {
        t: (total, errors)
        for t, total, errors in messages.filter(received_at__gte=window)
        .values_list("terminal_id")
        .annotate(
            total=Count("pk"),
            errors=Count("pk", filter=Q(state__in=[S.FAILED, S.DEAD_LETTERED]) | Q(attempts__gt=1)),
        )
        .order_by()
    }
    drift = dict(discrepancy_open_count_by_terminal())
    min_version = _version_tuple(s.SYNC_HEALTH_MIN_APP_VERSION)

    result: dict[int, TerminalHealth] = {}
    for pk, code, enabled, heartbeat, version, newest_state, newest_received, last_ok_at in rows:
        counts = waiting.get(pk, {"backlog": 0, "dead": 0, "oldest": None})
        h = TerminalHealth(terminal_id=pk, code=code, app_version=version, dead_letters=counts["dead"])
        if not enabled:
            h.reasons.append("disabled")
        elif heartbeat is None:
            h.flag("degraded", "no heartbeat yet")
        else:
            h.heartbeat_age = max((now - heartbeat).total_seconds(), 0.0)
            _grade(
                h,
                h.heartbeat_age,
                s.SYNC_HEALTH_HEARTBEAT_DEGRADED_SECONDS,
                s.SYNC_HEALTH_HEARTBEAT_FAILING_SECONDS,
                f"no heartbeat for {h.heartbeat_age:.0f}s",
            )
        if counts["backlog"]:
            h.backlog = counts["backlog"]
            h.backlog_age = max((now - counts["oldest"]).total_seconds(), 0.0)
            _grade(
                h,
                h.backlog_age,
                s.SYNC_HEALTH_BACKLOG_DEGRADED_SECONDS,
                s.SYNC_HEALTH_BACKLOG_FAILING_SECONDS,
                f"{h.backlog} message(s) waiting, oldest {h.backlog_age:.0f}s",
            )
        total, errors = recent.get(pk, (0, 0))
        h.recent_messages = total
        if total:
            h.error_rate = errors / total
            if total >= s.SYNC_HEALTH_ERROR_MIN_MESSAGES:
                _grade(
                    h,
                    h.error_rate,
                    s.SYNC_HEALTH_ERROR_RATE_DEGRADED,
                    s.SYNC_HEALTH_ERROR_RATE_FAILING,
                    f"{h.error_rate:.0%} of {total} recent message(s) failed or were retried",
                )
        if newest_state is not None and newest_state not in (S.PROCESSED, S.DISCARDED):
            # Its newest change has not landed: how long since anything from it was applied?
            since = last_ok_at or newest_received
            h.apply_stalled_for = max((now - since).total_seconds(), 0.0)
            _grade(
                h,
                h.apply_stalled_for,
                s.SYNC_HEALTH_APPLY_DEGRADED_SECONDS,
                s.SYNC_HEALTH_APPLY_FAILING_SECONDS,
                f"nothing applied for {h.apply_stalled_for:.0f}s",
            )
        if drift:
            h.drift = int(drift.get(pk, drift.get(code, 0)) or 0)
            _grade(
                h,
                h.drift,
                s.SYNC_HEALTH_DRIFT_DEGRADED,
                s.SYNC_HEALTH_DRIFT_FAILING,
                f"{h.drift} open reconciliation discrepanc{'y' if h.drift == 1 else 'ies'}",
            )
        if min_version and version and _version_tuple(version) < min_version:
            h.flag("degraded", f"client version {version} is older than {s.SYNC_HEALTH_MIN_APP_VERSION}")
        result[pk] = h
    return result


def terminal_health_snapshot_write(*, now=None) -> int:
    """Store every terminal's health score (replacing the previous snapshot); returns how many."""
    now = now or db_now()
    healths = terminal_health(now=now)
    with transaction.atomic():
        TerminalHealthSnapshot.objects.all().delete()
        TerminalHealthSnapshot.objects.bulk_create(
            [
                TerminalHealthSnapshot(terminal_id=pk, level=h.level, reasons=h.reasons, computed_at=now)
                for pk, h in healths.items()
            ],
            batch_size=1000,
        )
    return len(healths)
