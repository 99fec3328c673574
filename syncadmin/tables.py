from __future__ import annotations

import json

import django_tables2 as tables
from django.utils.html import format_html

from syncadmin.lib.columns import StampColumn
from syncadmin.models import AuditEntry


class AuditEntryTable(tables.Table):
    at = StampColumn(verbose_name="When", attrs={"td": {"class": "nowrap"}})
    actor = tables.Column()
    action = tables.Column()
    object = tables.Column(empty_values=(), verbose_name="Object")
    count = tables.Column(verbose_name="Changed", attrs={"td": {"class": "num"}, "th": {"class": "num"}})
    reason = tables.Column()
    detail = tables.Column(verbose_name="Detail", attrs={"td": {"class": "detail"}})

    class Meta:
        model = AuditEntry
        fields = ()
        sequence = ("at", "actor", "action", "object", "count", "reason", "detail")
        attrs = {"class": "grid", "id": "audit-table"}
        orderable = False
        empty_text = "No operator action recorded yet."

    def render_action(self, value):
        return format_html('<code class="action">{}</code>', value)

    def render_object(self, record):
        if not record.object_type:
            return "—"
        if record.object_type == "message" and record.object_id:
            return format_html('<a href="/messages/{}/">message {}</a>', record.object_id, record.object_id)
        return f"{record.object_type} {record.object_id}".strip()

    def render_detail(self, value):
        if not value:
            return "—"
        text = json.dumps(value, ensure_ascii=False, indent=1)
        summary = json.dumps(value, ensure_ascii=False)
        return format_html("<details><summary>{}</summary><pre>{}</pre></details>", summary[:90], text)
