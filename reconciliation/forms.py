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
