"""Forms of the message console: they validate operator input before any service is called."""

from __future__ import annotations

from django import forms

from messages.models import QueuePause
from syncadmin.lib.jsontext import json_parse
from syncadmin.lib.validation import IdListField

REASON_ATTRS = {"placeholder": "Why? (kept in the audit log)", "autocomplete": "off"}


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
    confirmed = forms.BooleanField(required=False)

    def clean(self):
        data = super().clean()
        data["scope"] = data.get("scope") or "selected"
        if data["scope"] == "selected" and not data.get("select"):
            raise forms.ValidationError("Select at least one message, or tick “all matching the filter”.")
        if data.get("confirmed") and data.get("action") == "discard" and not (data.get("reason") or "").strip():
            self.add_error("reason", "A reason is required to discard messages.")
        return data


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


class PauseForm(forms.Form):
    """Pause one message type, entity type or terminal; the reason is required (audited, shown on the dashboard)."""

    scope = forms.ChoiceField(choices=QueuePause.Scope.choices)
    value = forms.CharField(max_length=64, strip=True, widget=forms.TextInput(attrs={"placeholder": "price.upsert"}))
    reason = forms.CharField(max_length=1000, strip=True, widget=forms.TextInput(attrs=REASON_ATTRS))


class ResumeForm(forms.Form):
    reason = forms.CharField(max_length=1000, required=False, strip=True)
