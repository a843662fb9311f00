"""Drop the PostgreSQL functions that stored votes before raters.services did it in Python
(installed by the replaced migrations 0005 to 0007). A database created from 0001_squashed
never had them."""

from django.db import migrations


def drop_functions(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute("DROP FUNCTION IF EXISTS mosaic_vote(varchar, varchar, integer, integer, timestamptz, timestamptz, varchar)")
        schema_editor.execute(
            "DROP FUNCTION IF EXISTS mosaic_vote_store(bigint, bigint, smallint, integer, timestamptz, timestamptz, varchar)"
        )


class Migration(migrations.Migration):

    dependencies = [
        ('raters', '0001_squashed_0007'),
    ]

    operations = [
        migrations.RunPython(drop_functions, migrations.RunPython.noop),
    ]
