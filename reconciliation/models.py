from django.db import models


class ReportedCount(models.Model):
    """A terminal's own count of one entity type, as of its clock (ReportCounts)."""

    terminal = models.ForeignKey("terminals.Terminal", on_delete=models.CASCADE, related_name="reported_counts")
    entity_type = models.CharField(max_length=40)
    count = models.BigIntegerField()
    as_of = models.DateTimeField()
    received_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        indexes = [models.Index(fields=["terminal", "entity_type", "-as_of"], name="reported_latest_idx")]


class RunStatus(models.TextChoices):
    QUEUED = "queued"
    RUNNING = "running"
    DONE = "done"
    FAILED = "failed"


class RunTrigger(models.TextChoices):
    SCHEDULE = "schedule"
    CONSOLE = "console"
    COMMAND = "command"


class ReconciliationRun(models.Model):
    """One pass over every (terminal, entity type): when, who asked, how long, what it found."""

    created_at = models.DateTimeField(db_index=True)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    duration_ms = models.FloatField(null=True, blank=True)
    trigger = models.CharField(max_length=16, choices=RunTrigger.choices)
    triggered_by = models.CharField(max_length=150, blank=True)  # "user:<name>", "schedule", "command"
    status = models.CharField(max_length=16, choices=RunStatus.choices, default=RunStatus.QUEUED)
    error = models.TextField(blank=True)
    terminals_checked = models.IntegerField(default=0)
    entity_types_checked = models.IntegerField(default=0)
    cells_checked = models.IntegerField(default=0)
    counter_drift_count = models.IntegerField(default=0)
    gap_count = models.IntegerField(default=0)
    in_flight_count = models.IntegerField(default=0)
    stale_count = models.IntegerField(default=0)
    # The full terminal x entity-type state for the heat map. Only the latest finished run
    # keeps it (older ones are cleared): the discrepancy rows are the lasting history.
    matrix = models.JSONField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at", "-pk"]
        indexes = [models.Index(fields=["status", "-finished_at"], name="recon_run_status_idx")]
        permissions = [
            ("run_reconciliation", "Can start a reconciliation run"),
            ("recount_counters", "Can rebuild entity counters from the central store"),
        ]


class DiscrepancyKind(models.TextChoices):
    COUNTER_DRIFT = "counter_drift", "Counter drift"  # counter != recount: a bug, always shown
    GAP = "gap", "Gap"  # |terminal - central| > in flight: a real gap
    IN_FLIGHT = "in_flight", "In flight"  # explained by messages in flight only
    STALE = "stale", "Stale report"  # the terminal's latest report is too old to compare


# Worst first: the order the console sorts and colours by.
KIND_SEVERITY = {
    DiscrepancyKind.COUNTER_DRIFT: 4,
    DiscrepancyKind.GAP: 3,
    DiscrepancyKind.STALE: 2,
    DiscrepancyKind.IN_FLIGHT: 1,
}
# Kinds that need someone to look (in flight resolves itself).
OPEN_KINDS = (DiscrepancyKind.COUNTER_DRIFT, DiscrepancyKind.GAP, DiscrepancyKind.STALE)


class Discrepancy(models.Model):
    """One (terminal, entity type) whose numbers disagreed in one run."""

    run = models.ForeignKey(ReconciliationRun, on_delete=models.CASCADE, related_name="discrepancies")
    terminal_code = models.CharField(max_length=64)
    entity_type = models.CharField(max_length=40)
    kind = models.CharField(max_length=16, choices=DiscrepancyKind.choices)
    terminal_count = models.BigIntegerField(null=True, blank=True)  # the latest report; null: none
    central_count = models.BigIntegerField()  # the live counter
    recount = models.BigIntegerField()  # a true count of the central store
    in_flight = models.IntegerField(default=0)
    delta = models.BigIntegerField(default=0)  # terminal_count - central_count (0 when no report)
    reported_as_of = models.DateTimeField(null=True, blank=True)  # the report's time (terminal clock)
    reported_received_at = models.DateTimeField(null=True, blank=True)  # when the hub got it
    explained_at = models.DateTimeField(null=True, blank=True)
    explained_by = models.CharField(max_length=150, blank=True)
    note = models.TextField(blank=True)

    class Meta:
        ordering = ["terminal_code", "entity_type"]
        indexes = [
            models.Index(fields=["run", "kind"], name="discrepancy_run_kind_idx"),
            models.Index(fields=["terminal_code", "entity_type", "run"], name="discrepancy_cell_idx"),
        ]
        permissions = [
            ("explain_discrepancy", "Can mark a discrepancy as explained"),
            ("request_resync", "Can ask a terminal to resend an entity type"),
        ]
        verbose_name_plural = "discrepancies"

    @property
    def explained(self) -> bool:
        return self.explained_at is not None

    @property
    def severity(self) -> int:
        return KIND_SEVERITY.get(self.kind, 0)


# --- Alerts (docs/operations/alerts.md) ---------------------------------------------------------------
# Here, on the top core floor: the rules read terminals, the queue and reconciliation alike.


