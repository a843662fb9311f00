from __future__ import annotations

import numpy as np
import pytest
from django.core.management import call_command
from skimage.metrics import structural_similarity

from analysis.models import AnalysisRun
from raters.models import Rating
from studies import demo
from studies.models import Method, Output, Study


def test_demo_scenes_are_two_megapixel_colour_photos_with_texture():
    image = demo.scene_image("coffee", seed=1)
    assert image.shape == (1200, 1800, 3) and image.shape[0] * image.shape[1] >= 2_000_000
    assert image.std(axis=(0, 1)).min() > 20  # real spread in every channel
    assert not np.allclose(image[..., 0], image[..., 1], atol=10)  # colour, not grey


def test_demo_degradations_have_their_stated_quality_order():
    reference = demo.scene_image("astronaut", seed=2)[:400, :600]
    scores = []
    for index, how in enumerate(demo.DEGRADATIONS):
        degraded = demo.degrade(demo.scene_image("astronaut", seed=2), how, seed=index)[:400, :600]
        scores.append(structural_similarity(reference, degraded, channel_axis=2, data_range=255))
    assert scores == sorted(scores, reverse=True)
    kinds = [how.kind for how in demo.DEGRADATIONS]
    assert kinds[0] == Method.Kind.HIDDEN_REFERENCE and kinds[-1] == Method.Kind.LOW_ANCHOR
    assert kinds.count(Method.Kind.SUBMISSION) >= 6


@pytest.mark.django_db(transaction=True)
def test_build_demo_builds_once_and_runs_twice(capsys):
    call_command("build_demo", "--scenes", "2", "--simulate-raters", "3")
    first = capsys.readouterr().out
    study = Study.objects.get(slug="demo")
    assert study.status == Study.Status.OPEN
    assert study.scenes.count() == 2 and study.methods.count() == len(demo.DEGRADATIONS)
    assert Output.objects.filter(method__study=study, metric_status="done").count() == 2 * len(demo.DEGRADATIONS)
    assert "http://127.0.0.1:8000/s/demo/" in first and "password: mosaic-demo" in first
    assert "http://127.0.0.1:8000/analysis/demo/results/" in first
    assert Rating.objects.filter(trial__session__study=study).count() == 3 * 2 * len(demo.DEGRADATIONS)
    run = AnalysisRun.objects.get(study=study)
    assert run.status == AnalysisRun.Status.DONE and run.n_votes == 48
    from raters.capacity import study_capacity

    assert not study_capacity(study=study).full  # the simulated votes leave room for real raters

    call_command("build_demo", "--scenes", "2")
    assert "already exists" in capsys.readouterr().out
    assert Study.objects.filter(slug="demo").count() == 1
    from django.contrib.auth.models import User

    admin = User.objects.get(username="admin")
    assert admin.is_superuser and admin.check_password("mosaic-demo")


@pytest.mark.django_db
def test_build_demo_refuses_to_run_in_production_and_changes_nothing(settings, django_user_model):
    from django.core.management import CommandError

    admin = django_user_model.objects.create_superuser("admin", "a@example.org", "a-real-password-0123")
    settings.DJANGO_ENV = "production"
    with pytest.raises(CommandError, match="DJANGO_ENV=production"):
        call_command("build_demo", "--scenes", "2")
    admin.refresh_from_db()
    assert admin.check_password("a-real-password-0123")
    assert not Study.objects.exists()
