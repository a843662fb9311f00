from __future__ import annotations

from django.apps import AppConfig


class RatersConfig(AppConfig):
    name = "raters"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        from django.db.backends.signals import connection_created

        from config.db import parse_timestamps_in_c

        # Every rater request reads a dozen timestamps (see config.db).
        connection_created.connect(parse_timestamps_in_c, dispatch_uid="mosaic-timestamps-in-c")
