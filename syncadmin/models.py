"""The ground's own tables: the audit log and the metrics' counters and samples. They reference no app."""

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
