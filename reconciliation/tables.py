"""django-tables2 tables for the reconciliation console."""

from urllib.parse import urlencode

import django_tables2 as tables
from django.urls import reverse
from django.utils.html import format_html

from reconciliation.models import (
    AlertNotification,
    AlertRule,
    Discrepancy,
    Incident,
    NotificationState,
    ReconciliationRun,
)
from syncadmin.lib.columns import StampColumn, stamp

KIND_CLASS = {"counter_drift": "k-drift", "gap": "k-gap", "in_flight": "k-flight", "stale": "k-stale"}


def cell_url(terminal_code: str, entity_type: str) -> str:
    return f"{reverse('reconciliation:cell')}?{urlencode({'terminal': terminal_code, 'entity_type': entity_type})}"


class DiscrepancyTable(tables.Table):
    terminal_code = tables.Column(verbose_name="Terminal")
    entity_type = tables.Column(verbose_name="Entity type")
    kind = tables.Column()
    terminal_count = tables.Column(verbose_name="Terminal count")
    central_count = tables.Column(verbose_name="Central count")
    recount = tables.Column()
    in_flight = tables.Column(verbose_name="In flight")
    delta = tables.Column()
    reported_as_of = tables.DateTimeColumn(verbose_name="Report as of", format="Y-m-d H:i:s")
    explained = tables.Column(accessor="explained_at", verbose_name="Explained", order_by=("explained_at",))
    history = tables.Column(accessor="pk", verbose_name="", orderable=False)

    class Meta:
        model = Discrepancy
        fields = ()
        sequence = (
            "terminal_code",
            "entity_type",
            "kind",
            "terminal_count",
            "central_count",
            "recount",
            "in_flight",
            "delta",
            "reported_as_of",
            "explained",
            "history",
        )
        order_by = ("terminal_code", "entity_type")
        attrs = {"class": "table recon-table"}
        empty_text = "No discrepancies."

    def render_kind(self, record):
        return format_html(
            '<span class="badge {}">{}</span>', KIND_CLASS.get(record.kind, ""), record.get_kind_display()
        )

    def render_explained(self, record):
        return format_html('<span title="{}">{} — {}</span>', record.note, record.explained_by, record.note[:60])

    def render_history(self, record):
        return format_html('<a href="{}">history</a>', cell_url(record.terminal_code, record.entity_type))


class ReconciliationRunTable(tables.Table):
    id = tables.LinkColumn("reconciliation:run_detail", args=[tables.A("pk")], verbose_name="Run")
    created_at = StampColumn(verbose_name="Started")
    trigger = tables.Column()
    triggered_by = tables.Column(verbose_name="By")
    status = tables.Column()
    duration_ms = tables.Column(verbose_name="Duration (ms)")
    cells_checked = tables.Column(verbose_name="Cells")
    counter_drift_count = tables.Column(verbose_name="Drift")
    gap_count = tables.Column(verbose_name="Gaps")
    in_flight_count = tables.Column(verbose_name="In flight")
    stale_count = tables.Column(verbose_name="Stale")

    class Meta:
        model = ReconciliationRun
        fields = ()
        sequence = (
            "id",
            "created_at",
            "trigger",
            "triggered_by",
            "status",
            "duration_ms",
            "cells_checked",
            "counter_drift_count",
            "gap_count",
            "in_flight_count",
            "stale_count",
        )
        attrs = {"class": "table recon-table"}
        empty_text = "No runs yet."

    def render_duration_ms(self, value):
        return f"{value:.0f}"


# --- alerts ---------------------------------------------------------------------------------------


