"""The central store the workers load into, its live counters, and the updates pushed back to terminals."""

from django.db import models


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
