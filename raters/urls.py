from __future__ import annotations

app_name = "raters"

urlpatterns: list = []