class IncidentTable(tables.Table):
    state = tables.Column()
    rule = tables.Column(accessor="rule__kind", verbose_name="Rule")
    subject = tables.Column(verbose_name="Subject", default="whole hub")
    value = tables.Column(verbose_name="Last value")
    first_seen_at = StampColumn(verbose_name="First seen")
    opened_at = StampColumn(verbose_name="Opened")
    cleared_at = StampColumn(verbose_name="Cleared")
    details = tables.Column(orderable=False)

    class Meta:
        model = Incident
        fields = ()
        sequence = ("state", "rule", "subject", "value", "first_seen_at", "opened_at", "cleared_at", "details")
        orderable = False  # live first, then newest: the order support staff need on a bad day
        attrs = {"class": "table"}
        row_attrs = {"id": lambda record: f"incident-{record.pk}", "class": lambda record: f"incident-{record.state}"}
        empty_text = "No incidents: every rule is quiet."

    def render_state(self, record):
        return format_html('<span class="badge {}">{}</span>', INCIDENT_CLASS.get(record.state, ""), record.state)

    def render_rule(self, record):
        return record.rule.get_kind_display()

    def render_value(self, record):
        return format_html(
            "{} <small>{} (threshold {})</small>", f"{record.value:g}", record.rule.unit, f"{record.threshold:g}"
        )

    def render_details(self, value):
        return ", ".join(f"{k}: {v}" for k, v in sorted(value.items()) if v is not None)


# The console's state colours (console.css): red needs someone, amber is on its way, green is done.
INCIDENT_CLASS = {"open": "st-deadlettered", "pending": "st-failed", "cleared": "st-processed"}
NOTIFICATION_CLASS = {"failed": "st-deadlettered", "pending": "st-pending", "sent": "st-processed"}


class AlertNotificationTable(tables.Table):
    state = tables.Column()
    incident = tables.Column(accessor="incident_id", verbose_name="Incident")
    event = tables.Column()
    channel = tables.Column()
    target = tables.Column()
    attempts = tables.Column()
    next_attempt_at = StampColumn(verbose_name="Next attempt")
    sent_at = StampColumn(verbose_name="Sent")
    last_error = tables.Column(verbose_name="Last error")
    resend = tables.Column(accessor="pk", verbose_name="", orderable=False)

    class Meta:
        model = AlertNotification
        fields = ()
        sequence = ("state", "incident", "event", "channel", "target", "attempts", "next_attempt_at", "sent_at",
                    "last_error", "resend")  # fmt: skip
        orderable = False
        attrs = {"class": "table"}
        empty_text = "No notifications yet."

    def __init__(self, *args, can_resend: bool = False, **kwargs):
        super().__init__(*args, **kwargs)
        if not can_resend:
            self.columns.hide("resend")

    def render_resend(self, record):
        if record.state != NotificationState.FAILED:
            return ""
        # Posted by htmx with the page's CSRF header (base.html's hx-headers); the answer reloads the page.
        return format_html(
            '<button class="btn" id="resend-{}" hx-post="{}" hx-swap="none">Resend</button>',
            record.pk, reverse("alerts:notification_resend", args=[record.pk]),
        )  # fmt: skip

    def render_state(self, record):
        return format_html('<span class="badge {}">{}</span>', NOTIFICATION_CLASS.get(record.state, ""), record.state)

    def render_incident(self, record):
        incident = record.incident
        return format_html(
            '<a href="{}#incident-{}">#{} {} {}</a>', reverse("alerts:list"), incident.pk, incident.pk,
            incident.rule.get_kind_display(), incident.subject,
        )  # fmt: skip

    def render_last_error(self, value):
        short = value if len(value) <= 120 else value[:117] + "…"
        return format_html('<span title="{}">{}</span>', value, short)

    def render_next_attempt_at(self, record):
        return stamp(record.next_attempt_at) if record.state == "pending" else "—"


class AlertRuleTable(tables.Table):
    kind = tables.Column(verbose_name="Rule")
    enabled = tables.BooleanColumn()
    threshold = tables.Column()
    for_minutes = tables.Column(verbose_name="For (minutes)")
    updated_by = tables.Column(verbose_name="Changed by")
    edit = tables.Column(accessor="pk", verbose_name="", orderable=False)

    class Meta:
        model = AlertRule
        fields = ()
        sequence = ("kind", "enabled", "threshold", "for_minutes", "updated_by", "edit")
        orderable = False
        attrs = {"class": "table"}
        empty_text = "No rules."

    def __init__(self, *args, can_edit: bool = False, **kwargs):
        super().__init__(*args, **kwargs)
        if not can_edit:
            self.columns.hide("edit")

    def render_kind(self, record):
        return record.get_kind_display()

    def render_threshold(self, record):
        return f"{record.threshold:g} {record.unit}"

    def render_edit(self, record):
        return format_html('<a class="btn" href="{}">Edit</a>', reverse("alerts:rule_edit", args=[record.pk]))
