"""The message queue's tables and its state machine: states, legal moves, and what each operator action may touch."""

import re

from django.db import models
from django.db.models import Q


class MessageState(models.TextChoices):
    RECEIVED = "Received"
    PROCESSING = "Processing"
    PROCESSED = "Processed"
    FAILED = "Failed"  # will be retried after its backoff
    DEAD_LETTERED = "DeadLettered"
    DISCARDED = "Discarded"


# The only legal moves. Everything else raises IllegalTransition (see services.transition).
TRANSITIONS: dict[str, set[str]] = {
    MessageState.RECEIVED: {MessageState.PROCESSING, MessageState.DISCARDED},
    # Processing -> Processing is a re-claim of an expired lease (its worker died).
    MessageState.PROCESSING: {
        MessageState.PROCESSING,
        MessageState.PROCESSED,
        MessageState.FAILED,
        MessageState.DEAD_LETTERED,
    },
    MessageState.FAILED: {
        MessageState.PROCESSING,
        MessageState.RECEIVED,
        MessageState.DEAD_LETTERED,
        MessageState.DISCARDED,
    },
    MessageState.DEAD_LETTERED: {MessageState.RECEIVED, MessageState.DISCARDED},
    MessageState.DISCARDED: {MessageState.RECEIVED},
    MessageState.PROCESSED: set(),
}

PENDING_STATES = (MessageState.RECEIVED, MessageState.FAILED)

# What each operator action (one message, a selection, a background bulk job) moves, and the
# permission it takes. A message in any other state is left alone by that action.
RETRYABLE_STATES = (MessageState.FAILED, MessageState.DEAD_LETTERED)
DISCARDABLE_STATES = (MessageState.RECEIVED, MessageState.FAILED, MessageState.DEAD_LETTERED)
RESTORABLE_STATES = (MessageState.DISCARDED,)
ACTION_STATES = {"retry": RETRYABLE_STATES, "discard": DISCARDABLE_STATES, "restore": RESTORABLE_STATES}
VIEW_PERM = "queue_messages.view_message"  # every console page of the queue
ACTION_PERMS = {
    "retry": "queue_messages.retry_message",
    "discard": "queue_messages.discard_message",
    "restore": "queue_messages.restore_message",
}
PAUSE_PERM = "queue_messages.pause_queue"  # pause and resume processing (QueuePause)

# A message type is "<entity>.<op>"; an entity type is this (the default handler, resync requests).
ENTITY_RE = re.compile(r"^[a-z][a-z0-9_]{0,39}$")


