"""Opening and clearing incidents, each change a compare-and-set with its outbox rows in one transaction.

``alerts_evaluate`` runs every rule once (the once-a-minute schedule, or ``manage.py alerts_evaluate``).
Per (rule, subject) an incident goes pending -> open -> cleared:

- the condition holds: a pending incident is created (the unique partial constraint lets only one
  evaluator do it); once it has held ``for_minutes`` it opens, and the "opened" notifications are
  written with that change. With for_minutes 0 it opens at once.
- the condition is gone: a pending incident is dropped (nobody was told); an open one notes since
  when it is fine (``ok_since``) and clears once that has lasted ``for_minutes``, writing the
  "cleared" notifications. A condition back before then resets ``ok_since``: no new incident.

So one notification per incident and channel when it opens and one when it clears, however the
value flaps. A disabled rule's incidents clear at its next evaluation.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from django.conf import settings
from django.db import IntegrityError, transaction
from django_q.tasks import async_task

from reconciliation.alerts.measures import Reading, rule_measure
from reconciliation.models import (
    ACTIVE_INCIDENT_STATES,
    AlertNotification,
    AlertRule,
    Incident,
    IncidentState,
    NotificationChannel,
    NotificationState,
)
from syncadmin.lib.clock import db_now
from syncadmin.services import audit_record

log = logging.getLogger(__name__)

DELIVER_TASK = "reconciliation.tasks.alert_notification_deliver"


@dataclass
class Evaluation:
    opened: list[Incident] = field(default_factory=list)
    cleared: list[Incident] = field(default_factory=list)


def alerts_evaluate(*, now: datetime | None = None) -> Evaluation:
    """Evaluate every rule once; returns the incidents it opened and cleared."""
    now = now or db_now()
    result = Evaluation()
    for rule in AlertRule.objects.all():
        try:
            readings = rule_measure(rule=rule, now=now) if rule.enabled else {}
        except Exception:  # one failing measure must not keep the other rules from being evaluated
            log.exception("alert rule %s could not be measured", rule.kind)
            continue
        rule_apply(rule=rule, readings=readings, now=now, result=result, force_clear=not rule.enabled)
    return result


def rule_apply(*, rule: AlertRule, readings: dict[str, Reading], now: datetime, result: Evaluation,
               force_clear: bool = False) -> None:  # fmt: skip
    active = {i.subject: i for i in Incident.objects.filter(rule=rule, state__in=ACTIVE_INCIDENT_STATES)}
    hold = timedelta(minutes=rule.for_minutes)
    for subject, reading in readings.items():
        incident = active.get(subject)
        if incident is None:
            incident = _pending_create(rule=rule, subject=subject, reading=reading, now=now)
            if incident is None:
                continue
        else:
            Incident.objects.filter(pk=incident.pk, state=incident.state).update(
                value=reading.value, threshold=rule.threshold, details=reading.details, ok_since=None, updated_at=now
            )
        if incident.state == IncidentState.PENDING and now - incident.first_seen_at >= hold:
            if _incident_open(incident=incident, reading=reading, now=now):
                result.opened.append(incident)
    for subject, incident in active.items():
        if subject in readings:
            continue
        if incident.state == IncidentState.PENDING:
            Incident.objects.filter(pk=incident.pk, state=IncidentState.PENDING).delete()
            continue
        ok_since = incident.ok_since or now
        if incident.ok_since is None:
            Incident.objects.filter(pk=incident.pk, state=IncidentState.OPEN).update(ok_since=now, updated_at=now)
        if force_clear or now - ok_since >= hold:
            if _incident_clear(incident=incident, now=now):
                result.cleared.append(incident)


def _pending_create(*, rule, subject: str, reading: Reading, now: datetime) -> Incident | None:
    try:
        with transaction.atomic():
            return Incident.objects.create(
                rule=rule, subject=subject, state=IncidentState.PENDING, first_seen_at=now,
                value=reading.value, threshold=rule.threshold, details=reading.details, updated_at=now,
            )  # fmt: skip
    except IntegrityError:  # another evaluator created it a moment ago: it is theirs to open
        return None


def _incident_open(*, incident: Incident, reading: Reading, now: datetime) -> bool:
    with transaction.atomic():
        changed = Incident.objects.filter(pk=incident.pk, state=IncidentState.PENDING).update(
            state=IncidentState.OPEN, opened_at=now, value=reading.value, details=reading.details, updated_at=now
        )
        if changed:
            _outbox_write(incident_id=incident.pk, event="opened", now=now)
    if changed:
        incident.refresh_from_db()
        log.warning("alert opened: %s %s value=%s", incident.rule.kind, incident.subject, incident.value)
    return bool(changed)


def _incident_clear(*, incident: Incident, now: datetime) -> bool:
    with transaction.atomic():
        changed = Incident.objects.filter(pk=incident.pk, state=IncidentState.OPEN).update(
            state=IncidentState.CLEARED, cleared_at=now, updated_at=now
        )
        if changed:
            _outbox_write(incident_id=incident.pk, event="cleared", now=now)
    if changed:
        incident.refresh_from_db()
        log.warning("alert cleared: %s %s", incident.rule.kind, incident.subject)
    return bool(changed)


def _outbox_write(*, incident_id: int, event: str, now: datetime) -> None:
    """One notification per channel and target, in the caller's transaction; delivered after it commits."""
    targets = [(NotificationChannel.WEBHOOK, url) for url in settings.SYNC_ALERT_WEBHOOK_URLS]
    if settings.SYNC_ALERT_EMAILS:
        targets.append((NotificationChannel.EMAIL, ",".join(settings.SYNC_ALERT_EMAILS)[:500]))
    for channel, target in targets:
        notification = AlertNotification.objects.create(
            incident_id=incident_id, event=event, channel=channel, target=target[:500],
            next_attempt_at=now, created_at=now,
        )  # fmt: skip
        transaction.on_commit(lambda pk=notification.pk: async_task(DELIVER_TASK, pk, group="alerts"))


