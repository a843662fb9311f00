from __future__ import annotations

from django.db import models

from studies.models import Study


class AnalysisRun(models.Model):
    """A stored analysis of a study: the tables, the estimators and their versions.

    Results are kept as JSON records so that a published table can be traced to the
    votes and estimator versions that produced it, even after more votes arrive.
    """

    class Status(models.TextChoices):
        PENDING = "pending", "Pending"
        RUNNING = "running", "Running"
        DONE = "done", "Done"
        FAILED = "failed", "Failed"

    STAGES = ("reading the votes", "computing the statistics", "storing the results")

    study = models.ForeignKey(Study, on_delete=models.CASCADE, related_name="analysis_runs")
    # 1, 2, 3 within the study, as an organizer cites a run ("run 3"); the pk is global.
    number = models.PositiveIntegerField(default=0)
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.PENDING)
    # What a running run is doing (one of STAGES), for the admin's progress bar.
    stage = models.CharField(max_length=40, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    n_votes = models.PositiveIntegerField(default=0)
    params = models.JSONField(default=dict, blank=True)
    estimators = models.JSONField(default=dict, blank=True)
    results = models.JSONField(default=dict, blank=True)
    error = models.TextField(blank=True)

    class Meta:
        ordering = ["-created_at"]
        constraints = [
            models.UniqueConstraint(
                fields=["study", "number"], condition=models.Q(number__gt=0), name="analysisrun_unique_number"
            )
        ]

    def __str__(self) -> str:
        return f"analysis run {self.number} of {self.study} ({self.status})"
