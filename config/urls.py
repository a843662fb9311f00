from __future__ import annotations

from django.contrib import admin
from django.urls import include, path
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerSplitView

# The rater pages and API first: every rater request is resolved through the patterns
# before its own, and a non-matching include (admin/) costs an exception.
urlpatterns = [
    path("", include("raters.urls")),
    path("admin/", admin.site.urls),
    path("api/schema/", SpectacularAPIView.as_view(), name="schema"),
    # The split view serves Swagger UI's start-up script as a file: no inline script.
    path("api/docs/", SpectacularSwaggerSplitView.as_view(url_name="schema"), name="api-docs"),
    path("", include("analysis.urls")),
    path("", include("studies.urls")),
]
