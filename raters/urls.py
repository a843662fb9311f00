from __future__ import annotations

from django.urls import path

from raters import views
from raters.api import views as api

app_name = "raters"

# The two requests a rater repeats for every trial first: patterns are tried in order.
urlpatterns = [
    path("api/sessions/<str:token>/next/", api.TrialNextView.as_view(), name="api-trial-next"),
    path(
        "api/sessions/<str:token>/trials/<str:trial_token>/rating/",
        api.RatingSubmitView.as_view(),
        name="api-rating-submit",
    ),
    path("s/<slug:slug>/", views.study_entry, name="study"),
    path("r/<str:token>/", views.rate, name="rate"),
    path("r/<str:token>/done/", views.done, name="done"),
    path("api/studies/<slug:slug>/sessions/", api.SessionStartView.as_view(), name="api-session-start"),
    path("api/sessions/<str:token>/", api.SessionDetailView.as_view(), name="api-session"),
    path("api/sessions/<str:token>/device/", api.SessionDeviceView.as_view(), name="api-session-device"),
]