def alert_rule_update(*, rule: AlertRule, enabled: bool, threshold: float, for_minutes: int, actor: str,
                      reason: str = "") -> AlertRule:  # fmt: skip
    """An admin's change of a rule from the console. Audited (before and after)."""
    before = {"enabled": rule.enabled, "threshold": rule.threshold, "for_minutes": rule.for_minutes}
    after = {"enabled": enabled, "threshold": threshold, "for_minutes": for_minutes}
    with transaction.atomic():
        rule.enabled, rule.threshold, rule.for_minutes, rule.updated_by = enabled, threshold, for_minutes, actor[:150]
        rule.save(update_fields=["enabled", "threshold", "for_minutes", "updated_by", "updated_at"])
        audit_record(
            actor=actor, action="alert_rule.edit", object_type="alert_rule", object_id=rule.kind, reason=reason,
            detail={"before": before, "after": after},
        )  # fmt: skip
    return rule


def alert_notification_resend(*, notification_id: int, actor: str, now: datetime | None = None) -> bool:
    """Send a failed notification again (an operator fixed the receiver or the mail server): it becomes
    pending with its attempts reset and is delivered after commit, retried as before. Compare-and-set
    on Failed, so a double click or two operators resend it once. Audited. False if it was not failed."""
    now = now or db_now()
    with transaction.atomic():
        changed = AlertNotification.objects.filter(pk=notification_id, state=NotificationState.FAILED).update(
            state=NotificationState.PENDING, attempts=0, next_attempt_at=now
        )
        if changed:
            audit_record(
                actor=actor, action="alert_notification.resend", object_type="alert_notification",
                object_id=str(notification_id),
            )  # fmt: skip
            transaction.on_commit(lambda: async_task(DELIVER_TASK, notification_id, group="alerts"))
    return bool(changed)
