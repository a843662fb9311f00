"""Serving stored images and tiles to raters.

Raters get each asset's rater copy and its tiles (studies.imaging: the uploaded pixels
and colour profile, nothing else), byte for byte as stored, under URLs that carry only a
random token, with immutable caching (a token never points to other bytes). In
production nginx sends the bytes (X-Accel-Redirect); in the embedded default Django
streams them itself.
"""

from __future__ import annotations

import mimetypes
from pathlib import Path

from django.conf import settings
from django.http import FileResponse, Http404, HttpResponse

IMMUTABLE = "public, max-age=31536000, immutable"


def media_response(relative_path: str, *, content_type: str | None = None) -> HttpResponse:
    root = Path(settings.MEDIA_ROOT).resolve()
    path = (root / relative_path).resolve()
    if root not in path.parents or not path.is_file():
        raise Http404("No such image.")
    content_type = content_type or mimetypes.guess_type(path.name)[0] or "application/octet-stream"
    prefix = settings.MOSAIC_MEDIA_ACCEL_PREFIX
    if prefix:
        response = HttpResponse(content_type=content_type)
        response["X-Accel-Redirect"] = f"{prefix.rstrip('/')}/{relative_path}"
    else:
        response = FileResponse(path.open("rb"), content_type=content_type)
        # FileResponse would otherwise add a Content-Disposition carrying the stored
        # file name; no file name reaches a rater.
        if "Content-Disposition" in response:
            del response["Content-Disposition"]
    response["Cache-Control"] = IMMUTABLE
    response["X-Content-Type-Options"] = "nosniff"
    return response
