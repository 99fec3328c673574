"""django-tables2 tables for the reconciliation console."""

from urllib.parse import urlencode

import django_tables2 as tables
from django.urls import reverse
from django.utils.html import format_html

from reconciliation.models import Discrepancy, ReconciliationRun
from syncadmin.lib.columns import StampColumn

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
