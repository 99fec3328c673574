from __future__ import annotations

import re

from django import forms

from terminals.models import Terminal
from terminals.store_hours import zone_or_none

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
    # The store's opening hours (the "no sales while open" alert): all three, or none.
    time_zone = forms.CharField(
        max_length=64, required=False, label="Time zone", help_text="The store's IANA time zone, e.g. Pacific/Auckland."
    )
    opens_at = forms.TimeField(required=False, label="Opens at", help_text="Local time, e.g. 08:00.")
    closes_at = forms.TimeField(
        required=False, label="Closes at", help_text="Local time; before the opening time: open past midnight."
    )

    def clean_time_zone(self):
        name = self.cleaned_data["time_zone"].strip()
        if name and zone_or_none(name) is None:
            raise forms.ValidationError("Not a time zone: use an IANA name such as Europe/Paris.")
        return name

    def clean(self):
        data = super().clean()
        hours = [data.get("time_zone"), data.get("opens_at"), data.get("closes_at")]
        if not self.errors and any(hours) and not all(hours):
            raise forms.ValidationError("Give the time zone, the opening and the closing time together (or none).")
        if not self.errors and all(hours) and data["opens_at"] == data["closes_at"]:
            self.add_error("closes_at", "The closing time must differ from the opening time.")
        return data


class ReasonForm(forms.Form):
    reason = forms.CharField(max_length=1000, required=False)
