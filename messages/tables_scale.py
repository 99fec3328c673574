"""django-tables2 tables for background bulk jobs and retention purge runs."""

from __future__ import annotations

import django_tables2 as tables
from django.urls import reverse
from django.utils.html import format_html

from messages.models import BulkJob, PurgeRun
from messages.tables import StampColumn

NUM = {"td": {"class": "num"}, "th": {"class": "num"}}


class BulkJobTable(tables.Table):
    id = tables.Column(verbose_name="Job")
    created_at = StampColumn(verbose_name="Created")
    action = tables.Column()
    state = tables.Column()
    filters = tables.Column(accessor="params", verbose_name="On", orderable=False)
    total = tables.Column(attrs=NUM, default="…")
    done = tables.Column(attrs=NUM)
    changed = tables.Column(attrs=NUM)
    actor = tables.Column(verbose_name="By")
    finished_at = StampColumn(verbose_name="Finished")

    class Meta:
        model = BulkJob
        fields = ()
        sequence = (
            "id",
            "created_at",
            "action",
            "state",
            "filters",
            "total",
            "done",
            "changed",
            "actor",
            "finished_at",
        )
        attrs = {"class": "grid", "id": "bulk-job-table"}
        orderable = False
        empty_text = "No background bulk job yet: bulk actions above the threshold run here."

    def render_id(self, value):
        return format_html('<a href="{}">#{}</a>', reverse("bulk-job-detail", args=[value]), value)

    def render_state(self, record):
        return format_html('<span class="badge job-{}">{}</span>', record.state.lower(), record.state)

    def render_filters(self, value):
        if value.get("scope") == "selected":
            return f"{len(value.get('ids') or [])} selected"
        filters = value.get("filters") or {}
        return ", ".join(f"{k}={v}" for k, v in filters.items()) or "all messages"


class PurgeRunTable(tables.Table):
    started_at = StampColumn(verbose_name="Started")
    finished_at = StampColumn(verbose_name="Finished")
    duration_ms = tables.Column(verbose_name="Duration", attrs=NUM)
    messages_removed = tables.Column(verbose_name="Messages", attrs=NUM)
    events_removed = tables.Column(verbose_name="Events", attrs=NUM)
    deadletters_removed = tables.Column(verbose_name="Dead letters", attrs=NUM)
    batches = tables.Column(attrs=NUM)
    trigger = tables.Column()
    more = tables.Column(verbose_name="Outcome", empty_values=())

    class Meta:
        model = PurgeRun
        fields = ()
        sequence = (
            "started_at",
            "finished_at",
            "duration_ms",
            "messages_removed",
            "events_removed",
            "deadletters_removed",
            "batches",
            "trigger",
            "more",
        )
        attrs = {"class": "grid", "id": "purge-run-table"}
        orderable = False
        empty_text = "No purge has run yet."

    def render_duration_ms(self, value):
        return f"{value / 1000:.1f} s" if value is not None else "—"

    def render_more(self, record):
        if record.error:
            return format_html('<span class="bad" title="{}">failed</span>', record.error)
        if record.finished_at is None:
            return "running"
        return "time budget spent, continued" if record.more else "complete"
