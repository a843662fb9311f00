"""No vote rule lives in the database: the functions older migrations installed on
PostgreSQL are dropped."""

from __future__ import annotations

from importlib import import_module

import pytest
from django.db import connection

pytestmark = [
    pytest.mark.django_db,
    pytest.mark.skipif(connection.vendor != "postgresql", reason="the functions only ever existed on PostgreSQL"),
]

OLD_FUNCTION = (
    "CREATE FUNCTION mosaic_vote(varchar, varchar, integer, integer, timestamptz, timestamptz, varchar) "
    "RETURNS integer LANGUAGE sql AS 'SELECT 1'"
)


def _functions() -> list[str]:
    with connection.cursor() as cursor:
        cursor.execute("SELECT proname FROM pg_proc WHERE proname LIKE 'mosaic%%'")
        return [name for (name,) in cursor.fetchall()]


def test_a_migrated_database_has_no_vote_function() -> None:
    assert _functions() == []


def test_the_vote_function_of_an_older_database_is_dropped() -> None:
    with connection.cursor() as cursor:
        cursor.execute(OLD_FUNCTION)
    assert _functions() == ["mosaic_vote"]

    migration = import_module("raters.migrations.0008_drop_vote_functions")
    with connection.schema_editor() as editor:
        migration.drop_functions(None, editor)

    assert _functions() == []
