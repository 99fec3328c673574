"""Forms of the message console: they validate operator input before any service is called."""

from __future__ import annotations

from django import forms

from messages.models import BULK_RATE_MAX, ENTITY_RE, SAVED_VIEW_NAME_MAX, SAVED_VIEW_QUERY_MAX, QueuePause
from syncadmin.lib.jsontext import json_parse
from syncadmin.lib.validation import IdListField

REASON_ATTRS = {"placeholder": "Why? (kept in the audit log)", "autocomplete": "off"}
RATE_ERRORS = {
    "invalid": "The rate is a whole number of messages per second.",
    "min_value": "The rate is at least 1 message per second (leave it empty for full speed).",
    "max_value": f"The rate is at most {BULK_RATE_MAX:,} messages per second (leave it empty for full speed).",
}


class RetryForm(forms.Form):
    reason = forms.CharField(max_length=1000, required=False, widget=forms.TextInput(attrs=REASON_ATTRS))


class RestoreForm(RetryForm):
    """Restore takes the same optional reason as retry."""


class DiscardForm(forms.Form):
    reason = forms.CharField(max_length=1000, required=True, widget=forms.TextInput(attrs=REASON_ATTRS), strip=True)


class BulkActionForm(forms.Form):
    ACTIONS = [("retry", "Retry"), ("discard", "Discard"), ("restore", "Restore")]
    SCOPES = [("selected", "the selected messages"), ("filter", "all messages matching the filter")]

    action = forms.ChoiceField(choices=ACTIONS)
    scope = forms.ChoiceField(choices=SCOPES, required=False)
    # Any possible id is accepted (whether it exists is the service's concern); "²", "-1" or 10**30 is a form error.
    select = IdListField(required=False)
    query = forms.CharField(required=False, max_length=4000)
    reason = forms.CharField(max_length=1000, required=False)
    # Throttle (messages per second): above it, the action runs as a background job at that pace.
    rate = forms.IntegerField(required=False, min_value=1, max_value=BULK_RATE_MAX, error_messages=RATE_ERRORS)
    confirmed = forms.BooleanField(required=False)

    def clean(self):
        data = super().clean()
        data["scope"] = data.get("scope") or "selected"
        if data["scope"] == "selected" and not data.get("select"):
            raise forms.ValidationError("Select at least one message, or tick “all matching the filter”.")
        if data.get("confirmed") and data.get("action") == "discard" and not (data.get("reason") or "").strip():
            self.add_error("reason", "A reason is required to discard messages.")
        return data


class BulkJobHoldForm(forms.Form):
    """Pause or resume a background bulk job: the reason is optional and kept in the audit log."""

    reason = forms.CharField(max_length=1000, required=False, widget=forms.TextInput(attrs=REASON_ATTRS))


class EditPayloadForm(forms.Form):
    payload = forms.CharField(widget=forms.Textarea(attrs={"rows": 18, "spellcheck": "false", "class": "mono"}))
    reason = forms.CharField(max_length=1000, widget=forms.TextInput(attrs=REASON_ATTRS))

    def clean_payload(self):
        value = self.cleaned_data["payload"]
        try:
            json_parse(value)
        except ValueError as exc:
            raise forms.ValidationError(f"Not valid JSON: {exc}") from exc
        return value


class GroupNoteForm(forms.Form):
    grouping = forms.ChoiceField(choices=[("reason", "reason"), ("terminal", "terminal"), ("entity", "entity")])
    key = forms.CharField(max_length=255)
    note = forms.CharField(max_length=2000, required=False)


GROUPINGS = [("reason", "reason"), ("terminal", "terminal"), ("entity", "entity")]
STATUS_CHOICES = [("new", "New"), ("investigating", "Investigating"), ("on_hold", "On hold"),
                  ("fixed", "Fixed, waiting for retry")]  # fmt: skip


class GroupForm(forms.Form):
    """Which dead-letter group a page or an action is about."""

    by = forms.ChoiceField(choices=GROUPINGS)
    key = forms.CharField(max_length=255, required=False, strip=False)


class TriageForm(GroupForm):
    status = forms.ChoiceField(choices=STATUS_CHOICES)
    owner = forms.CharField(max_length=150, required=False)
    ticket_url = forms.URLField(max_length=500, required=False, assume_scheme="https", label="Ticket link")
    note = forms.CharField(max_length=2000, required=False, widget=forms.Textarea(attrs={"rows": 3}))

    def clean_ticket_url(self):
        value = self.cleaned_data["ticket_url"]
        if value and not value.lower().startswith(("http://", "https://")):
            raise forms.ValidationError("The ticket link must be an http:// or https:// URL.")
        return value


class GroupFilterForm(forms.Form):
    """The dead-letter page's filters on the groups' triage: status and owner ("mine", "nobody", a username)."""

    by = forms.ChoiceField(choices=GROUPINGS, required=False)
    status = forms.ChoiceField(choices=[("", "Any status"), *STATUS_CHOICES], required=False)
    owner = forms.CharField(max_length=150, required=False)


class SupersededForm(forms.Form):
    """Discard the superseded dead letters of a group (by, key) or of a selection (select)."""

    by = forms.ChoiceField(choices=GROUPINGS, required=False)
    key = forms.CharField(max_length=255, required=False, strip=False)
    select = IdListField(required=False)
    reason = forms.CharField(max_length=1000, required=False)
    confirmed = forms.BooleanField(required=False)

    def clean(self):
        data = super().clean()
        if not data.get("by") and not data.get("select"):
            raise forms.ValidationError("Select at least one message, or name a dead-letter group.")
        if data.get("confirmed") and not (data.get("reason") or "").strip():
            self.add_error("reason", "A reason is required to discard messages.")
        return data


class EntityForm(forms.Form):
    """Which entity's story to show: its type (as in message types, ``<entity>.<op>``) and its key."""

    entity_type = forms.CharField(max_length=40, widget=forms.TextInput(attrs={"placeholder": "product"}))
    # Not stripped: a key is matched exactly as the terminal sent it.
    entity_key = forms.CharField(max_length=128, strip=False)

    def clean_entity_type(self):
        value = self.cleaned_data["entity_type"].strip()
        if not ENTITY_RE.match(value):
            raise forms.ValidationError("An entity type is lower-case letters, digits and _, starting with a letter.")
        return value


class SavedViewForm(forms.Form):
    name = forms.CharField(max_length=SAVED_VIEW_NAME_MAX, widget=forms.TextInput(attrs={"placeholder": "Name"}))
    shared = forms.BooleanField(required=False, label="for the team")
    query = forms.CharField(max_length=SAVED_VIEW_QUERY_MAX, required=False)


class PauseForm(forms.Form):
    """Pause one message type, entity type or terminal; the reason is required (audited, shown on the dashboard)."""

    scope = forms.ChoiceField(choices=QueuePause.Scope.choices)
    value = forms.CharField(max_length=64, strip=True, widget=forms.TextInput(attrs={"placeholder": "price.upsert"}))
    reason = forms.CharField(max_length=1000, strip=True, widget=forms.TextInput(attrs=REASON_ATTRS))


class ResumeForm(forms.Form):
    reason = forms.CharField(max_length=1000, required=False, strip=True)
