"""What each alert rule measures now (selectors): {subject: Reading} of every subject above its threshold.

A subject is a terminal's code for the per-terminal rules and "" for the whole hub. A rule measures
only the subjects over its threshold: a subject missing from the answer is fine now.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta

from django.conf import settings
from django.db.models import Max, Q

from messages.models import DeadLetter, Message
from messages.selectors import message_backlog_ages
from messages.selectors.triage import deadletter_exclude_held
from reconciliation.models import AlertKind, AlertRule
from reconciliation.selectors import discrepancy_open_count, run_latest_done
from syncadmin.selectors import last_sample_at
from terminals.models import Terminal
from terminals.store_hours import opened_at

HUB = ""  # the subject of a rule about the whole hub


@dataclass(frozen=True)
class Reading:
    value: float
    details: dict = field(default_factory=dict)


def _minutes(delta: timedelta) -> float:
    return round(delta.total_seconds() / 60, 2)


def backlog_overdue(rule: AlertRule, now: datetime) -> dict[str, Reading]:
    due = message_backlog_ages()["oldest_due_at"]
    overdue = 0.0 if due is None else _minutes(now - due)
    if overdue <= rule.threshold:
        return {}
    return {HUB: Reading(overdue, {"oldest_due_at": due.isoformat()})}


def dead_letter_rate(rule: AlertRule, now: datetime) -> dict[str, Reading]:
    last_minute = DeadLetter.objects.filter(dead_lettered_at__gt=now - timedelta(minutes=1), dead_lettered_at__lte=now)
    recent = deadletter_exclude_held(last_minute)  # a group on hold raises no alert
    count = recent.count()
    if count <= rule.threshold:
        return {}
    return {HUB: Reading(count, {"window_seconds": 60})}


def terminal_offline(rule: AlertRule, now: datetime) -> dict[str, Reading]:
    """Enabled terminals whose last heartbeat is older than the threshold. A terminal that never sent
    one is left out: it has not been installed yet, and a new batch of tills must not page anyone."""
    cutoff = now - timedelta(minutes=rule.threshold)
    rows = Terminal.objects.filter(enabled=True, last_heartbeat_at__lt=cutoff).values_list("code", "last_heartbeat_at")
    return {code: Reading(_minutes(now - at), {"last_heartbeat_at": at.isoformat()}) for code, at in rows}


def terminal_no_sales(rule: AlertRule, now: datetime) -> dict[str, Reading]:
    """Terminals that heartbeat (within TERMINAL_OFFLINE_SECONDS) and whose store has been open for more
    than the threshold, with no message of SYNC_ALERT_SALES_ENTITY received for that long."""
    window = timedelta(minutes=rule.threshold)
    alive = now - timedelta(seconds=settings.TERMINAL_OFFLINE_SECONDS)
    candidates = {}
    for terminal in Terminal.objects.filter(enabled=True, last_heartbeat_at__gte=alive).exclude(
        Q(time_zone="") | Q(opens_at=None) | Q(closes_at=None)
    ):
        since = opened_at(time_zone=terminal.time_zone, opens=terminal.opens_at, closes=terminal.closes_at, now=now)
        if since is not None and now - since > window:
            candidates[terminal.pk] = (terminal, since)
    if not candidates:
        return {}
    # The last sale of every candidate in one query (not one per quiet terminal): selling iff within the window.
    last_sales = dict(
        Message.objects.filter(terminal_id__in=list(candidates), entity_type=settings.SYNC_ALERT_SALES_ENTITY)
        .values("terminal_id")
        .annotate(last=Max("received_at"))
        .values_list("terminal_id", "last")
    )
    readings = {}
    for pk, (terminal, since) in candidates.items():
        last = last_sales.get(pk)
        if last is not None and last > now - window:
            continue
        quiet_since = max(since, last) if last else since
        readings[terminal.code] = Reading(
            _minutes(now - quiet_since),
            {"store": terminal.store, "time_zone": terminal.time_zone, "opened_at": since.isoformat(),
             "last_sale_at": last.isoformat() if last else None},
        )  # fmt: skip
    return readings


def reconciliation_drift(rule: AlertRule, now: datetime) -> dict[str, Reading]:
    count = discrepancy_open_count()
    if count <= rule.threshold:
        return {}
    run = run_latest_done()
    return {HUB: Reading(count, {"run": run.pk if run else None})}


def workers_gone(rule: AlertRule, now: datetime) -> dict[str, Reading]:
    """No worker has run the once-a-minute sample (the cluster's heartbeat, as /healthz reads it) for
    longer than the threshold. The workers cannot report their own absence: this rule is useful
    when evaluated outside them (``manage.py alerts_evaluate`` from a timer, docs/operations/alerts.md)."""
    at = last_sample_at()
    if at is None:
        return {}  # no worker has ever run here: a fresh demo, not an outage
    age = _minutes(now - at)
    if age <= rule.threshold:
        return {}
    return {HUB: Reading(age, {"last_sample_at": at.isoformat()})}


MEASURES = {
    AlertKind.BACKLOG_OVERDUE: backlog_overdue,
    AlertKind.DEAD_LETTER_RATE: dead_letter_rate,
    AlertKind.TERMINAL_OFFLINE: terminal_offline,
    AlertKind.TERMINAL_NO_SALES: terminal_no_sales,
    AlertKind.RECONCILIATION_DRIFT: reconciliation_drift,
    AlertKind.WORKERS_GONE: workers_gone,
}


def rule_measure(*, rule: AlertRule, now: datetime) -> dict[str, Reading]:
    return MEASURES[rule.kind](rule, now)
