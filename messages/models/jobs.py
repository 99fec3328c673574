"""Background work an operator starts or the schedule runs: bulk jobs over many messages, retention purges."""

from django.db import models

# Background bulk jobs (messages/services/bulk.py).


class BulkJobState(models.TextChoices):
    PENDING = "Pending"
    RUNNING = "Running"
    PAUSED = "Paused"  # by an operator: no task runs it until it is resumed (or cancelled)
    DONE = "Done"
    CANCELLED = "Cancelled"
    FAILED = "Failed"


# The highest throttle a job takes (messages per second): above it, throttling means nothing.
BULK_RATE_MAX = 10_000


class BulkJob(models.Model):
    """A console retry/discard/restore over many messages, run by a worker in chunks.

    ``params`` holds what it runs on (the filter query string and the filters in words), so the
    job can be resumed from ``last_id`` and audited with the filter once it ends.
    """

    class Action(models.TextChoices):
        RETRY = "retry"
        DISCARD = "discard"
        RESTORE = "restore"

    action = models.CharField(max_length=16, choices=Action.choices)
    params = models.JSONField(default=dict)
    state = models.CharField(max_length=16, choices=BulkJobState.choices, default=BulkJobState.PENDING)
    total = models.IntegerField(null=True)  # counted by the worker when the job starts
    done = models.IntegerField(default=0)  # candidates examined so far
    changed = models.IntegerField(default=0)  # of those, how many the action changed
    max_id = models.BigIntegerField(null=True)  # the selection is frozen at start: ids up to this
    last_id = models.BigIntegerField(default=0)  # keyset cursor: every id up to it is done
    cancel_requested = models.BooleanField(default=False)
    cancelled_by = models.CharField(max_length=150, blank=True)
    # Throttle: at most this many messages per second (None: as fast as the workers go).
    rate = models.PositiveIntegerField(null=True, blank=True)
    # Paused by an operator: who, since when, why; and the paused time of earlier pauses, which
    # the progress leaves out of the job's rate (db_default: rows written by the code before it).
    paused_at = models.DateTimeField(null=True, blank=True)
    paused_by = models.CharField(max_length=150, blank=True, default="", db_default="")
    pause_reason = models.TextField(blank=True, default="", db_default="")
    paused_seconds = models.FloatField(default=0.0, db_default=0.0)
    # The token of the task allowed to run the job: a redelivered or stale task holds another one.
    runner = models.CharField(max_length=64, blank=True)
    actor = models.CharField(max_length=150)
    reason = models.TextField(blank=True)
    error = models.TextField(blank=True)
    created_at = models.DateTimeField()
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    heartbeat_at = models.DateTimeField(null=True, blank=True)  # last chunk committed

    class Meta:
        indexes = [models.Index(fields=["state", "created_at"], name="bulkjob_state_idx")]

    @property
    def finished(self) -> bool:
        return self.state in (BulkJobState.DONE, BulkJobState.CANCELLED, BulkJobState.FAILED)


class BulkJobItem(models.Model):
    """One message of a job's frozen selection, written once when the job starts (INSERT ... SELECT).

    Chunks read the selection from here by (job, message_id), so a chunk costs the same whatever
    the filter was (an error-text search, a dead-letter group): the filter runs once, not per chunk.
    A chunk deletes its own items in its transaction, so the table only holds work still to do.
    """

    job = models.ForeignKey(BulkJob, on_delete=models.CASCADE, related_name="items", db_index=False)
    message_id = models.BigIntegerField()

    class Meta:
        indexes = [models.Index(fields=["job", "message_id"], name="bulkjobitem_job_msg_idx")]


# Retention (messages/services/retention.py).


class PurgeRun(models.Model):
    """One run of the retention purge: when, how long, and how many rows it removed per table."""

    started_at = models.DateTimeField(db_index=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    duration_ms = models.FloatField(null=True)
    messages_removed = models.IntegerField(default=0)
    events_removed = models.IntegerField(default=0)
    deadletters_removed = models.IntegerField(default=0)
    batches = models.IntegerField(default=0)
    # True when the run stopped at its time budget with more to purge (a follow-up run was queued).
    more = models.BooleanField(default=False)
    trigger = models.CharField(max_length=32, default="schedule")
    error = models.TextField(blank=True)
    cutoff = models.DateTimeField(null=True)
    deadletter_cutoff = models.DateTimeField(null=True)

    class Meta:
        ordering = ["-started_at", "-pk"]
