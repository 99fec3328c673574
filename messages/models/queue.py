"""The queue: its state machine (states, legal moves, what each operator action may touch), messages, their
events, and the pauses the claim honours."""

import re
from datetime import timedelta

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


class MessageEnvelope(models.Model):
    """What a terminal sent: written once at ingest, so it can carry the console's indexes.

    (An operator's edit and retry rewrites the payload, a rare update.) The queue state that
    changes on every transition lives in Message, a narrow row of its own
    (multi-table inheritance: Message *is* an envelope with its state, read as one model). A state
    change then writes the narrow row's few indexes, not this table's seven (docs/engine.md, "Two
    tables"). Its table is the message table of releases up to 0.1.0, minus the state columns
    (migration 0013 moved them without rewriting the envelope).
    """

    # No index of its own: (terminal, message_id) and (terminal, -received_at) lead with it.
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
    received_at = models.DateTimeField()
    trace_id = models.CharField(max_length=32, blank=True)

    class Meta:
        db_table = "queue_messages_message"
        constraints = [models.UniqueConstraint(fields=["terminal", "message_id"], name="message_terminal_msgid_uniq")]
        indexes = [
            # The console's common filters, newest first.
            models.Index(fields=["terminal", "-received_at"], name="message_term_recv_idx"),
            models.Index(fields=["-received_at"], name="message_recv_idx"),
            models.Index(fields=["entity_type", "entity_key"], name="message_entity_idx"),
            models.Index(fields=["message_type", "-received_at"], name="message_type_recv_idx"),
            models.Index(fields=["trace_id"], name="message_trace_idx"),
        ]

    def __str__(self) -> str:
        return f"{self.terminal_id}:{self.message_id}"


# The states a message waits in (for a worker, an operator, or retention): the ones the state
# index below holds. The hot path's two states, Processing and Processed, are not among them.
# Their plain text values: the index's condition is written in migrations as these strings.
WAITING_STATES = [
    s.value for s in (MessageState.RECEIVED, MessageState.FAILED, MessageState.DEAD_LETTERED, MessageState.DISCARDED)
]


class Message(MessageEnvelope):
    """One change message from a terminal, with its place in the processing lifecycle.

    The envelope's fields are inherited (read through a join on the primary key); the fields
    below are the narrow queue-state row, the only row a transition updates.
    """

    # The envelope's id, as this row's primary key (column "id", so raw SQL joins id = id).
    envelope = models.OneToOneField(
        MessageEnvelope,
        on_delete=models.CASCADE,
        parent_link=True,
        primary_key=True,
        db_column="id",
        related_name="queue_state",
    )
    state = models.CharField(max_length=16, choices=MessageState.choices, default=MessageState.RECEIVED)
    attempts = models.PositiveIntegerField(default=0)
    next_attempt_at = models.DateTimeField(null=True, blank=True)
    lease_owner = models.CharField(max_length=128, blank=True)
    lease_expires_at = models.DateTimeField(null=True, blank=True)
    last_error = models.TextField(blank=True)
    updated_at = models.DateTimeField()
    processed_at = models.DateTimeField(null=True, blank=True)
    # Copies of the envelope's receipt time and terminal, which never change: the backlog's count,
    # age and per-terminal figures (dashboard, terminals list, metrics, alerts) are then read from
    # this table's (state, queued_at, terminal) index alone, never joined to a million envelopes.
    queued_at = models.DateTimeField()
    queue_terminal_id = models.BigIntegerField()

    class Meta:
        db_table = "queue_messages_messagestate"
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
            # The state filter's counts and the backlog by age and terminal (see queued_at), for
            # the states a message waits in. Partial, so that neither the claim (to Processing)
            # nor the completion (to Processed) writes it: one index entry fewer per transition
            # on the hot path, 7-9 % of the drain (docs/performance.md). Processing is counted
            # from the lease index, Processed estimated (selectors.message_state_counts_fast).
            models.Index(
                fields=["state", "queued_at", "queue_terminal_id"],
                name="message_state_queued_idx",
                condition=Q(state__in=WAITING_STATES),
            ),
            # The retention purge's candidate query: finished messages by age (services/retention.py,
            # PURGEABLE_STATES). Partial, so that the claim (to Processing) does not write it.
            models.Index(
                fields=["state", "updated_at"],
                name="message_state_updated_idx",
                condition=Q(state__in=["Processed", "Discarded"]),
            ),
        ]

    def save(self, *args, **kwargs):
        # An ORM save (factories, tests, a console create) keeps the copies equal to the envelope;
        # the engine's own inserts write them in SQL.
        self.queued_at, self.queue_terminal_id = self.received_at, self.terminal_id
        super().save(*args, **kwargs)


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


# How far a paused message's due time is moved while it is parked (messages/services/pauses.py):
# about 1,000 years, far past any backoff and inside every database's range. Moving it back by
# the same offset gives the due time to the microsecond.
PARK_OFFSET = timedelta(days=365_000)


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
