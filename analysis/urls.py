from __future__ import annotations

from django.urls import path

from analysis import views
from analysis.api import views as api

app_name = "analysis"

urlpatterns = [
    path("analysis/<slug:slug>/results/", views.study_results, name="study-results"),
    path("analysis/<slug:slug>/runs/", views.study_run, name="study-run"),
    path(
        "analysis/<slug:slug>/runs/<int:run_id>/files/<str:name>",
        views.run_file,
        name="run-file",
    ),
    path("analysis/<slug:slug>/runs/<int:run_id>/results.zip", views.run_zip, name="run-zip"),
    path("api/studies/<slug:slug>/results/", api.StudyResultsView.as_view(), name="api-results"),
    path("api/studies/<slug:slug>/decision/", api.StudyDecisionView.as_view(), name="api-decision"),
    path(
        "api/studies/<slug:slug>/analysis-runs/",
        api.AnalysisRunListCreateView.as_view(),
        name="api-analysis-runs",
    ),
    path(
        "api/studies/<slug:slug>/analysis-runs/<int:run_id>/",
        api.AnalysisRunDetailView.as_view(),
        name="api-analysis-run",
    ),
]
