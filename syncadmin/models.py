"""The ground's own tables: the audit log, the metrics' counters and samples, API tokens and idempotency records.

They reference no app (only Django's user model)."""

from django.conf import settings
from django.db import models


class AuditEntry(models.Model):
    """One operator action: who did what to which object(s), when and why."""

    at = models.DateTimeField(auto_now_add=True, db_index=True)
    actor = models.CharField(max_length=150, db_index=True)
    action = models.CharField(max_length=64, db_index=True)  # e.g. message.retry, terminal.rotate_key
    object_type = models.CharField(max_length=64, blank=True)
    object_id = models.CharField(max_length=255, blank=True)
    count = models.IntegerField(default=1)  # how many objects the action changed
    reason = models.TextField(blank=True)
    detail = models.JSONField(default=dict, blank=True)  # e.g. the filter a bulk action ran on

    class Meta:
        ordering = ["-at", "-pk"]
        verbose_name_plural = "audit entries"


class MetricSample(models.Model):
    """A once-a-minute snapshot of the queue for the dashboard's history chart (bounded retention)."""

    at = models.DateTimeField(unique=True)
    backlog = models.IntegerField()  # Received + Failed
    oldest_backlog_seconds = models.FloatField(null=True)
    processed_last_minute = models.IntegerField()
    failed_last_minute = models.IntegerField(default=0)
    dead_lettered_total = models.IntegerField(default=0)

    class Meta:
        ordering = ["at"]


class MetricCounter(models.Model):
    """Cluster-wide counters for /metrics, written by whichever process did the work.

    Writers append delta rows (base=False) inside the transaction of the change they count,
    so a rolled-back change is never counted and no row is a hot spot that workers queue on.
    The once-a-minute sample task folds the deltas into one base row per series. A scrape
    sums the table grouped by series: it stays small (one row per series plus about a minute
    of deltas) whatever the size of the message table. See the README, "Observability".
    """

    name = models.CharField(max_length=64)
    labels = models.CharField(max_length=255, blank=True)  # canonical JSON object, sorted keys
    value = models.FloatField()
    base = models.BooleanField(default=False)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["name", "labels"], condition=models.Q(base=True), name="metric_counter_base_uniq"
            )
        ]


# --- the automation API (/api/v1/, syncadmin/api/) ---------------------------------------------------


class ApiToken(models.Model):
    """A user's token for the automation API: shown once, stored as a SHA-256 (syncadmin/lib/tokens.py).

    A call made with it acts as its user, with that user's permissions (the console's roles).
    """

    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="api_tokens")
    name = models.CharField(max_length=100)  # what it is for ("runbook", "monitoring"): the list shows it
    token_hash = models.CharField(max_length=64, unique=True)
    prefix = models.CharField(max_length=12)  # the token's first characters, to tell tokens apart in a list
    created_at = models.DateTimeField()
    expires_at = models.DateTimeField(null=True, blank=True)  # None: until revoked
    # Written at most once a minute (syncadmin.services.API_TOKEN_USED_REFRESH_SECONDS), not on every call.
    last_used_at = models.DateTimeField(null=True, blank=True)
    revoked_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at", "-pk"]


class IdempotencyRecord(models.Model):
    """The first answer to a state-changing API call sent with an ``Idempotency-Key``, kept until it expires.

    A retry with the same key (same user) gets this answer and changes nothing; the same key with
    another request (its fingerprint: method, path, body) is refused.
    """

    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="+")
    key = models.CharField(max_length=255)
    fingerprint = models.CharField(max_length=64)  # SHA-256 of method, path and body
    status = models.IntegerField()
    body = models.TextField()
    created_at = models.DateTimeField()
    expires_at = models.DateTimeField(db_index=True)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["user", "key"], name="idempotency_user_key_uniq")]


class ApiCallWindow(models.Model):
    """The calls one API caller (a token, or a console user) made in one fixed window of SYNC_API_RATE.

    Counted in the database, not in a cache: every gunicorn worker and every web node sees the same
    count (a per-process cache lets N workers take N times the rate). Old windows are purged hourly.
    """

    caller = models.CharField(max_length=64)  # "token:<pk>" or "user:<pk>"
    window_start = models.DateTimeField()
    calls = models.IntegerField(default=0)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["caller", "window_start"], name="api_call_window_uniq")]
