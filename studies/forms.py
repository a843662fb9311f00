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
