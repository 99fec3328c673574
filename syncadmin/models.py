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


class DeadLetterGroupNote(models.Model):
    """An operator's note on one group of dead letters, kept across the group's comings and goings.

    Keyed by how the console groups them (failure reason, terminal or entity type) and the
    group's key, so a note written on "ValueError: price #" is shown the next time it recurs.
    """

    grouping = models.CharField(max_length=16)  # reason | terminal | entity
    key = models.CharField(max_length=255)
    note = models.TextField(blank=True)
    updated_by = models.CharField(max_length=150, blank=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["grouping", "key"], name="deadletter_group_note_uniq")]
