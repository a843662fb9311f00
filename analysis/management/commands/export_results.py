"""manage.py export_results <study-slug> <dir>: tables, LaTeX and plots for the report."""

from __future__ import annotations

import json
from pathlib import Path

from django.core.management.base import BaseCommand, CommandError, CommandParser

from analysis.exports import write_exports
from analysis.models import AnalysisRun
from analysis.services import analysis_run_now
from studies.models import Study


class Command(BaseCommand):
    help = (
        "Analyse the study's current votes (stored as a new analysis run) and write "
        "ratings.csv, raters.csv, leaderboard/image_mos/correlations/pairwise CSVs (screened, "
        "plus *_all_raters.csv), leaderboard.tex, MOS and PSNR/SSIM-vs-MOS plots (PNG, SVG) "
        "and run.json into DIR."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("slug", help="study slug")
        parser.add_argument("directory", type=Path, help="output directory (created if needed)")
        parser.add_argument(
            "--run",
            type=int,
            default=None,
            help="export this stored analysis run instead of analysing the votes again",
        )
        parser.add_argument(
            "--params",
            default="{}",
            help='analysis parameters as JSON, e.g. \'{"n_boot": 5000, "confidence": 0.99}\'',
        )

    def handle(self, *args, **options) -> None:
        study = Study.objects.filter(slug=options["slug"]).first()
        if study is None:
            raise CommandError(f"no study with slug {options['slug']!r}")
        if options["run"] is not None:
            run = AnalysisRun.objects.filter(study=study, pk=options["run"]).first()
            if run is None:
                raise CommandError(f"study {study.slug!r} has no analysis run {options['run']}")
        else:
            try:
                params = json.loads(options["params"])
            except json.JSONDecodeError as exc:
                raise CommandError(f"--params is not JSON: {exc}") from None
            try:
                run = analysis_run_now(study=study, params=params)
            except ValueError as exc:
                raise CommandError(str(exc)) from None
        if run.status != AnalysisRun.Status.DONE:
            raise CommandError(f"analysis run {run.pk} is {run.status}: {run.error or 'not done'}")
        paths = write_exports(run, options["directory"])
        for path in paths:
            self.stdout.write(str(path))
        self.stdout.write(
            self.style.SUCCESS(
                f"Analysis run {run.pk} of {study.slug!r} ({run.n_votes} votes): "
                f"{len(paths)} files in {options['directory']}"
            )
        )