class AlertKind(models.TextChoices):
    BACKLOG_OVERDUE = "backlog_overdue", "Backlog overdue"
    DEAD_LETTER_RATE = "dead_letter_rate", "Dead letters per minute"
    TERMINAL_OFFLINE = "terminal_offline", "Terminal offline"
    TERMINAL_NO_SALES = "terminal_no_sales", "No sales while the store is open"
    RECONCILIATION_DRIFT = "reconciliation_drift", "Reconciliation drift"
    WORKERS_GONE = "workers_gone", "Worker cluster gone"


# What each rule's threshold counts (the console's rule form and the notifications say it).
ALERT_UNITS = {
    AlertKind.BACKLOG_OVERDUE: "minutes overdue",
    AlertKind.DEAD_LETTER_RATE: "dead letters in the last minute",
    AlertKind.TERMINAL_OFFLINE: "minutes without a heartbeat",
    AlertKind.TERMINAL_NO_SALES: "minutes open without a sale",
    AlertKind.RECONCILIATION_DRIFT: "open discrepancies",
    AlertKind.WORKERS_GONE: "minutes since a worker ran the sample",
}


class AlertRule(models.Model):
    """One kind of trouble to watch: fires while its measure is above ``threshold``.

    ``for_minutes`` is the hysteresis: a condition opens an incident only after holding that long,
    and an open incident clears only after the condition has been gone that long, so a value
    flapping around the threshold makes one incident, not a notification a minute.
    """

    kind = models.CharField(max_length=32, choices=AlertKind.choices, unique=True)
    enabled = models.BooleanField(default=True)
    threshold = models.FloatField()
    for_minutes = models.PositiveIntegerField(default=0)
    updated_at = models.DateTimeField(auto_now=True)
    updated_by = models.CharField(max_length=150, blank=True)

    class Meta:
        ordering = ["kind"]

    def __str__(self) -> str:
        return self.get_kind_display()

    @property
    def unit(self) -> str:
        return ALERT_UNITS.get(self.kind, "")


class IncidentState(models.TextChoices):
    PENDING = "pending"  # the condition holds, not yet for the rule's for_minutes: nobody is told
    OPEN = "open"
    CLEARED = "cleared"


ACTIVE_INCIDENT_STATES = (IncidentState.PENDING, IncidentState.OPEN)


class Incident(models.Model):
    """One rule firing for one subject (a terminal's code, or "" for the whole hub), from open to clear."""

    rule = models.ForeignKey(AlertRule, on_delete=models.CASCADE, related_name="incidents")
    subject = models.CharField(max_length=64, blank=True)
    state = models.CharField(max_length=16, choices=IncidentState.choices, default=IncidentState.PENDING)
    first_seen_at = models.DateTimeField()  # the condition was first seen to hold
    opened_at = models.DateTimeField(null=True, blank=True)
    ok_since = models.DateTimeField(null=True, blank=True)  # open, but the condition has been gone since
    cleared_at = models.DateTimeField(null=True, blank=True)
    value = models.FloatField()  # the last value seen above the threshold
    threshold = models.FloatField()  # the rule's threshold when the value was seen
    details = models.JSONField(default=dict, blank=True)
    updated_at = models.DateTimeField()

    class Meta:
        ordering = ["-first_seen_at", "-pk"]
        constraints = [
            # At most one live incident per (rule, subject): two evaluators running at once (a slow
            # minute overlapping the next) cannot both open one; the loser's insert fails.
            models.UniqueConstraint(
                fields=["rule", "subject"],
                condition=models.Q(state__in=["pending", "open"]),
                name="incident_one_active",
            )
        ]
        indexes = [models.Index(fields=["state", "-first_seen_at"], name="incident_state_idx")]

    def __str__(self) -> str:
        return f"{self.rule} {self.subject}".strip()


class NotificationEvent(models.TextChoices):
    OPENED = "opened"
    CLEARED = "cleared"


class NotificationChannel(models.TextChoices):
    WEBHOOK = "webhook"
    EMAIL = "email"


class NotificationState(models.TextChoices):
    PENDING = "pending"
    SENT = "sent"
    FAILED = "failed"  # gave up after SYNC_ALERT_MAX_ATTEMPTS


class AlertNotification(models.Model):
    """The outbox: one row per (incident, opened/cleared, channel, target), written in the transaction
    that opened or cleared the incident, so a notification is neither lost nor sent for a change
    that rolled back; the unique key makes "one per incident and one when it clears" a constraint."""

    incident = models.ForeignKey(Incident, on_delete=models.CASCADE, related_name="notifications")
    event = models.CharField(max_length=16, choices=NotificationEvent.choices)
    channel = models.CharField(max_length=16, choices=NotificationChannel.choices)
    target = models.CharField(max_length=500)  # the webhook URL, or the e-mail addresses
    state = models.CharField(max_length=16, choices=NotificationState.choices, default=NotificationState.PENDING)
    attempts = models.PositiveIntegerField(default=0)
    next_attempt_at = models.DateTimeField()
    last_error = models.TextField(blank=True)
    created_at = models.DateTimeField()
    sent_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at", "-pk"]
        constraints = [
            models.UniqueConstraint(fields=["incident", "event", "channel", "target"], name="alert_notification_once")
        ]
        indexes = [models.Index(fields=["state", "next_attempt_at"], name="alert_notification_due_idx")]
