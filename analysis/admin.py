"""Admin for stored analysis runs: read-only, since a run is a record of what was published."""

from __future__ import annotations

from django.contrib import admin
from django.urls import reverse
from django.utils.html import format_html

from analysis.models import AnalysisRun


@admin.register(AnalysisRun)
class AnalysisRunAdmin(admin.ModelAdmin):
    list_display = ["id", "study", "status", "created_at", "finished_at", "n_votes", "results_link"]
    list_filter = ["status", "study"]
    list_select_related = ["study"]
    readonly_fields = [
        "study",
        "status",
        "created_at",
        "finished_at",
        "n_votes",
        "params",
        "estimators",
        "error",
        "results_link",
    ]
    exclude = ["results"]  # large; shown on the results page and in the exports

    @admin.display(description="Results")
    def results_link(self, run: AnalysisRun) -> str:
        url = reverse("analysis:study-results", kwargs={"slug": run.study.slug})
        return format_html('<a href="{}">results page</a>', url)

    def has_add_permission(self, request) -> bool:  # noqa: ANN001 - Django's signature
        return False

    def has_change_permission(self, request, obj=None) -> bool:  # noqa: ANN001
        return False
