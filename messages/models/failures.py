"""Dead letters and the triage of their groups."""

from django.db import models

from messages.models.queue import Message


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


class TriageStatus(models.TextChoices):
    """Where support stands on a group of dead letters (issue 20). A group with no triage row is new."""

    NEW = "new"
    INVESTIGATING = "investigating"
    ON_HOLD = "on_hold", "On hold"
    FIXED = "fixed", "Fixed, waiting for retry"


class DeadLetterGroupNote(models.Model):
    """The triage of one group of dead letters: owner, status, ticket and note, kept across its comings and goings.

    Keyed by how the console groups them (failure reason, terminal or entity type) and the
    group's key, so a note written on "ValueError: price #" is shown the next time it recurs.
    Each change leaves a DeadLetterGroupEvent; a dead letter landing in a closed group sets it back
    to new (messages/services/triage.py).
    """

    grouping = models.CharField(max_length=16)  # reason | terminal | entity
    key = models.CharField(max_length=255)
    note = models.TextField(blank=True)
    owner = models.CharField(max_length=150, blank=True)  # a console username; blank: nobody
    status = models.CharField(max_length=16, choices=TriageStatus.choices, default=TriageStatus.NEW)
    ticket_url = models.URLField(max_length=500, blank=True)
    updated_by = models.CharField(max_length=150, blank=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        db_table = "syncadmin_deadlettergroupnote"  # created by the syncadmin app, which held the model first
        constraints = [models.UniqueConstraint(fields=["grouping", "key"], name="deadletter_group_note_uniq")]


class DeadLetterGroupEvent(models.Model):
    """One change of a group's triage (who, when, what changed), or its recurrence after it was closed."""

    class Kind(models.TextChoices):
        TRIAGE = "triage"
        RECURRED = "recurred"

    grouping = models.CharField(max_length=16)
    key = models.CharField(max_length=255)
    kind = models.CharField(max_length=16, choices=Kind.choices)
    at = models.DateTimeField()
    actor = models.CharField(max_length=150)
    from_status = models.CharField(max_length=16, blank=True)
    to_status = models.CharField(max_length=16, blank=True)
    detail = models.TextField(blank=True)  # "owner: – → sam; ticket: …" or the dead letter that recurred

    class Meta:
        indexes = [models.Index(fields=["grouping", "key", "at"], name="deadletter_group_event_idx")]
        ordering = ["-at", "-id"]

    @property
    def from_label(self) -> str:
        return _status_label(self.from_status)

    @property
    def to_label(self) -> str:
        return _status_label(self.to_status)


def _status_label(value: str) -> str:
    """A status as the console says it ("On hold"); blank or unknown values as stored."""
    return TriageStatus(value).label if value in TriageStatus.values else value
