from __future__ import annotations

import re

from django import forms

from terminals.models import Terminal

CODE_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")


class TerminalCreateForm(forms.Form):
    code = forms.CharField(max_length=64, help_text="The terminal's login name (WS-Security Username).")
    name = forms.CharField(max_length=200, required=False)
    store = forms.CharField(max_length=200, required=False)

    def clean_code(self):
        code = self.cleaned_data["code"].strip()
        if not CODE_RE.match(code):
            raise forms.ValidationError("Use letters, digits, '.', '_' or '-' (at most 64).")
        if Terminal.objects.filter(code=code).exists():
            raise forms.ValidationError("A terminal with this code exists already.")
        return code


class TerminalEditForm(forms.Form):
    name = forms.CharField(max_length=200, required=False)
    store = forms.CharField(max_length=200, required=False)


class ReasonForm(forms.Form):
    reason = forms.CharField(max_length=1000, required=False)
