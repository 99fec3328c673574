"""django-tables2 tables of the message console: messages, dead-letter groups, bulk jobs, purge runs."""

from __future__ import annotations

import django_tables2 as tables
from django.urls import reverse
from django.utils.html import format_html

from messages.models import BulkJob, Message, PurgeRun, SavedView
from syncadmin.lib.columns import StampColumn

NUM = {"td": {"class": "num"}, "th": {"class": "num"}}


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
    superseded = tables.Column(verbose_name="Superseded", attrs=NUM, orderable=False)
    triage = tables.TemplateColumn(
        template_name="messages/_group_triage.html", verbose_name="Triage", orderable=False, empty_values=()
    )
    first_seen = StampColumn(verbose_name="First seen", orderable=False)
    last_seen = StampColumn(verbose_name="Last seen", orderable=False)
    note = tables.TemplateColumn(template_name="messages/_group_note.html", verbose_name="Note", orderable=False)
    actions = tables.TemplateColumn(template_name="messages/_group_actions.html", verbose_name="", orderable=False)

    class Meta:
        attrs = {"class": "grid", "id": "group-table"}
        empty_text = "No open dead letters. Nothing to fix right now."

    def render_superseded(self, value):
        return format_html('<span class="badge superseded">{}</span>', value) if value else ""


class BulkJobTable(tables.Table):
    id = tables.Column(verbose_name="Job")
    created_at = StampColumn(verbose_name="Created")
    action = tables.Column()
    state = tables.Column()
    filters = tables.Column(accessor="params", verbose_name="On", orderable=False)
    total = tables.Column(attrs=NUM, default="…")
    done = tables.Column(attrs=NUM)
    changed = tables.Column(attrs=NUM)
    rate = tables.Column(attrs=NUM, verbose_name="Msg/s at most", default="—")
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
            "rate",
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


class EntityStoryTable(tables.Table):
    """An entity's messages from every terminal, in sequence order, with what each did.

    The rows are written out by messages/_story_rows.html (each with its ``outcome``); these are the columns.
    """

    sequence = tables.Column(verbose_name="Seq", attrs=NUM)
    terminal = tables.Column(accessor="terminal__code")
    message_id = tables.Column(verbose_name="Message id")
    message_type = tables.Column(verbose_name="Type")
    state = tables.Column()
    outcome = tables.Column(verbose_name="What it did", empty_values=())
    received_at = StampColumn(verbose_name="Received")
    processed_at = StampColumn(verbose_name="Processed")

    class Meta:
        model = Message
        fields = ()
        sequence = ("sequence", "terminal", "message_id", "message_type", "state", "outcome", "received_at",
                    "processed_at")  # fmt: skip
        attrs = {"class": "grid", "id": "story-table"}
        orderable = False
        empty_text = "No message has touched this entity (or the retention purge has removed them)."


class SavedViewTable(tables.Table):
    name = tables.Column(verbose_name="View")
    shared = tables.Column(verbose_name="For")
    owner = tables.Column(accessor="owner__username", verbose_name="Saved by")
    query = tables.Column(verbose_name="Filters", default="all messages")
    created_at = StampColumn(verbose_name="Saved")
    actions = tables.TemplateColumn(template_name="messages/_saved_view_actions.html", verbose_name="", orderable=False)

    class Meta:
        model = SavedView
        fields = ()
        sequence = ("name", "shared", "owner", "query", "created_at", "actions")
        attrs = {"class": "grid", "id": "saved-view-table"}
        orderable = False
        empty_text = "No saved view yet: filter the message list, then “Save view”."

    def render_name(self, value, record):
        return format_html('<a href="{}">{}</a>', reverse("saved-view-open", args=[record.pk]), value)

    def render_shared(self, value):
        return "the team" if value else "me"
