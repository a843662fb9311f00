from __future__ import annotations

from django.contrib import admin, messages
from django.contrib.admin.views.main import ChangeList
from django.db.models import Q, QuerySet
from django.http import HttpRequest
from django.template.response import TemplateResponse
from django.utils import timezone
from django.utils.html import format_html

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


class SuggestionFilter(admin.SimpleListFilter):
    title = "suggested payment"
    parameter_name = "suggestion"

    def lookups(self, request, model_admin):
        return (("approve", "Approve"), ("reject", "Reject"))

    def queryset(self, request, queryset):
        if self.value() in ("approve", "reject"):
            from raters.payments import sessions_with_suggestion  # brings the analysis's pandas

            return sessions_with_suggestion(sessions=queryset, suggestion=self.value())
        return queryset


class SessionChangeList(ChangeList):
    """The sessions of one page with what the payments CSV says of them and the screening
    of their study's latest finished run: two queries for the page, whatever its size."""

    def get_results(self, request: HttpRequest) -> None:
        super().get_results(request)
        from analysis.selectors import studies_screening  # brings pandas: not at import
        from raters.payments import session_payments

        sessions = list(self.result_list)
        payments = session_payments(sessions=sessions)
        screening = studies_screening(study_ids={session.study_id for session in sessions})
        for session in sessions:
            session.payment = payments[session.pk]
            run = screening.get(session.study_id)
            session.screening = (
                "no analysis run yet"
                if run is None
                else run.outcome(
                    session_id=session.pk,
                    platform=session.rater.platform,
                    external_id=session.rater.external_id,
                    rater_id=session.rater_id,
                )
            )


@admin.register(Session)
class SessionAdmin(ExclusionActions, ReadOnlyAdmin):
    list_display = (
        "id",
        "study",
        "rater",
        "status",
        "progress",
        "failed_checks",
        "screening",
        "suggested",
        "completion_code",
        "started",
        "excluded",
    )
    list_filter = ("study", "status", SuggestionFilter, ExcludedFilter)
    search_fields = ("rater__external_id", "completion_code")
    list_select_related = ("study", "rater")
    # A study's sessions together, in the order they started (as the payments CSV).
    ordering = ("study", "started_at", "pk")
    inlines = [TrialInline]
    exclude = ("token",)
    actions = ("exclude_from_analysis", "include_in_analysis")
    what = "sessions"

    class Media:
        css = {"all": ("raters/admin/sessions.css",)}

    def get_changelist(self, request: HttpRequest, **kwargs) -> type[ChangeList]:
        return SessionChangeList

    @admin.display(description="started", ordering="started_at")
    def started(self, session: Session) -> str:
        return timezone.localtime(session.started_at).strftime("%Y-%m-%d %H:%M")

    @admin.display(description="votes")
    def progress(self, session: Session) -> str:
        # Live counted trials: training left out, a trial handed to another rater too.
        return f"{session.payment.votes} / {session.payment.trials}"

    @admin.display(description="checks failed")
    def failed_checks(self, session: Session) -> str:
        payment = session.payment
        return f"{payment.failed_controls} of {payment.controls}" if payment.controls else "none answered"

    @admin.display(description="screening")
    def screening(self, session: Session) -> str:
        return session.screening

    @admin.display(description="suggested")
    def suggested(self, session: Session) -> str:
        payment = session.payment
        return format_html('<strong class="{}">{}</strong>: {}', payment.suggestion, payment.suggestion, payment.reason)

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
