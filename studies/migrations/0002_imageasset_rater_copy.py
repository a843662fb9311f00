"""Split each image into the original (kept byte-exact) and the rater copy.

The old ``file`` column (the upload as stored) becomes ``original``; a new ``file`` holds
the rater copy, made here for every existing asset. Old tile pyramids were built from the
originals, with their metadata, and shared between equal files: they are forgotten (tiles
pending, the viewer shows the rater copy) until rebuilt, e.g. by queueing
``studies.tasks.image_tiles_build`` for each asset.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

from django.core.files.storage import default_storage
from django.db import migrations, models


def make_rater_copies(apps, schema_editor) -> None:
    from studies.imaging import rater_copy_bytes, rater_copy_name, store_content

    ImageAsset = apps.get_model("studies", "ImageAsset")
    for asset in ImageAsset.objects.all().iterator():
        original = Path(default_storage.path(asset.original.name))
        if original.is_file():
            copy = rater_copy_bytes(original)
            sha = hashlib.sha256(copy).hexdigest()
            store_content(rater_copy_name(sha), sha256=sha, source=copy)
            asset.file = rater_copy_name(sha)
        asset.tile_status, asset.tiles_dir = "pending", ""
        asset.save(update_fields=["file", "tile_status", "tiles_dir"])


class Migration(migrations.Migration):
    dependencies = [("studies", "0001_initial")]

    operations = [
        migrations.RenameField("imageasset", "file", "original"),
        migrations.AddField(
            model_name="imageasset",
            name="file",
            field=models.FileField(blank=True, max_length=300, upload_to=""),
        ),
        migrations.RunPython(make_rater_copies, migrations.RunPython.noop),
    ]
