"""For the migrations that install database functions, which only PostgreSQL runs (raters
0005 to 0007): SQLite stores votes through raters.services instead. Not a migration itself:
Django's loader skips modules whose name starts with an underscore."""


def on_postgresql(sql: str):
    """RunPython code that executes ``sql`` on PostgreSQL and does nothing elsewhere."""

    def run(apps, schema_editor):
        if schema_editor.connection.vendor == "postgresql":
            schema_editor.execute(sql, params=None)

    return run
