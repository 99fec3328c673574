"""django-tables2 tables of the message console."""

from __future__ import annotations

import django_tables2 as tables
from django.urls import reverse
from django.utils import timezone
from django.utils.html import format_html

from messages.models import Message


def stamp(value) -> str:
    """Local time as text. Used instead of DateTimeColumn, which compiles a template per cell."""
    return timezone.localtime(value).strftime("%Y-%m-%d %H:%M:%S") if value else "—"


class StampColumn(tables.Column):
    """A datetime column shown as ``stamp`` text."""

    def render(self, value):
        return stamp(value)


def state_badge(state: str) -> str:
    return format_html('<span class="badge st-{}">{}</span>', state.lower(), state)


class MessageTable(tables.Table):
    # Checkboxes name="select" sit inside the bulk-action form wrapped around the table.
    select = tables.CheckBoxColumn(
        accessor="pk", orderable=False, attrs={"th__input": {"data-select-all": "1", "aria-label": "select page"}}
    )
    id = tables.Column(verbose_name="#", orderable=False, attrs={"td": {"class": "num muted"}})
    received_at = StampColumn(verbose_name="Received", attrs={"td": {"class": "nowrap"}})
    state = tables.Column()
    terminal = tables.Column(accessor="terminal__code", orderable=False)
    message_id = tables.Column(verbose_name="Message id", orderable=False)
    message_type = tables.Column(verbose_name="Type")
    entity_key = tables.Column(verbose_name="Entity key")
    sequence = tables.Column(verbose_name="Seq", attrs={"td": {"class": "num"}, "th": {"class": "num"}})
    attempts = tables.Column(verbose_name="Att.", attrs={"td": {"class": "num"}, "th": {"class": "num"}})
    last_error = tables.Column(verbose_name="Last error", orderable=False, default="", attrs={"td": {"class": "err"}})

    class Meta:
        model = Message
        fields = ()
        sequence = (
            "select",
            "id",
            "received_at",
            "state",
            "terminal",
            "message_id",
            "message_type",
            "entity_key",
            "sequence",
            "attempts",
            "last_error",
        )
        attrs = {"class": "grid", "id": "message-table"}
        orderable = True
        empty_text = "No message matches these filters."

    def render_state(self, record):
        # record.state, not value: django-tables2 hands over the choice's label ("Dead Lettered").
        return state_badge(record.state)

    def render_message_id(self, value, record):
        return format_html('<a href="{}">{}</a>', reverse("message-detail", args=[record.pk]), value)

    def render_terminal(self, value, record):
        return format_html('<a href="{}">{}</a>', reverse("terminal-detail", args=[record.terminal_id]), value)

    def render_last_error(self, value):
        first = value.splitlines()[0] if value else ""
        return format_html('<span title="{}">{}</span>', value[:500], first[:120])


class DeadLetterGroupTable(tables.Table):
    """One row per group of open dead letters; rows are dicts from deadletter_groups()."""

    key = tables.TemplateColumn(template_name="messages/_group_key.html", verbose_name="Group", orderable=False)
    count = tables.Column(verbose_name="Open", attrs={"td": {"class": "num"}, "th": {"class": "num"}}, orderable=False)
    first_seen = StampColumn(verbose_name="First seen", orderable=False)
    last_seen = StampColumn(verbose_name="Last seen", orderable=False)
    note = tables.TemplateColumn(template_name="messages/_group_note.html", verbose_name="Note", orderable=False)
    actions = tables.TemplateColumn(template_name="messages/_group_actions.html", verbose_name="", orderable=False)

    class Meta:
        attrs = {"class": "grid", "id": "group-table"}
        empty_text = "No open dead letters. Nothing to fix right now."
