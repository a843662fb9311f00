from __future__ import annotations

from django import forms
from django.conf import settings
from django.utils.html import escape


class ImportZipForm(forms.Form):
    archive = forms.FileField(
        label="Zip of the study folder",
        # Escaped: Django renders help text as HTML, where "<scene>" would be an unknown tag.
        help_text=escape(
            "references/<scene>.png, optional inputs/<scene>.png, methods/<method>/<scene>.png, "
            "optional methods.csv (method,kind,runtime_s,framework)."
        ),
    )

    def clean_archive(self):
        archive = self.cleaned_data["archive"]
        if archive.size > settings.MOSAIC_MAX_UPLOAD_BYTES:
            raise forms.ValidationError(
                f"The file is {archive.size / 1e9:.1f} GB; "
                f"the limit is {settings.MOSAIC_MAX_UPLOAD_BYTES / 1e9:.1f} GB."
            )
        if not archive.name.lower().endswith(".zip"):
            raise forms.ValidationError("Upload a .zip file of the study folder.")
        return archive


class PlanForm(forms.Form):
    """Assumptions of the planner (analysis.stats.planner.plan_study) on a study page."""

    difference = forms.FloatField(min_value=0.01, max_value=4, initial=0.2, help_text="MOS difference to separate.")
    rater_bias_sd = forms.FloatField(min_value=0, max_value=2, initial=0.3, label="Rater bias (SD)")
    inconsistency_low = forms.FloatField(min_value=0.01, max_value=3, initial=0.4, label="Rater noise SD from")
    inconsistency_high = forms.FloatField(min_value=0.01, max_value=3, initial=1.0, label="to")
    scene_sd = forms.FloatField(min_value=0, max_value=2, initial=0.3, label="Scene effect (SD)")
    use_votes = forms.BooleanField(required=False, label="Use the votes stored so far as a pilot")
    reps = forms.IntegerField(min_value=2, max_value=40, initial=4, label="Simulated studies per policy")

    def clean(self):
        data = super().clean()
        low, high = data.get("inconsistency_low"), data.get("inconsistency_high")
        if low is not None and high is not None and low > high:
            self.add_error("inconsistency_high", "Must be at least the lower bound.")
        return data
