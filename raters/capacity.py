"""Whether a study still needs raters (reads only).

A study is full when every output raters are rated on (not a control, its image and the
image the protocol shows beside it imported) has ``ratings_per_output`` trials counted in
its stored load (raters.models.OutputLoad: votes plus outstanding trials). A full study
starts no new session; sessions already started go on, and a trial released by an
abandoned session lowers a load again, so a study can stop being full.
"""

from __future__ import annotations

from dataclasses import dataclass

from django.db.models import Count, Q, QuerySet

from studies.models import Method, Output, Study
from studies.protocols import wording


@dataclass(frozen=True)
class Capacity:
    outputs: int  # outputs rated on
    covered: int  # of them, with their target number of trials
    target: int  # ratings_per_output

    @property
    def full(self) -> bool:
        return self.outputs > 0 and self.covered >= self.outputs

    @classmethod
    def of_loads(cls, loads: list[int], target: int) -> Capacity:
        """From the stored loads of the outputs rated on (as a session start reads them)."""
        return cls(outputs=len(loads), covered=sum(load >= target for load in loads), target=target)


def shown_outputs(*, study: Study) -> QuerySet[Output]:
    """The study's outputs raters can be shown: their image imported, and the scene's
    image the protocol shows beside them (the one definition, for assignment too)."""
    outputs = Output.objects.filter(method__study=study, image__isnull=False)
    beside = wording(study.protocol).beside_field
    if beside:
        outputs = outputs.filter(**{f"scene__{beside}__isnull": False})
    return outputs


def rated_outputs(*, study: Study) -> QuerySet[Output]:
    """Of them, those raters are rated on (controls aside)."""
    return shown_outputs(study=study).exclude(method__kind__in=Method.CONTROL_KINDS)


def study_capacity(*, study: Study) -> Capacity:
    """One query."""
    target = study.ratings_per_output
    counts = rated_outputs(study=study).aggregate(
        outputs=Count("pk"),
        covered=Count("pk", filter=Q(load__trials__gte=target)) if target > 0 else Count("pk"),
    )
    return Capacity(outputs=counts["outputs"], covered=counts["covered"], target=target)


def study_is_full(*, study: Study) -> bool:
    return study_capacity(study=study).full


__all__ = ["Capacity", "rated_outputs", "shown_outputs", "study_capacity", "study_is_full"]
