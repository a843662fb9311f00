from __future__ import annotations

from django import forms


class ExclusionForm(forms.Form):
    """The reason an organizer gives when excluding sessions or raters from the analysis."""

    reason = forms.CharField(
        max_length=500,
        error_messages={"required": "Give a reason for the exclusion."},
        widget=forms.TextInput(attrs={"size": 60, "autofocus": True}),
        help_text="Shown on the results page and in the exports, e.g. “pilot run” or “organizer's own test”.",
    )

    def clean_reason(self) -> str:
        reason = " ".join(self.cleaned_data["reason"].split())
        if not reason:
            raise forms.ValidationError("Give a reason for the exclusion.")
        return reason
