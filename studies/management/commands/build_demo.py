from __future__ import annotations

import tempfile
import time
from pathlib import Path

from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError
from django.db import transaction
from django.urls import NoReverseMatch, reverse

from studies import demo
from studies.models import Study
from studies.services import study_create, study_import, study_open

DEMO_SLUG = "demo"
ADMIN_USER = "admin"
ADMIN_PASSWORD = "mosaic-demo"


class Command(BaseCommand):
    help = "Build (once) and open the demo study, create the demo admin account and print the links."

    def add_arguments(self, parser) -> None:
        parser.add_argument("--scenes", type=int, default=6, help=f"number of scenes (at most {len(demo.SCENES)})")
        parser.add_argument("--host", default="http://127.0.0.1:8000")
        parser.add_argument(
            "--simulate-raters",
            type=int,
            default=0,
            help="when building, also import the votes of N simulated raters (one of them careless) "
            "so that the results page has something to show",
        )

        parser.add_argument("--no-links", dest="links", action="store_false", help="do not print the links")

    def handle(self, *args, scenes: int, host: str, simulate_raters: int, links: bool = True, **options) -> None:
        if settings.DJANGO_ENV == "production":
            # It sets the admin account's password to one printed in the README.
            raise CommandError(
                "build_demo does not run under DJANGO_ENV=production: it creates a demo study and resets "
                f"the password of the '{ADMIN_USER}' account to a published one."
            )
        study = Study.objects.filter(slug=DEMO_SLUG).first()
        if study is None:
            started = time.monotonic()
            self.stdout.write(f"Generating the demo study ({scenes} scenes x {len(demo.DEGRADATIONS)} methods)...")
            with tempfile.TemporaryDirectory(prefix="mosaic-demo-") as tmp:
                folder = demo.write_demo_folder(Path(tmp), n_scenes=scenes)
                with transaction.atomic():
                    study = study_create(
                        title="Demo: learned smartphone ISP, perceptual track",
                        slug=DEMO_SLUG,
                        trials_per_session=20,
                        # Room for real raters beside the simulated ones' votes: a study whose
                        # outputs have their votes is full and turns new raters away.
                        ratings_per_output=5 + simulate_raters,
                        instructions=(
                            "The Results come from image-processing methods working on a phone's raw sensor data. "
                            "Look at the whole picture first, then at 100%: colours, fine texture, noise, "
                            "sharp edges and artefacts all count. The practice pairs show what the levels "
                            "look like."
                        ),
                    )
                    study_import(study=study, source=folder)
            study_open(study=study)
            if simulate_raters:
                self._simulate(study, simulate_raters)
            self.stdout.write(f"Built and opened the demo study in {time.monotonic() - started:.0f} s.")
        else:
            self.stdout.write(f"The demo study already exists ({study.status}); reusing it.")

        User = get_user_model()
        admin, _ = User.objects.get_or_create(username=ADMIN_USER, defaults={"is_staff": True, "is_superuser": True})
        admin.is_staff = admin.is_superuser = True
        admin.set_password(ADMIN_PASSWORD)
        admin.save()

        if links:
            self.stdout.write(self.style.SUCCESS("\nMosaic demo is ready."))
            self.stdout.write(demo_links(host))

    def _simulate(self, study: Study, n_raters: int) -> None:
        from analysis.services import analysis_run_now, ratings_import

        names = list(study.scenes.values_list("name", flat=True))
        summary = ratings_import(study_slug=study.slug, data=demo.simulated_votes_csv(names, n_raters=n_raters))
        analysis_run_now(study=study)
        self.stdout.write(
            f"Imported {summary.votes} votes of {n_raters} simulated raters and ran the analysis "
            "(the results page shows it; real votes from the rater link add to them)."
        )


def demo_links(host: str) -> str:
    """The demo's links and admin login, as printed."""
    study = Study.objects.filter(slug=DEMO_SLUG).first()
    jobs = reverse("admin:studies_study_jobs", args=[study.pk]) if study else "/admin/"
    return (
        f"  Rater link:  {host}{_url('raters:study', DEMO_SLUG)}\n"
        f"  Admin:       {host}/admin/   user: {ADMIN_USER}   password: {ADMIN_PASSWORD}\n"
        f"  Jobs:        {host}{jobs}   (progress of imports, PSNR/SSIM, tiles, analysis runs)\n"
        f"  Results:     {host}{_url('analysis:study-results', DEMO_SLUG)}\n"
        f"  API docs:    {host}/api/docs/\n"
    )


def _url(name: str, slug: str) -> str:
    try:
        return reverse(name, kwargs={"slug": slug})
    except NoReverseMatch:
        return f"/ (page {name} is not available)"
