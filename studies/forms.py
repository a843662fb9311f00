from __future__ import annotations

import zipfile
from pathlib import Path

from django import forms
from django.conf import settings
from django.utils.html import escape

from studies.imaging import EXTENSIONS
from studies.protocols import wording
from studies.scales import levels_for


def _within_upload_limit(upload):
    if upload.size > settings.MOSAIC_MAX_UPLOAD_BYTES:
        raise forms.ValidationError(
            f"The file is {upload.size / 1e9:.1f} GB; the limit is {settings.MOSAIC_MAX_UPLOAD_BYTES / 1e9:.1f} GB."
        )
    return upload


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
        archive = _within_upload_limit(self.cleaned_data["archive"])
        if not archive.name.lower().endswith(".zip"):
            raise forms.ValidationError("Upload a .zip file of the study folder.")
        # Checked now (its end record only): a file that is not a zip at all is refused at
        # once, before a job is queued for it.
        if not zipfile.is_zipfile(archive):
            raise forms.ValidationError(f"{archive.name}: not a zip file. Upload a .zip file of the study folder.")
        archive.seek(0)
        return archive


class MethodsZipForm(ImportZipForm):
    """A late team's outputs: the import layout without references."""

    archive = forms.FileField(
        label="Zip of the new method(s)",
        help_text=escape(
            "methods/<method>/<scene>.png, one per scene of the study, optional methods.csv "
            "(method,kind,runtime_s,framework)."
        ),
    )


class OutputReplaceForm(forms.Form):
    image = forms.FileField(
        label="New image",
        help_text="PNG, JPEG, TIFF or WebP, of the reference's size. Stored under a new name that says nothing "
        "of the method.",
    )

    def clean_image(self):
        image = _within_upload_limit(self.cleaned_data["image"])
        if Path(image.name).suffix.lower() not in EXTENSIONS:
            raise forms.ValidationError(
                f"{image.name}: {Path(image.name).suffix or 'no extension'} is not an accepted format "
                "(PNG, JPEG, TIFF or WebP)."
            )
        return image


class StudyAdminForm(forms.ModelForm):
    """The study page's form: a new scale preset is copied onto the study (drafts only:
    the admin shows it read-only once the study has opened)."""

    # No Meta: the admin builds the form for its fields from this class.

    def clean(self):
        data = super().clean()
        preset = data.get("scale_preset")
        study = self.instance
        if preset and (study.pk is None or "scale_preset" in self.changed_data):
            # Before the model's own checks, which compare the smallest difference with the scale.
            study.scale_levels = levels_for(preset)
        protocol = data.get("protocol")
        if study.pk is not None and "protocol" in self.changed_data and protocol:
            beside = wording(protocol).beside_field
            missing = (
                list(study.scenes.filter(**{f"{beside}__isnull": True}).values_list("name", flat=True))
                if beside
                else []
            )
            if missing:
                shown = ", ".join(missing[:5]) + (f" and {len(missing) - 5} more" if len(missing) > 5 else "")
                self.add_error(
                    "protocol",
                    f"This protocol shows each output beside the scene's {beside} image, and {len(missing)} "
                    f"scene(s) have none: {shown}.",
                )
        return data


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
