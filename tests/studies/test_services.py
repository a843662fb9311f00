from __future__ import annotations

import pytest

from studies.models import Study
from studies.services import StudyStateError, study_close, study_create, study_open
from tests.factories import OutputFactory, StudyFactory

pytestmark = pytest.mark.django_db


def test_empty_study_cannot_open():
    study = StudyFactory()
    with pytest.raises(StudyStateError, match="no scenes; it has no methods"):
        study_open(study=study)


def test_closing_a_draft_is_refused():
    with pytest.raises(StudyStateError, match="only an open study can be closed"):
        study_close(study=StudyFactory())


def test_opening_twice_keeps_the_first_opening_time():
    study = StudyFactory()
    OutputFactory(method__study=study)
    first = study_open(study=study).opened_at
    assert study_open(study=study).opened_at == first


def test_unknown_preset_or_protocol_is_refused():
    with pytest.raises(ValueError, match="unknown scale preset 'x'"):
        study_create(title="a", slug="a", scale_preset="x")
    with pytest.raises(ValueError, match="unknown protocol 'y'"):
        study_create(title="a", slug="a", protocol="y")
    assert not Study.objects.exists()


@pytest.mark.parametrize(
    ("preset", "top", "bottom", "count"),
    [
        ("aim5", "Comparable image quality", "Completely corrupted image", 5),
        ("acr5", "Excellent", "Bad", 5),
        ("dcr5", "Imperceptible", "Very annoying", 5),
        ("pirm4", "Much better than the input", "Worse than the input", 4),
    ],
)
def test_presets_have_their_levels(preset, top, bottom, count):
    study = study_create(title=preset, slug=preset, scale_preset=preset)
    assert len(study.scale_levels) == count
    assert study.scale_levels[0]["label"] == top and study.scale_levels[-1]["label"] == bottom
    assert (study.scale_min, study.scale_max) == (1, count)
