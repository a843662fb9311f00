from __future__ import annotations

from django.urls import path

from studies import views

app_name = "studies"

urlpatterns = [
    path("img/<str:token>.<str:ext>", views.image_file, name="image-file"),
    path("tiles/<str:token>.dzi", views.tiles_descriptor, name="tiles-dzi"),
    path("tiles/<str:token>_files/<int:level>/<str:tile>", views.tile_file, name="tile-file"),
]
