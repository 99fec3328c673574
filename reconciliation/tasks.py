"""django-q2 tasks for reconciliation: thin wrappers around the services."""

from __future__ import annotations

import logging

from reconciliation import services
from reconciliation.alerts import delivery, incidents
from reconciliation.models import RunTrigger

log = logging.getLogger(__name__)


def execute(run_id: int) -> int:
    """Execute a run queued from the console."""
    run = services.run_execute(run_id=run_id)
    return run.pk


def scheduled() -> int:
    """The periodic run (RECONCILIATION_INTERVAL_MINUTES), plus housekeeping of old runs."""
    run = services.run_now(trigger=RunTrigger.SCHEDULE, triggered_by="schedule")
    services.run_housekeeping()  # after the run, so the run it just made is the one kept
    for line in services.summary_lines(run):
        log.info("reconciliation %s", line)
    return run.pk


def alerts_evaluate() -> dict:
    """Every minute: evaluate the alert rules, then deliver the notifications due for a (re)try."""
    result = incidents.alerts_evaluate()
    sent = delivery.notifications_due_deliver()
    return {"opened": len(result.opened), "cleared": len(result.cleared), "sent": sent}


def alert_notification_deliver(notification_id: int) -> str:
    """Deliver one notification, enqueued on commit of the change that wrote it."""
    return delivery.notification_deliver(notification_id=notification_id)
