from __future__ import annotations

from django.contrib import admin

from raters.models import Rater, Rating, Session, Trial


class ReadOnlyAdmin(admin.ModelAdmin):
    """Votes are append-only: the admin shows them and never edits or deletes them."""

    def has_add_permission(self, request, obj=None) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        return False

    def has_delete_permission(self, request, obj=None) -> bool:
        return False


@admin.register(Rating)
class RatingAdmin(ReadOnlyAdmin):
    list_display = ("created_at", "study", "rater", "method", "scene", "kind", "score", "response_ms")
    list_filter = ("trial__session__study", "trial__kind", "score", "trial__output__method")
    search_fields = ("trial__session__rater__external_id", "trial__output__method__name")
    list_select_related = (
        "trial__session__study",
        "trial__session__rater",
        "trial__output__method",
        "trial__output__scene",
    )
    date_hierarchy = "created_at"

    @admin.display(ordering="trial__session__study")
    def study(self, rating: Rating) -> str:
        return str(rating.trial.session.study)

    @admin.display(ordering="trial__session__rater")
    def rater(self, rating: Rating) -> str:
        return str(rating.trial.session.rater)

    @admin.display(ordering="trial__output__method__name")
    def method(self, rating: Rating) -> str:
        return rating.trial.output.method.name

    @admin.display(ordering="trial__output__scene__name")
    def scene(self, rating: Rating) -> str:
        return rating.trial.output.scene.name

    @admin.display(ordering="trial__kind")
    def kind(self, rating: Rating) -> str:
        return rating.trial.get_kind_display()


class TrialInline(admin.TabularInline):
    model = Trial
    fields = ("position", "kind", "output", "released_at", "score")
    readonly_fields = fields
    extra = 0
    can_delete = False

    def get_queryset(self, request):
        return super().get_queryset(request).select_related("output__method", "output__scene", "rating")

    @admin.display(description="vote")
    def score(self, trial: Trial) -> str:
        rating = getattr(trial, "rating", None)
        return "—" if rating is None else str(rating.score)

    def has_add_permission(self, request, obj=None) -> bool:
        return False


@admin.register(Session)
class SessionAdmin(ReadOnlyAdmin):
    list_display = ("id", "study", "rater", "status", "completion_code", "started_at", "completed_at")
    list_filter = ("study", "status")
    search_fields = ("rater__external_id", "completion_code")
    list_select_related = ("study", "rater")
    inlines = [TrialInline]
    exclude = ("token",)


@admin.register(Rater)
class RaterAdmin(ReadOnlyAdmin):
    list_display = ("__str__", "platform", "viewport_width", "viewport_height", "device_pixel_ratio", "created_at")
    list_filter = ("platform",)
    search_fields = ("external_id",)
