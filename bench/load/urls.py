"""config.urls plus the trivial endpoint the benchmarks compare the rater API with: the
same stack (gunicorn, middleware, DRF with the same authentication and throttle class,
one PostgreSQL round trip) and no application logic."""

from __future__ import annotations

from django.db import connection
from django.urls import include, path
from rest_framework.request import Request
from rest_framework.response import Response

from raters.api.views import RaterAPIView


class Ping(RaterAPIView):
    def get(self, request: Request) -> Response:
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
            cursor.fetchone()
        return Response({"ok": True})


urlpatterns = [
    path("bench/ping/", Ping.as_view()),
    path("", include("config.urls")),
]