class Message(models.Model):
    """One change message from a terminal, with its place in the processing lifecycle."""

    # No index of its own: (terminal, message_id) and (terminal, -received_at) lead with it, and
    # every extra index is written on each of a message's state changes.
    terminal = models.ForeignKey(
        "terminals.Terminal", on_delete=models.PROTECT, related_name="messages", db_index=False
    )
    message_id = models.CharField(max_length=64)  # the terminal's id: the idempotency key
    message_type = models.CharField(max_length=64)  # "<entity>.<op>"
    entity_type = models.CharField(max_length=40)  # the "<entity>" part, kept for filters
    entity_key = models.CharField(max_length=128)
    sequence = models.BigIntegerField()
    created_at = models.DateTimeField()  # the terminal's clock
    payload = models.TextField(blank=True)
    state = models.CharField(max_length=16, choices=MessageState.choices, default=MessageState.RECEIVED)
    attempts = models.PositiveIntegerField(default=0)
    next_attempt_at = models.DateTimeField(null=True, blank=True)
    lease_owner = models.CharField(max_length=128, blank=True)
    lease_expires_at = models.DateTimeField(null=True, blank=True)
    last_error = models.TextField(blank=True)
    received_at = models.DateTimeField()
    updated_at = models.DateTimeField()
    processed_at = models.DateTimeField(null=True, blank=True)
    trace_id = models.CharField(max_length=32, blank=True)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["terminal", "message_id"], name="message_terminal_msgid_uniq")]
        indexes = [
            # The claim query: due pending work, oldest first, and expired leases.
            models.Index(
                fields=["next_attempt_at"],
                name="message_due_idx",
                condition=Q(state__in=["Received", "Failed"]),
            ),
            models.Index(
                fields=["lease_expires_at"],
                name="message_lease_idx",
                condition=Q(state="Processing"),
            ),
            # The console's common filters, newest first.
            models.Index(fields=["state", "-received_at"], name="message_state_recv_idx"),
            models.Index(fields=["terminal", "-received_at"], name="message_term_recv_idx"),
            models.Index(fields=["-received_at"], name="message_recv_idx"),
            models.Index(fields=["entity_type", "entity_key"], name="message_entity_idx"),
            models.Index(fields=["message_type", "-received_at"], name="message_type_recv_idx"),
            models.Index(fields=["trace_id"], name="message_trace_idx"),
            # The retention purge's candidate query: finished messages by age (services/retention.py,
            # PURGEABLE_STATES). Partial, so that the claim (to Processing) does not write it.
            models.Index(
                fields=["state", "updated_at"],
                name="message_state_updated_idx",
                condition=Q(state__in=["Processed", "Discarded"]),
            ),
        ]

    def __str__(self) -> str:
        return f"{self.terminal_id}:{self.message_id}"


class MessageEvent(models.Model):
    """One row per state change (and per receipt): the message's full lifecycle."""

    # No database-level foreign key: events are only ever written by INSERT ... SELECT from the
    # message table (so they cannot dangle) and deleted with their message by the ORM, while a
    # deferred FK check per event row cost a noticeable share of every claim and completion.
    # No index of its own either: event_message_at_idx (message, at) serves every lookup by
    # message, and a second index was one more write per event, two events per message.
    message = models.ForeignKey(
        Message, on_delete=models.CASCADE, related_name="events", db_constraint=False, db_index=False
    )
    from_state = models.CharField(max_length=16, blank=True)  # blank: the message was received
    to_state = models.CharField(max_length=16)
    at = models.DateTimeField()
    actor = models.CharField(max_length=150)  # worker id, "user:<name>", "terminal:<code>", "system"
    reason = models.TextField(blank=True)
    error_class = models.CharField(max_length=200, blank=True)
    traceback = models.TextField(blank=True)
    attempt = models.PositiveIntegerField(default=0)

    class Meta:
        indexes = [models.Index(fields=["message", "at"], name="event_message_at_idx")]
        ordering = ["at", "id"]


class DeadLetter(models.Model):
    """Why a message was given up on, and how an operator resolved it."""

    class Resolution(models.TextChoices):
        OPEN = ""
        RETRIED = "retried"
        DISCARDED = "discarded"

    message = models.OneToOneField(Message, on_delete=models.CASCADE, related_name="dead_letter")
    reason = models.TextField()
    error_class = models.CharField(max_length=200, blank=True)
    traceback = models.TextField(blank=True)
    # error class + the reason with numbers/ids blanked out: the console groups by it.
    group_key = models.CharField(max_length=255, db_index=True)
    dead_lettered_at = models.DateTimeField()
    resolution = models.CharField(max_length=16, choices=Resolution.choices, blank=True, default="")
    resolved_by = models.CharField(max_length=150, blank=True)
    resolved_at = models.DateTimeField(null=True, blank=True)
    note = models.TextField(blank=True)

    class Meta:
        indexes = [models.Index(fields=["resolution", "group_key"], name="deadletter_open_group_idx")]


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
        db_table = "syncadmin_deadlettergroupnote"  # created by the syncadmin app, which held the model first
        constraints = [models.UniqueConstraint(fields=["grouping", "key"], name="deadletter_group_note_uniq")]


