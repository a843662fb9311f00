from __future__ import annotations

import numpy as np
import pytest

from tests.factories import (
    MethodFactory,
    OutputFactory,
    RaterFactory,
    RatingFactory,
    SceneFactory,
    SessionFactory,
    StudyFactory,
    TrialFactory,
)


@pytest.fixture
def eager_celery(monkeypatch: pytest.MonkeyPatch) -> None:
    """Run queued tasks in-process even on the CI pass that has a real broker."""
    from config.celery import app

    monkeypatch.setitem(app.conf, "task_always_eager", True)


@pytest.fixture
def close_study():
    """Alpha and Beta close, Gamma far behind; seven of thirteen raters fail the controls.

    Every rater votes on the teams with the same spread, but seven rate the hidden
    reference "completely corrupted" (1) on two of four scenes: the control rule flags
    them, and the leaderboard then rests on fewer than half of the raters.
    """
    rng = np.random.default_rng(3)
    study = StudyFactory(slug="close", title="Close study", ratings_per_output=13)
    scenes = [SceneFactory(study=study, name=f"s{i}", reference=None) for i in range(4)]
    sessions = [SessionFactory(study=study, rater=RaterFactory(external_id=f"r{i:02d}")) for i in range(13)]
    true = {"Alpha": 4.0, "Beta": 3.8, "Gamma": 2.0}
    for name in ("Alpha", "Beta", "Gamma", "Reference"):
        kind = "hidden_reference" if name == "Reference" else "submission"
        method = MethodFactory(study=study, name=name, kind=kind)
        for j, scene in enumerate(scenes):
            output = OutputFactory(method=method, scene=scene, image=None, psnr=25.0 + j, ssim=0.8)
            for i, session in enumerate(sessions):
                if name == "Reference":
                    score = 1 if i >= 6 and j < 2 else 5
                else:
                    score = int(np.clip(np.rint(true[name] + rng.normal(0, 0.8)), 1, 5))
                RatingFactory(trial=TrialFactory(session=session, output=output), score=score)
    return study
