"""Rating scale presets.

A study copies its preset's levels when it is created, so editing a preset later never
changes what a running or finished study asked its raters.
"""

from __future__ import annotations

from django.db import models


class ScalePreset(models.TextChoices):
    AIM5 = "aim5", "AIM 2020 Learned ISP, 5 levels (vs. DSLR reference)"
    ACR5 = "acr5", "ITU-T P.910 ACR, 5 levels"
    DCR5 = "dcr5", "ITU-T P.910 DCR, 5 levels (impairment)"
    PIRM4 = "pirm4", "PIRM 2018, 4 levels (vs. input photo)"


# Each level: (score, label). Highest score is best on every scale.
SCALE_LEVELS: dict[str, list[tuple[int, str]]] = {
    ScalePreset.AIM5: [
        (5, "Comparable image quality"),
        (4, "Slightly worse"),
        (3, "Notably worse"),
        (2, "Poor image quality"),
        (1, "Completely corrupted image"),
    ],
    ScalePreset.ACR5: [
        (5, "Excellent"),
        (4, "Good"),
        (3, "Fair"),
        (2, "Poor"),
        (1, "Bad"),
    ],
    ScalePreset.DCR5: [
        (5, "Imperceptible"),
        (4, "Perceptible but not annoying"),
        (3, "Slightly annoying"),
        (2, "Annoying"),
        (1, "Very annoying"),
    ],
    ScalePreset.PIRM4: [
        (4, "Much better than the input"),
        (3, "Better than the input"),
        (2, "Same as the input"),
        (1, "Worse than the input"),
    ],
}


def levels_for(preset: str) -> list[dict[str, object]]:
    """The preset's levels as stored on a study: best first, JSON-serialisable."""
    return [{"score": score, "label": label} for score, label in SCALE_LEVELS[preset]]