class QueuePause(models.Model):
    """One active pause: the workers claim no message of this type, entity type or terminal.

    A state of the queue, not of each message: pausing writes this one row however many messages
    wait. Resuming deletes it (both are in the audit log). How the claim honours it: docs/engine.md.
    """

    class Scope(models.TextChoices):
        MESSAGE_TYPE = "message_type", "message type"
        ENTITY_TYPE = "entity_type", "entity type"
        TERMINAL = "terminal", "terminal"

    scope = models.CharField(max_length=16, choices=Scope.choices)
    value = models.CharField(max_length=64)  # a message type, an entity type or a terminal's code
    reason = models.TextField()
    paused_by = models.CharField(max_length=150)
    paused_at = models.DateTimeField()

    class Meta:
        constraints = [models.UniqueConstraint(fields=["scope", "value"], name="queue_pause_uniq")]
        ordering = ["paused_at", "id"]

    def __str__(self) -> str:
        return f"{self.get_scope_display()} {self.value}"


class CentralEntity(models.Model):
    """The central store: the latest state of one entity as loaded from one terminal.

    `last_sequence` makes applying idempotent: a change at or below it is a no-op, so a
    retried, duplicated or out-of-order older message can never overwrite newer data.
    A delete leaves a tombstone (deleted=True) that keeps its sequence for the same reason.
    """

    entity_type = models.CharField(max_length=40)
    entity_key = models.CharField(max_length=128)
    terminal_code = models.CharField(max_length=64)
    data = models.JSONField(default=dict)
    last_sequence = models.BigIntegerField()
    deleted = models.BooleanField(default=False)
    last_message_pk = models.BigIntegerField(null=True)  # the message that wrote this version
    updated_at = models.DateTimeField()

    class Meta:
        # Terminal first: the same index serves the apply's lookup of a key and a recount of one
        # terminal's cells. A second (terminal, type, deleted) index used to be one more write per
        # new entity, and with young statistics the planner walked it, a whole cell at a time,
        # for every key a batch looked up (measured: 4 ms per batch of 100).
        constraints = [
            models.UniqueConstraint(fields=["terminal_code", "entity_type", "entity_key"], name="central_entity_uniq")
        ]


class EntityCounter(models.Model):
    """Live (not deleted) entities per (terminal, entity type), changed in every apply's transaction."""

    terminal_code = models.CharField(max_length=64)
    entity_type = models.CharField(max_length=40)
    live_count = models.BigIntegerField(default=0)
    updated_at = models.DateTimeField()

    class Meta:
        constraints = [models.UniqueConstraint(fields=["terminal_code", "entity_type"], name="entity_counter_uniq")]


class UpdateState(models.TextChoices):
    PENDING = "Pending"
    DELIVERED = "Delivered"
    ACKNOWLEDGED = "Acknowledged"


class OutboundUpdate(models.Model):
    """An update the hub pushes back to one terminal (FetchUpdates / AckUpdates)."""

    terminal = models.ForeignKey("terminals.Terminal", on_delete=models.CASCADE, related_name="updates")
    update_id = models.CharField(max_length=64, unique=True)
    update_type = models.CharField(max_length=64)
    entity_key = models.CharField(max_length=128, blank=True)
    payload = models.TextField(blank=True)
    state = models.CharField(max_length=16, choices=UpdateState.choices, default=UpdateState.PENDING)
    created_at = models.DateTimeField()
    created_by = models.CharField(max_length=150, blank=True)
    delivered_at = models.DateTimeField(null=True, blank=True)
    acknowledged_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        indexes = [models.Index(fields=["terminal", "state", "created_at"], name="update_fetch_idx")]


# --- background bulk jobs (messages/services/bulk.py) -----------------------------------------------


class BulkJobState(models.TextChoices):
    PENDING = "Pending"
    RUNNING = "Running"
    DONE = "Done"
    CANCELLED = "Cancelled"
    FAILED = "Failed"


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


# --- retention (messages/services/retention.py) ------------------------------------------------------


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
