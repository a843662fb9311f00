"""PostgreSQL: the vote function reads the votes of the session's trials one trial at a
time.

Migration 0006's function counted the session's progress over a join of its trials with
every vote. PL/pgSQL keeps one plan per statement and connection, made when the function
first runs there; on a fresh study the votes table is small, the plan reads it whole and
joins by hash, and every later vote on that connection kept reading every vote of the
database: a vote's cost grew with the number of votes stored (bench/load: from 0.12 to
0.70 ms of PostgreSQL's time per vote over 800 sessions). Here each trial's vote is a
lookup in the vote's unique trial index, which no plan can turn into a join: a vote costs
the same in the first session and in the thousandth. Nothing else changes.
"""

from importlib import import_module

from django.db import migrations

from raters.migrations._postgresql import on_postgresql

previous = import_module("raters.migrations.0006_vote_by_token")

JOINED = "FROM raters_trial t LEFT JOIN raters_rating x ON x.trial_id = t.id WHERE t.session_id = s.id;"
PER_TRIAL = (
    "FROM raters_trial t CROSS JOIN LATERAL "
    "(SELECT (SELECT v.id FROM raters_rating v WHERE v.trial_id = t.id) AS id) x "
    "WHERE t.session_id = s.id;"
)
if previous.CREATE.count(JOINED) != 1:
    raise RuntimeError("raters 0007: the progress count of migration 0006 is not where it was")
CREATE = previous.CREATE.replace(JOINED, PER_TRIAL)


class Migration(migrations.Migration):
    dependencies = [
        ("raters", "0006_vote_by_token"),
    ]

    operations = [migrations.RunPython(on_postgresql(CREATE), on_postgresql(previous.CREATE))]
