from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import pytest

from studies.models import Method, Output, Scene, Study
from tests.factories import ImageAssetFactory, MethodFactory, OutputFactory, SceneFactory, StudyFactory


@dataclass
class StudySetup:
    study: Study
    scenes: list[Scene]
    methods: list[Method]
    controls: list[Method] = field(default_factory=list)

    @property
    def rated_outputs(self) -> list[Output]:
        return list(Output.objects.filter(method__in=self.methods))


def build_study(
    *,
    methods: int = 4,
    scenes: int = 5,
    controls: bool = True,
    method_names: list[str] | None = None,
    size: tuple[int, int] = (32, 24),
    **study_fields: object,
) -> StudySetup:
    study_fields.setdefault("status", Study.Status.OPEN)
    study_fields.setdefault("trials_per_session", 10)
    study_fields.setdefault("control_rate", 0.2)
    # Balance tests start more sessions than a real target allows; a full study
    # (raters.capacity) would refuse them. Tests of a full study set their own target.
    study_fields.setdefault("ratings_per_output", 1000)
    study = StudyFactory(**study_fields)
    width, height = size
    scene_rows = [
        SceneFactory(
            study=study,
            name=f"Scene-Hidden-{i}",
            reference=ImageAssetFactory(seed=100 + i, width=width, height=height),
            input=ImageAssetFactory(seed=200 + i, width=width, height=height),
            width=width,
            height=height,
        )
        for i in range(scenes)
    ]
    names = method_names or [f"Team-{i}" for i in range(methods)]
    method_rows = [MethodFactory(study=study, name=name) for name in names]
    control_rows = []
    if controls:
        control_rows = [
            MethodFactory(study=study, name="HiddenRef-Secret", kind=Method.Kind.HIDDEN_REFERENCE),
            MethodFactory(study=study, name="LowAnchor-Secret", kind=Method.Kind.LOW_ANCHOR),
        ]
    seed = 1000
    for method in method_rows + control_rows:
        for scene in scene_rows:
            seed += 1
            OutputFactory(method=method, scene=scene, image=ImageAssetFactory(seed=seed, width=width, height=height))
    return StudySetup(study=study, scenes=scene_rows, methods=method_rows, controls=control_rows)


@pytest.fixture
def make_study() -> Callable[..., StudySetup]:
    return build_study
