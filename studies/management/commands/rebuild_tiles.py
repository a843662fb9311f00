from __future__ import annotations

from django.core.management.base import BaseCommand, CommandError

from studies.models import Study
from studies.services import StudyStateError, study_tiles_rebuild


class Command(BaseCommand):
    help = (
        "Rebuild a study's tile pyramids in the format new ones get (lossless WebP; PNG for "
        "16-bit images or with MOSAIC_TILE_FORMAT=png): pyramids built with PNG tiles before "
        "keep working, this only makes them smaller. Not while the study is open."
    )

    def add_arguments(self, parser) -> None:
        parser.add_argument("slug", help="the study's slug")

    def handle(self, *args, slug: str, **options) -> None:
        study = Study.objects.filter(slug=slug).first()
        if study is None:
            raise CommandError(f"no study with slug {slug!r}")
        try:
            rebuilt = study_tiles_rebuild(study=study)
        except StudyStateError as error:
            raise CommandError(str(error)) from None
        self.stdout.write(self.style.SUCCESS(f"Rebuilt {rebuilt} tile pyramid(s) of '{study.title}'."))
