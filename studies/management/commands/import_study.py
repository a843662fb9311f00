from __future__ import annotations

from pathlib import Path

from django.core.management.base import BaseCommand, CommandError
from django.db import transaction

from studies.importer import ImportProblems
from studies.models import Study
from studies.scales import ScalePreset
from studies.services import StudyStateError, study_create, study_import


class Command(BaseCommand):
    help = (
        "Import scenes and method outputs from a folder or zip "
        "(references/<scene>.png, optional inputs/<scene>.png, methods/<method>/<scene>.png). "
        "Creates the study when the slug is new. All or nothing."
    )

    def add_arguments(self, parser) -> None:
        parser.add_argument("slug", help="study slug (created if new)")
        parser.add_argument("source", type=Path, help="folder or .zip")
        parser.add_argument("--title", help="title of a new study (default: the slug)")
        parser.add_argument(
            "--scale", choices=ScalePreset.values, default=ScalePreset.AIM5, help="scale preset of a new study"
        )
        parser.add_argument(
            "--protocol",
            choices=Study.Protocol.values,
            default=Study.Protocol.REFERENCE,
            help="protocol of a new study",
        )

    def handle(self, *args, slug: str, source: Path, title: str | None, scale: str, protocol: str, **options) -> None:
        try:
            # One transaction around creation and import: a refused import of a new slug
            # must not leave an empty study behind.
            with transaction.atomic():
                study = Study.objects.filter(slug=slug).first()
                created = study is None
                if created:
                    study = study_create(title=title or slug, slug=slug, scale_preset=scale, protocol=protocol)
                summary = study_import(study=study, source=source)
        except (ImportProblems, StudyStateError, ValueError) as exc:
            raise CommandError(str(exc)) from None
        verb = "Created" if created else "Updated"
        self.stdout.write(
            self.style.SUCCESS(
                f"{verb} study '{study.slug}': imported {summary.scenes} scene(s), {summary.methods} method(s), "
                f"{summary.outputs} output(s). Metrics and tiles are queued."
            )
        )
