"""manage.py import_ratings <study-slug> <csv>: analyse votes collected elsewhere."""

from __future__ import annotations

from pathlib import Path

from django.core.management.base import BaseCommand, CommandError, CommandParser

from analysis.imports import RatingsImportError
from analysis.services import ratings_import
from studies.models import Study
from studies.scales import ScalePreset


class Command(BaseCommand):
    help = (
        "Import votes from a CSV with columns rater,scene,method,score (optional response_ms). "
        "A new slug creates the study. Every problem is listed and nothing is imported "
        "until the file is clean."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("slug", help="study slug; created when it does not exist")
        parser.add_argument("csv", type=Path, help="CSV file of votes ('-' is not accepted)")
        parser.add_argument("--title", default="", help="title of a new study (default: the slug)")
        parser.add_argument(
            "--scale",
            default=ScalePreset.AIM5.value,
            choices=[p.value for p in ScalePreset],
            help="scale preset of a new study (an existing study keeps its own scale)",
        )
        parser.add_argument(
            "--protocol",
            default=Study.Protocol.REFERENCE.value,
            choices=[p.value for p in Study.Protocol],
            help="protocol of a new study",
        )

    def handle(self, *args, **options) -> None:
        path: Path = options["csv"]
        try:
            data = path.read_bytes()
        except OSError as exc:
            raise CommandError(f"cannot read {path}: {exc.strerror or exc}") from None
        try:
            summary = ratings_import(
                study_slug=options["slug"],
                data=data,
                title=options["title"],
                scale_preset=options["scale"],
                protocol=options["protocol"],
            )
        except RatingsImportError as exc:
            self.stderr.write(exc.report())
            raise CommandError(f"{path}: {len(exc.problems)} problem(s), nothing was imported") from None
        created = "created" if summary.study_created else "existing"
        self.stdout.write(
            self.style.SUCCESS(
                f"Imported {summary.votes} votes into {created} study {summary.study.slug!r}: "
                f"{summary.raters_created} new raters, {summary.scenes_created} new scenes, "
                f"{summary.methods_created} new methods, {summary.outputs_created} new outputs."
            )
        )
