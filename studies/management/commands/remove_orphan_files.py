from __future__ import annotations

from datetime import timedelta

from django.core.management.base import BaseCommand

from studies.services import media_orphans_remove


class Command(BaseCommand):
    help = (
        "Remove image files, rater copies and tile pyramids that no asset refers to, and the "
        "temporary files of writes that never finished (left by an import or worker that was "
        "killed), when older than --older-than-hours."
    )

    def add_arguments(self, parser) -> None:
        parser.add_argument(
            "--older-than-hours",
            type=float,
            default=24.0,
            help="leave younger files alone: an import still running has written files it has not committed yet "
            "(default 24)",
        )
        parser.add_argument("--dry-run", action="store_true", help="list what would be removed, remove nothing")

    def handle(self, *args, older_than_hours: float, dry_run: bool, **options) -> None:
        removed = media_orphans_remove(older_than=timedelta(hours=older_than_hours), dry_run=dry_run)
        for name in removed:
            self.stdout.write(name)
        verb = "Would remove" if dry_run else "Removed"
        self.stdout.write(self.style.SUCCESS(f"{verb} {len(removed)} orphaned file(s) or folder(s)."))
