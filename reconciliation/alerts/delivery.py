"""Delivering the outbox: a signed JSON webhook or an e-mail, retried with exponential backoff.

A delivery first takes its row by compare-and-set (``attempts`` n -> n+1, with the next attempt's
time already set), so two workers given the same notification send it once; a worker that dies
mid-send leaves the row due again at that time, found by the minute's ``notifications_due_deliver``.
After SYNC_ALERT_MAX_ATTEMPTS failures a notification is marked failed (the alerts page shows it).

The webhook's body is signed: ``X-SyncAdmin-Signature: sha256=<hex HMAC-SHA256 of "<timestamp>.<body>">``
with SYNC_ALERT_WEBHOOK_SECRET, and ``X-SyncAdmin-Timestamp: <unix seconds>``; docs/operations/alerts.md
shows a receiver's check.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
from datetime import datetime, timedelta

import requests
from django.conf import settings
from django.core.mail import send_mail
from django.db.models import F
from django.urls import reverse

from reconciliation.models import AlertNotification, Incident, NotificationChannel, NotificationState
from syncadmin.lib.clock import db_now

log = logging.getLogger(__name__)

SIGNATURE_HEADER = "X-SyncAdmin-Signature"
TIMESTAMP_HEADER = "X-SyncAdmin-Timestamp"
BACKOFF_MAX_SECONDS = 3600.0


def retry_delay(attempt: int) -> timedelta:
    """Wait after the ``attempt``-th failed delivery: base * 2^(attempt-1) seconds, at most an hour."""
    return timedelta(seconds=min(settings.SYNC_ALERT_RETRY_BASE_SECONDS * 2 ** (attempt - 1), BACKOFF_MAX_SECONDS))


def signature(*, secret: str, timestamp: str, body: bytes) -> str:
    """The X-SyncAdmin-Signature value of ``body`` sent at ``timestamp``."""
    digest = hmac.new(secret.encode(), timestamp.encode() + b"." + body, hashlib.sha256).hexdigest()
    return f"sha256={digest}"


def notification_payload(*, incident: Incident, event: str) -> dict:
    """The webhook's JSON (and the e-mail's facts): ISO 8601 times with their offset."""
    rule = incident.rule

    def iso(value: datetime | None) -> str | None:
        return value.isoformat() if value else None

    return {
        "incident": incident.pk,
        "rule": rule.kind,
        "rule_name": rule.get_kind_display(),
        "subject": incident.subject,
        "state": event,
        "value": incident.value,
        "threshold": incident.threshold,
        "unit": rule.unit,
        "opened_at": iso(incident.opened_at),
        "cleared_at": iso(incident.cleared_at),
        "details": incident.details,
        "console_url": f"{settings.SYNC_ALERT_CONSOLE_URL}{reverse('alerts:list')}#incident-{incident.pk}",
    }


def _send_webhook(notification: AlertNotification, payload: dict) -> None:
    body = json.dumps(payload, sort_keys=True).encode()
    timestamp = str(int(db_now().timestamp()))
    headers = {"Content-Type": "application/json", TIMESTAMP_HEADER: timestamp, "User-Agent": "SyncAdmin-alerts"}
    if settings.SYNC_ALERT_WEBHOOK_SECRET:
        headers[SIGNATURE_HEADER] = signature(secret=settings.SYNC_ALERT_WEBHOOK_SECRET, timestamp=timestamp, body=body)
    response = requests.post(
        notification.target, data=body, headers=headers, timeout=settings.SYNC_ALERT_WEBHOOK_TIMEOUT_SECONDS,
        allow_redirects=False,
    )  # fmt: skip
    if not 200 <= response.status_code < 300:
        raise RuntimeError(f"HTTP {response.status_code} from the webhook")


def _send_email(notification: AlertNotification, payload: dict) -> None:
    word = "OPENED" if payload["state"] == "opened" else "cleared"
    subject = f"[SyncAdmin] {word}: {payload['rule_name']}" + (f" {payload['subject']}" if payload["subject"] else "")
    lines = [
        f"{payload['rule_name']} {payload['subject']}".strip() + f" is {payload['state']}.",
        f"Value: {payload['value']:g} {payload['unit']} (threshold {payload['threshold']:g}).",
        f"Opened at: {payload['opened_at']}",
    ]
    if payload["cleared_at"]:
        lines.append(f"Cleared at: {payload['cleared_at']}")
    lines += ["", f"Console: {payload['console_url']}", "", json.dumps(payload["details"], indent=2, sort_keys=True)]
    send_mail(subject, "\n".join(lines), None, notification.target.split(","), fail_silently=False)


SENDERS = {NotificationChannel.WEBHOOK: _send_webhook, NotificationChannel.EMAIL: _send_email}


def notification_deliver(*, notification_id: int, now: datetime | None = None) -> str:
    """Try to deliver one notification if it is due; returns its state afterwards ("" if not due or gone)."""
    now = now or db_now()
    notification = (
        AlertNotification.objects.select_related("incident__rule")
        .filter(pk=notification_id, state=NotificationState.PENDING, next_attempt_at__lte=now)
        .first()
    )
    if notification is None:
        return ""
    attempt = notification.attempts + 1
    taken = AlertNotification.objects.filter(
        pk=notification.pk, state=NotificationState.PENDING, attempts=notification.attempts
    ).update(attempts=F("attempts") + 1, next_attempt_at=now + retry_delay(attempt))
    if not taken:  # another worker has it
        return ""
    try:
        SENDERS[notification.channel](notification, notification_payload(incident=notification.incident,
                                                                          event=notification.event))  # fmt: skip
    except Exception as exc:  # any failure (refused, timeout, bad status, SMTP) is retried
        error = f"{type(exc).__name__}: {exc}"[:2000]
        state = NotificationState.FAILED if attempt >= settings.SYNC_ALERT_MAX_ATTEMPTS else NotificationState.PENDING
        AlertNotification.objects.filter(pk=notification.pk).update(state=state, last_error=error)
        log.warning("alert notification %s (%s) attempt %s failed: %s", notification.pk, notification.channel,
                    attempt, error)  # fmt: skip
        return state
    AlertNotification.objects.filter(pk=notification.pk).update(
        state=NotificationState.SENT, sent_at=db_now(), last_error=""
    )
    return NotificationState.SENT


def notifications_due_deliver(*, now: datetime | None = None, limit: int = 100) -> int:
    """Deliver every due notification (retries, and any whose task was lost); returns how many were sent."""
    now = now or db_now()
    due = list(
        AlertNotification.objects.filter(state=NotificationState.PENDING, next_attempt_at__lte=now)
        .order_by("next_attempt_at")
        .values_list("pk", flat=True)[:limit]
    )
    return sum(notification_deliver(notification_id=pk, now=now) == NotificationState.SENT for pk in due)
