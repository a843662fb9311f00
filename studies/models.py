from __future__ import annotations

from django.conf import settings
from django.core.exceptions import ValidationError
from django.core.validators import MinValueValidator, RegexValidator
from django.db import models
from django.utils.functional import cached_property

from studies.scales import ScalePreset


class ImageAsset(models.Model):
    """A stored image file (reference, input or output) and its tile pyramid.

    Rater-facing URLs name only the asset's random token, so neither the method nor the
    scene can be read from a URL.
    """

    class TileStatus(models.TextChoices):
        PENDING = "pending", "Pending"
        DONE = "done", "Done"
        FAILED = "failed", "Failed"

    # One random token per use of a file, even when two uses share bytes (the hidden
    # reference is the reference): equal URLs would tell a rater which is which.
    token = models.CharField(max_length=40, unique=True)
    # Of the original.
    sha256 = models.CharField(max_length=64, db_index=True)
    # As uploaded, byte-exact, content-addressed (images/<sha[:2]>/<sha>.<ext>): for
    # organizers and exports. Never sent to a rater.
    original = models.FileField(max_length=300)
    # What a rater's browser gets, and the source of the tiles: a lossless PNG of the same
    # decoded pixels with the ICC profile only, and random padding that makes its bytes
    # differ from every other asset's (studies.imaging.rater_copy_bytes).
    file = models.FileField(max_length=300, blank=True)
    size_bytes = models.BigIntegerField(default=0)  # of the original
    content_type = models.CharField(max_length=40)  # of the original; the rater copy is PNG
    width = models.PositiveIntegerField()
    height = models.PositiveIntegerField()
    tile_status = models.CharField(max_length=10, choices=TileStatus.choices, default=TileStatus.PENDING)
    tile_error = models.TextField(blank=True)
    # Deep Zoom pyramid of the rater copy, one per asset (tiles/<rater copy's sha>/), each
    # tile padded like the copy: two assets never share tile bytes.
    tiles_dir = models.CharField(max_length=300, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    def __str__(self) -> str:
        return self.token


class MTurkSite(models.TextChoices):
    PRODUCTION = "https://www.mturk.com", "MTurk (paid HITs)"
    SANDBOX = "https://workersandbox.mturk.com", "MTurk sandbox (tests)"


class Study(models.Model):
    MTurkSite = MTurkSite

    class Status(models.TextChoices):
        DRAFT = "draft", "Draft"
        OPEN = "open", "Open"
        CLOSED = "closed", "Closed"

    class Allocation(models.TextChoices):
        UNIFORM = "uniform", "Uniform: every output topped up equally"
        ADAPTIVE = "adaptive", "Adaptive: votes go where the ranking is undecided"

    class Protocol(models.TextChoices):
        REFERENCE = "reference", "Output beside the reference (AIM)"
        INPUT = "input", "Output beside the input photo (PIRM)"
        SINGLE = "single", "Output alone, no reference (ACR)"

    title = models.CharField(max_length=200)
    slug = models.SlugField(max_length=80, unique=True)
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.DRAFT)
    protocol = models.CharField(max_length=10, choices=Protocol.choices, default=Protocol.REFERENCE)
    scale_preset = models.CharField(max_length=10, choices=ScalePreset.choices, default=ScalePreset.AIM5)
    # Copied from the preset on creation (studies.services.study_create) and never
    # rewritten afterwards: a running study must keep asking the same question.
    scale_levels = models.JSONField(default=list, blank=True, editable=False)
    ratings_per_output = models.PositiveIntegerField(default=10)
    trials_per_session = models.PositiveIntegerField(default=30)
    control_rate = models.FloatField(
        default=0.1, help_text="Fraction of a session's trials that are controls (hidden reference, low anchor)."
    )
    seed = models.BigIntegerField(default=0, help_text="Seed for assignment shuffles and bootstrap.")
    allocation = models.CharField(max_length=10, choices=Allocation.choices, default=Allocation.UNIFORM)
    warmup_votes = models.PositiveIntegerField(
        default=2,
        validators=[MinValueValidator(2)],
        help_text="Votes every output gets before adaptive allocation weighs outputs (at least 2).",
    )
    smallest_difference = models.FloatField(
        default=0.1,
        help_text="Smallest MOS difference of interest: closer methods count as equivalent.",
    )
    vote_budget = models.PositiveIntegerField(
        null=True, blank=True, help_text="Most counted votes to collect; the study closes when they are handed out."
    )
    stop_when_decided = models.BooleanField(
        default=False, help_text="Close the study by itself once every adjacent pair of the ranking is decided."
    )
    instructions = models.TextField(blank=True)
    completion_redirect_url = models.URLField(blank=True, help_text="Prolific/MTurk return URL; {code} is replaced.")
    # Crowd platforms (raters.completion): what each platform checks when a rater finishes.
    prolific_completion_code = models.CharField(
        "Prolific completion code",
        max_length=32,
        blank=True,
        validators=[RegexValidator(r"^[A-Za-z0-9]+$", "Letters and digits only, as Prolific shows it.")],
        help_text="Prolific's study-wide completion code. Prolific raters are shown it and sent to "
        "Prolific's completion page with it; each session keeps its own code for the audit.",
    )
    mturk_submit_to = models.CharField(
        "MTurk site",
        max_length=40,
        choices=MTurkSite.choices,
        default=MTurkSite.PRODUCTION,
        help_text="Where an MTurk rater's finished assignment is posted (the HIT's turkSubmitTo).",
    )
    full_return_url = models.URLField(
        "return link when full",
        blank=True,
        help_text="Where a rater who arrives once the study is full goes back to, e.g. Prolific's "
        "'return the study' link.",
    )
    created_at = models.DateTimeField(auto_now_add=True)
    opened_at = models.DateTimeField(null=True, blank=True)
    closed_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        verbose_name_plural = "studies"
        ordering = ["-created_at"]
        constraints = [
            models.CheckConstraint(
                condition=models.Q(smallest_difference__gt=0), name="study_smallest_difference_positive"
            ),
            models.CheckConstraint(condition=models.Q(warmup_votes__gte=2), name="study_warmup_votes_at_least_2"),
        ]

    def __str__(self) -> str:
        return self.title

    def clean(self) -> None:
        super().clean()
        errors: dict[str, str] = {}
        if self.smallest_difference is None:
            pass  # the field's own "required" error says it
        elif not self.smallest_difference > 0:
            errors["smallest_difference"] = "Must be a positive MOS difference, e.g. 0.1."
        elif self.scale_levels and self.smallest_difference >= self.scale_max - self.scale_min:
            errors["smallest_difference"] = "Must be smaller than the range of the scale."
        if self.vote_budget is not None and self.vote_budget < 1:
            errors["vote_budget"] = "Must be at least 1 vote, or empty for no budget."
        if errors:
            raise ValidationError(errors)

    @property
    def scores(self) -> list[int]:
        return sorted(int(level["score"]) for level in self.scale_levels)

    @property
    def scale_min(self) -> int:
        return min(self.scores)

    @property
    def scale_max(self) -> int:
        return max(self.scores)

    def label_for(self, score: int) -> str:
        for level in self.scale_levels:
            if int(level["score"]) == score:
                return str(level["label"])
        raise KeyError(score)


