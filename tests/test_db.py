"""Timestamps from PostgreSQL are parsed in C (config.db) and come out as Django's own
loader makes them."""

from __future__ import annotations

import datetime
import zoneinfo

import pytest
from django.db import connection
from django.db.backends.postgresql.psycopg_any import BaseTzLoader
from psycopg.postgres import types

from config.db import _loader_class
from raters import services
from raters.models import Rating
from raters.platforms import RaterIdentity
from tests.raters.conftest import build_study

TIMESTAMPTZ = types["timestamptz"].oid
VALUES = [
    b"2020-01-02 03:04:05.678901+05",
    b"1999-12-31 23:59:59+00",
    b"2026-03-29 01:30:00-03:30",  # the night Paris moves its clocks
    b"0001-01-01 00:00:00+00",
    b"9999-12-31 23:59:59.999999+00",
]


@pytest.mark.parametrize("zone", [datetime.UTC, zoneinfo.ZoneInfo("Europe/Paris"), None])
def test_the_c_loader_reads_what_djangos_loader_reads(zone) -> None:
    class Djangos(BaseTzLoader):
        timezone = zone

    ours, djangos = _loader_class(zone)(TIMESTAMPTZ, None), Djangos(TIMESTAMPTZ, None)
    assert type(ours).__name__ == "CTimestamptzLoader"
    for value in VALUES:
        read = ours.load(value)
        assert read == djangos.load(value)
        assert read.tzinfo is zone


@pytest.mark.django_db
def test_a_database_connection_reads_timestamps_as_django_did() -> None:
    study = build_study(trials_per_session=1).study
    session, _ = services.session_start(study=study, identity=RaterIdentity())
    trial = session.trials.first()
    stamp = datetime.datetime(2026, 3, 29, 1, 30, 0, 123456, tzinfo=zoneinfo.ZoneInfo("America/St_Johns"))
    Rating.objects.filter(pk=Rating.objects.create(trial=trial, score=3).pk).update(created_at=stamp)
    read = Rating.objects.get(trial=trial).created_at
    assert read == stamp
    assert read.tzinfo is datetime.UTC
    if connection.vendor == "postgresql":
        # Django's cursors keep the loader: it carries the time zone they compare.
        with connection.cursor() as cursor:
            loader = cursor.cursor.adapters.get_loader(TIMESTAMPTZ, 0)
        assert loader is _loader_class(datetime.UTC)
        with connection.connection.cursor() as cursor:
            cursor.execute("SELECT %s::timestamptz", [stamp])
            assert cursor.fetchone()[0] == stamp
