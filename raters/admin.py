from __future__ import annotations

from django.contrib import admin, messages
from django.db.models import Q, QuerySet
from django.http import HttpRequest
from django.template.response import TemplateResponse

from raters import services
from raters.forms import ExclusionForm
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


class ExcludedFilter(admin.SimpleListFilter):
    title = "excluded by hand"
    parameter_name = "excluded"

    def lookups(self, request, model_admin):
        return (("yes", "Excluded"), ("no", "Counted"))

    def queryset(self, request, queryset):
        counted = Q(excluded_reason="")
        if queryset.model is Session:
            # A session also leaves the analysis with its rater.
            counted &= Q(rater__excluded_reason="")
        if self.value() == "yes":
            return queryset.exclude(counted)
        if self.value() == "no":
            return queryset.filter(counted)
        return queryset


class ExclusionActions:
    """Admin actions that exclude the selected rows from the analysis, with a reason asked
    for on an intermediate page, and count them again. Votes are never touched."""

    what = "rows"

    def has_exclude_permission(self, request: HttpRequest) -> bool:
        # The admins above are read-only for the votes; excluding is an organizer's call.
        return request.user.has_perm(f"raters.change_{self.model._meta.model_name}")

    @admin.action(description="Exclude from the analysis (asks for a reason)", permissions=["exclude"])
    def exclude_from_analysis(self, request: HttpRequest, queryset: QuerySet) -> TemplateResponse | None:
        form = ExclusionForm(request.POST if "apply" in request.POST else None)
        if form.is_valid():
            count = services.exclusion_set(rows=queryset, reason=form.cleaned_data["reason"])
            self.message_user(
                request,
                f"{count} {self.what} excluded from the analysis runs made from now on: {form.cleaned_data['reason']}.",
                messages.SUCCESS,
            )
            return None
        context = {
            **self.admin_site.each_context(request),
            "title": "Exclude from the analysis",
            "opts": self.model._meta,
            "objects": list(queryset),
            "form": form,
            "what": self.what,
            "action": request.POST.get("action", ""),
        }
        return TemplateResponse(request, "admin/raters/exclude.html", context)

    @admin.action(description="Count in the analysis again", permissions=["exclude"])
    def include_in_analysis(self, request: HttpRequest, queryset: QuerySet) -> None:
        count = services.exclusion_clear(rows=queryset)
        self.message_user(
            request, f"{count} {self.what} count in the analysis runs made from now on.", messages.SUCCESS
        )


@admin.register(Session)
class SessionAdmin(ExclusionActions, ReadOnlyAdmin):
    list_display = (
        "id",
        "study",
        "rater",
        "status",
        "completion_code",
        "started_at",
        "completed_at",
        "excluded",
    )
    list_filter = ("study", "status", ExcludedFilter)
    search_fields = ("rater__external_id", "completion_code")
    list_select_related = ("study", "rater")
    inlines = [TrialInline]
    exclude = ("token",)
    actions = ("exclude_from_analysis", "include_in_analysis")
    what = "sessions"

    @admin.display(description="excluded by hand")
    def excluded(self, session: Session) -> str:
        if session.excluded_reason:
            return session.excluded_reason
        return f"rater: {session.rater.excluded_reason}" if session.rater.excluded_reason else "—"


@admin.register(Rater)
class RaterAdmin(ExclusionActions, ReadOnlyAdmin):
    list_display = (
        "__str__",
        "platform",
        "viewport_width",
        "viewport_height",
        "device_pixel_ratio",
        "created_at",
        "excluded_reason",
    )
    list_filter = ("platform", ExcludedFilter)
    search_fields = ("external_id",)
    actions = ("exclude_from_analysis", "include_in_analysis")
    what = "raters (with their sessions in every study)"