class Scene(models.Model):
    study = models.ForeignKey(Study, on_delete=models.CASCADE, related_name="scenes")
    name = models.CharField(max_length=200)
    # Null only for scenes created by import_ratings, which analyses votes collected
    # elsewhere and has no images.
    reference = models.ForeignKey(ImageAsset, on_delete=models.PROTECT, null=True, blank=True, related_name="+")
    input = models.ForeignKey(ImageAsset, on_delete=models.PROTECT, null=True, blank=True, related_name="+")
    width = models.PositiveIntegerField(null=True, blank=True)
    height = models.PositiveIntegerField(null=True, blank=True)

    class Meta:
        ordering = ["study", "name"]
        constraints = [models.UniqueConstraint(fields=["study", "name"], name="scene_unique_name")]

    def __str__(self) -> str:
        return self.name


class Method(models.Model):
    class Kind(models.TextChoices):
        SUBMISSION = "submission", "Team submission"
        BASELINE = "baseline", "Baseline"
        HIDDEN_REFERENCE = "hidden_reference", "Hidden reference"
        LOW_ANCHOR = "low_anchor", "Low anchor"

    # Controls are shown to raters like any output and used to screen them.
    CONTROL_KINDS = (Kind.HIDDEN_REFERENCE, Kind.LOW_ANCHOR)

    study = models.ForeignKey(Study, on_delete=models.CASCADE, related_name="methods")
    name = models.CharField(max_length=200)
    kind = models.CharField(max_length=20, choices=Kind.choices, default=Kind.SUBMISSION)
    runtime_s = models.FloatField(null=True, blank=True, help_text="Reported runtime per image, seconds.")
    framework = models.CharField(max_length=100, blank=True)

    class Meta:
        ordering = ["study", "name"]
        constraints = [models.UniqueConstraint(fields=["study", "name"], name="method_unique_name")]

    def __str__(self) -> str:
        return self.name

    @property
    def is_control(self) -> bool:
        return self.kind in self.CONTROL_KINDS


