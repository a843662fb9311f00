from __future__ import annotations

from django.db import models
from django.utils import timezone

from studies.models import Output, Study


class Rater(models.Model):
    class Platform(models.TextChoices):
        DIRECT = "direct", "Direct link"
        PROLIFIC = "prolific", "Prolific"
        MTURK = "mturk", "Amazon MTurk"
        IMPORTED = "imported", "Imported ratings"

    platform = models.CharField(max_length=10, choices=Platform.choices, default=Platform.DIRECT)
    # Empty for direct raters, who are recognised by a cookie instead.
    external_id = models.CharField(max_length=200, blank=True)
    screen_width = models.PositiveIntegerField(null=True, blank=True)
    screen_height = models.PositiveIntegerField(null=True, blank=True)
    viewport_width = models.PositiveIntegerField(null=True, blank=True)
    viewport_height = models.PositiveIntegerField(null=True, blank=True)
    device_pixel_ratio = models.FloatField(null=True, blank=True)
    user_agent = models.TextField(blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    # Set by an organizer in the admin (an organizer's own test account, a known bad
    # actor): every session of this rater leaves the analysis. Empty: not excluded.
    excluded_reason = models.TextField(blank=True)
    excluded_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["platform", "external_id"],
                condition=~models.Q(external_id=""),
                name="rater_unique_external_id",
            )
        ]

    def __str__(self) -> str:
        return f"{self.platform}:{self.external_id or self.pk}"


class SessionStatus(models.TextChoices):
    TRAINING = "training", "Training"
    RATING = "rating", "Rating"
    COMPLETE = "complete", "Complete"
    ABANDONED = "abandoned", "Abandoned"


# A session in one of these holds outstanding trials, and is abandoned once idle too long.
ACTIVE_STATUSES = (SessionStatus.TRAINING, SessionStatus.RATING)


class Session(models.Model):
    Status = SessionStatus
    ACTIVE_STATUSES = ACTIVE_STATUSES

    rater = models.ForeignKey(Rater, on_delete=models.CASCADE, related_name="sessions")
    study = models.ForeignKey(Study, on_delete=models.CASCADE, related_name="sessions")
    # Opaque bearer token: the only handle a rater's browser holds.
    token = models.CharField(max_length=64, unique=True)
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.TRAINING)
    completion_code = models.CharField(max_length=32, blank=True)
    platform_study_id = models.CharField(max_length=200, blank=True)
    platform_session_id = models.CharField(max_length=200, blank=True)
    started_at = models.DateTimeField(auto_now_add=True)
    # Written at most every minute, by a request for the next trial or a vote
    # (raters.services): it only decides abandonment, an hour away by default.
    last_seen_at = models.DateTimeField(default=timezone.now)
    completed_at = models.DateTimeField(null=True, blank=True)
    # Set by an organizer in the admin (a pilot run, an organizer's test session): the
    # session's votes stay stored but leave the analysis. Empty: not excluded.
    excluded_reason = models.TextField(blank=True)
    excluded_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["rater", "study"], name="session_one_per_rater_study")]
        indexes = [
            # Every session start looks for the study's abandoned sessions: only the active
            # ones are indexed, so the lookup stays small however many sessions finished.
            models.Index(
                fields=["study", "last_seen_at"],
                condition=models.Q(status__in=ACTIVE_STATUSES),
                name="session_active_last_seen",
            )
        ]

    def __str__(self) -> str:
        return f"session {self.pk} ({self.status})"


class Trial(models.Model):
    class Kind(models.TextChoices):
        TRAINING = "training", "Training"
        RATING = "rating", "Rating"
        CONTROL = "control", "Control"

    # The trials whose votes count (controls are rated like the rest); training votes never do.
    COUNTED_KINDS = (Kind.RATING, Kind.CONTROL)

    session = models.ForeignKey(Session, on_delete=models.CASCADE, related_name="trials")
    output = models.ForeignKey(Output, on_delete=models.PROTECT, related_name="trials")
    position = models.PositiveIntegerField()
    kind = models.CharField(max_length=10, choices=Kind.choices, default=Kind.RATING)
    # Random public handle of the trial, used in rater URLs and JSON.
    token = models.CharField(max_length=40, unique=True)
    # Set when the session is abandoned past its timeout and the output is handed to
    # another rater: a released trial no longer counts as an outstanding assignment.
    released_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["session", "position"]
        constraints = [models.UniqueConstraint(fields=["session", "position"], name="trial_unique_position")]

    def __str__(self) -> str:
        return f"trial {self.position} of session {self.session_id}"


class OutputLoad(models.Model):
    """How many trials of an output count towards its coverage: those of a counted kind
    (rating, control) that are outstanding or answered. A released trial that was never
    answered no longer counts.

    Every session start reads these under the study lock, which every other start of the
    study waits for: a stored count keeps that read the same size however many trials the
    study holds. raters.services keeps them with every change to the trials: assignment,
    release, reclaim, and the import of ratings.
    """

    output = models.OneToOneField(Output, primary_key=True, on_delete=models.CASCADE, related_name="load")
    trials = models.PositiveIntegerField(default=0)

    def __str__(self) -> str:
        return f"load {self.trials} of output {self.output_id}"


class Rating(models.Model):
    """One vote. Append-only: never updated or deleted (see raters.services)."""

    trial = models.OneToOneField(Trial, on_delete=models.PROTECT, related_name="rating")
    score = models.SmallIntegerField()
    response_ms = models.PositiveIntegerField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    def __str__(self) -> str:
        return f"{self.score} for {self.trial}"
