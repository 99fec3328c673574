"""Start-up checks: refuse to run with settings that would break the delivery promises."""

from django.conf import settings
from django.core.checks import Error, Warning, register


@register()
def check_queue_settings(app_configs, **kwargs):
    errors = []
    q = settings.Q_CLUSTER
    timeout, retry = q.get("timeout"), q.get("retry")
    if timeout is None or retry is None or retry <= timeout:
        # django-q2 redelivers an unacknowledged task after `retry` seconds: if that is not
        # longer than `timeout`, a task still running legitimately would be run twice.
        errors.append(
            Error(
                f"Q_CLUSTER retry ({retry}) must be larger than timeout ({timeout}).",
                hint="Set Q_RETRY above Q_TIMEOUT.",
                id="syncadmin.E001",
            )
        )
    if settings.SYNC_DRAIN_SECONDS >= (timeout or 0):
        errors.append(
            Error(
                f"SYNC_DRAIN_SECONDS ({settings.SYNC_DRAIN_SECONDS}) must be below Q_TIMEOUT ({timeout}).",
                hint="A drain task must end before django-q2 kills it.",
                id="syncadmin.E002",
            )
        )
    for name in ("SYNC_WORKERS", "SYNC_MAX_ATTEMPTS", "SYNC_LEASE_SECONDS", "SYNC_MAX_BATCH", "SYNC_CLAIM_BATCH"):
        if getattr(settings, name) < 1:
            errors.append(Error(f"{name} must be at least 1.", id="syncadmin.E003"))
    return errors


@register(deploy=True)
def check_alert_settings(app_configs, **kwargs):
    """`check --deploy`: an alert webhook without a secret would take unsigned (forgeable) alerts."""
    if settings.SYNC_ALERT_WEBHOOK_URLS and not settings.SYNC_ALERT_WEBHOOK_SECRET:
        return [
            Warning(
                "SYNC_ALERT_WEBHOOK_URLS is set without SYNC_ALERT_WEBHOOK_SECRET: alert webhooks go out unsigned.",
                hint="Set SYNC_ALERT_WEBHOOK_SECRET to a long random string shared with the receiver.",
                id="syncadmin.W010",
            )
        ]
    return []
