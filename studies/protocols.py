"""What each protocol shows a rater and how it words it: the one home of that wording,
for the pages, the rater API and the importer."""

from __future__ import annotations

from dataclasses import dataclass

from studies.models import Study


@dataclass(frozen=True)
class Wording:
    # The Scene field of the image shown beside the result, if any, and its label.
    beside_field: str | None
    beside_label: str
    # The question above the answer buttons, and the task as the entry page describes it.
    question: str
    task: str


RESULT_LABEL = "Result"

_WORDING = {
    Study.Protocol.REFERENCE: Wording(
        beside_field="reference",
        beside_label="Reference (DSLR)",
        question="How does the Result compare with the Reference?",
        task=(
            "You will see pairs of photos side by side: on the left the Reference (DSLR), a photo taken "
            "with a professional camera; on the right a Result produced by an image-processing method. "
            "Rate how the Result compares with the Reference."
        ),
    ),
    Study.Protocol.INPUT: Wording(
        beside_field="input",
        beside_label="Input photo",
        question="How does the Result compare with the Input photo?",
        task=(
            "You will see pairs of photos side by side: on the left the Input photo, on the right a Result "
            "computed from it. Rate how the Result compares with the Input photo."
        ),
    ),
    Study.Protocol.SINGLE: Wording(
        beside_field=None,
        beside_label="",
        question="How good is this image?",
        task="You will see one photo at a time. Rate its quality.",
    ),
}


def wording(protocol: str) -> Wording:
    return _WORDING[Study.Protocol(protocol)]
