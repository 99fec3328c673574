from django import forms
from django.core.validators import RegexValidator

from messages.models import ENTITY_RE


class CellForm(forms.Form):
    terminal = forms.CharField(max_length=64)
    # Any reported type can be looked at; a resync checks the type is well-formed.
    entity_type = forms.CharField(max_length=40)


class ResyncForm(CellForm):
    reason = forms.CharField(max_length=2000, required=False)


class RecountForm(forms.Form):
    # Both blank: every counter. Terminal admins only.
    terminal = forms.CharField(max_length=64, required=False)
    entity_type = forms.CharField(
        max_length=40, required=False, validators=[RegexValidator(ENTITY_RE, "not a valid entity type")]
    )
    reason = forms.CharField(max_length=2000, required=False)


class ExplainForm(forms.Form):
    note = forms.CharField(max_length=2000, widget=forms.Textarea(attrs={"rows": 2}))


class AlertRuleForm(forms.Form):
    enabled = forms.BooleanField(required=False)
    threshold = forms.FloatField(min_value=0, max_value=1_000_000)
    for_minutes = forms.IntegerField(
        min_value=0, max_value=1440, label="For (minutes)",
        help_text="How long the condition must hold before an incident opens, and be gone before it clears.",
    )  # fmt: skip
    reason = forms.CharField(max_length=2000, required=False)
