from __future__ import annotations

import django_tables2 as tables
from django.urls import reverse
from django.utils.html import format_html

from syncadmin.lib.columns import StampColumn
from terminals.models import Terminal


class TerminalTable(tables.Table):
    code = tables.Column(verbose_name="Code")
    name = tables.Column()
    store = tables.Column()
    status = tables.Column(empty_values=(), verbose_name="Status", orderable=False)
    health = tables.Column(empty_values=(), verbose_name="Health", orderable=False)
    last_heartbeat_at = StampColumn(verbose_name="Last heartbeat", default="never")
    app_version = tables.Column(verbose_name="Version")
    backlog = tables.Column(
        empty_values=(),
        verbose_name="Backlog (hub)",
        orderable=False,
        attrs={"td": {"class": "num"}, "th": {"class": "num"}},
    )
    reported_backlog = tables.Column(
        verbose_name="Backlog (local)", attrs={"td": {"class": "num"}, "th": {"class": "num"}}
    )
    clock_skew_seconds = tables.Column(
        verbose_name="Clock skew", attrs={"td": {"class": "num"}, "th": {"class": "num"}}
    )
    dead = tables.Column(
        empty_values=(),
        verbose_name="Dead letters",
        orderable=False,
        attrs={"td": {"class": "num"}, "th": {"class": "num"}},
    )

    class Meta:
        model = Terminal
        fields = ()
        sequence = (
            "code",
            "name",
            "store",
            "status",
            "health",
            "last_heartbeat_at",
            "app_version",
            "backlog",
            "reported_backlog",
            "clock_skew_seconds",
            "dead",
        )
        attrs = {"class": "grid", "id": "terminal-table"}
        orderable = False
        empty_text = "No terminal yet."

    def __init__(self, *args, counts=None, threshold=None, **kwargs):
        super().__init__(*args, **kwargs)
        self.counts = counts or {}
        self.threshold = threshold

    def render_code(self, value, record):
        return format_html('<a href="{}">{}</a>', reverse("terminal-detail", args=[record.pk]), value)

    def render_status(self, record):
        if not record.enabled:
            return format_html('<span class="badge st-disabled">disabled</span>')
        if record.last_heartbeat_at and record.last_heartbeat_at >= self.threshold:
            return format_html('<span class="badge st-online">online</span>')
        return format_html('<span class="badge st-offline">offline</span>')

    def render_backlog(self, record):
        n = self.counts.get(record.pk, {}).get("backlog", 0)
        url = reverse("message-list") + f"?terminal={record.code}&state=Received"
        return format_html('<a href="{}">{}</a>', url, n) if n else "0"

    def render_dead(self, record):
        n = self.counts.get(record.pk, {}).get("dead", 0)
        url = reverse("message-list") + f"?terminal={record.code}&state=DeadLettered"
        return format_html('<a class="bad" href="{}">{}</a>', url, n) if n else "0"

    def render_clock_skew_seconds(self, value):
        cls = "bad" if abs(value) > 60 else ""
        return format_html('<span class="{}">{}</span>', cls, f"{value:+.1f} s")
