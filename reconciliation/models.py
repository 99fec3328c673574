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