class Output(models.Model):
    class MetricStatus(models.TextChoices):
        PENDING = "pending", "Pending"
        DONE = "done", "Done"
        FAILED = "failed", "Failed"

    method = models.ForeignKey(Method, on_delete=models.CASCADE, related_name="outputs")
    scene = models.ForeignKey(Scene, on_delete=models.CASCADE, related_name="outputs")
    image = models.ForeignKey(ImageAsset, on_delete=models.PROTECT, null=True, blank=True, related_name="+")
    psnr = models.FloatField(null=True, blank=True)
    ssim = models.FloatField(null=True, blank=True)
    metric_status = models.CharField(max_length=10, choices=MetricStatus.choices, default=MetricStatus.PENDING)
    metric_error = models.TextField(blank=True)
    metric_settings = models.JSONField(default=dict, blank=True)

    class Meta:
        ordering = ["method", "scene"]
        constraints = [models.UniqueConstraint(fields=["method", "scene"], name="output_unique_method_scene")]

    def __str__(self) -> str:
        return f"{self.method} / {self.scene}"

    def clean(self) -> None:
        if self.method_id and self.scene_id and self.method.study_id != self.scene.study_id:
            raise ValidationError("An output's method and scene must belong to the same study.")

    @cached_property
    def study(self) -> Study:
        return self.method.study

    @property
    def sha256(self) -> str:
        return self.image.sha256 if self.image else ""


class Job(models.Model):
    """An upload from the admin (an import, a late team, a replaced output), handed to a
    Celery worker: the request only saves the file and queues the job, and the study's
    Jobs page shows its progress and, once it failed, every problem found.
    """

    class Kind(models.TextChoices):
        IMPORT = "import", "Import"
        METHODS_ADD = "methods_add", "Add methods"
        OUTPUT_REPLACE = "output_replace", "Replace an output"

    class Status(models.TextChoices):
        QUEUED = "queued", "Queued"
        RUNNING = "running", "Running"
        DONE = "done", "Done"
        FAILED = "failed", "Failed"

    study = models.ForeignKey(Study, on_delete=models.CASCADE, related_name="jobs")
    # The output a replacement is for; kept null if that output was deleted meanwhile.
    output = models.ForeignKey(Output, on_delete=models.SET_NULL, null=True, blank=True, related_name="+")
    kind = models.CharField(max_length=20, choices=Kind.choices)
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.QUEUED)
    # The uploaded file in storage (uploads/<random>.<ext>), deleted once the job has ended.
    upload = models.CharField(max_length=300, blank=True)
    # What messages call the upload: the organizer's file name, never a server path.
    source_name = models.CharField(max_length=255)
    stage = models.CharField(max_length=40, blank=True)
    files_done = models.PositiveIntegerField(default=0)
    files_total = models.PositiveIntegerField(default=0)
    problems = models.JSONField(default=list, blank=True)
    summary = models.JSONField(default=dict, blank=True)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at", "-id"]

    def __str__(self) -> str:
        return f"{self.get_kind_display()} {self.source_name} ({self.status})"

    @property
    def ended(self) -> bool:
        return self.status in (self.Status.DONE, self.Status.FAILED)
