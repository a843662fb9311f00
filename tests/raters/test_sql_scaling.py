"""What a study page and a vote read must not grow with the study.

The plans PostgreSQL keeps for prepared statements, and for the statements of the vote
function, are made once per connection, often while the tables are still small; a plan
that reads a table whole or joins it by hash then goes on doing so as the study fills up
(bench/load saw a study page cost 13 ms of PostgreSQL's time after 800 sessions, and each
vote more than the one before). These tests count the rows each statement reads, or the
index its plan uses, with the plans a connection may end up holding.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import pytest
from django.db import connection
from django.utils import timezone

from raters import selectors, services, sql
from raters.models import Rater, Session
from raters.platforms import RaterIdentity
from tests.raters.conftest import build_study

pytestmark = pytest.mark.django_db

OTHER_SESSIONS = 30


def _rows_read(cursor, table: str) -> int:
    """Rows this transaction has read from ``table`` so far: by scanning it, and through
    any of its indexes (PostgreSQL's statistics of the current transaction)."""
    cursor.execute(
        "SELECT pg_stat_get_xact_tuples_returned(c.oid)"
        " + COALESCE(SUM(pg_stat_get_xact_tuples_returned(i.indexrelid)), 0)"
        " FROM pg_class c LEFT JOIN pg_index i ON i.indrelid = c.oid WHERE c.relname = %s GROUP BY c.oid",
        [table],
    )
    return int(cursor.fetchone()[0])


@contextmanager
def _reading(tables: list[str]) -> Iterator[dict[str, int]]:
    """The rows read from each of ``tables`` inside the block."""
    read: dict[str, int] = {}
    with connection.cursor() as cursor:
        before = {table: _rows_read(cursor, table) for table in tables}
    yield read
    with connection.cursor() as cursor:
        read.update({table: _rows_read(cursor, table) - before[table] for table in tables})


@contextmanager
def _kept_plan(cursor, name: str, types: str, statement: str) -> Iterator[None]:
    """``statement`` prepared as ``name`` (parameter ``types``) with the plan a connection
    keeps for a prepared statement, one made without the values; and no reading of a table
    whole, which a plan would do at this size whatever the statement says."""
    cursor.execute("SET LOCAL plan_cache_mode = force_generic_plan")
    cursor.execute("SET LOCAL enable_seqscan = off")
    numbered = statement
    for number in range(1, statement.count("%s") + 1):
        numbered = numbered.replace("%s", f"${number}", 1)
    cursor.execute(f"PREPARE {name}({types}) AS {numbered}")
    try:
        yield
    finally:
        cursor.execute(f"DEALLOCATE {name}")  # prepared statements outlive the transaction


def _sqlite_plan(statement: str, params: list) -> str:
    """SQLite's plan, which it makes before the values are bound, as a kept plan is."""
    with connection.cursor() as cursor:
        cursor.execute(f"EXPLAIN QUERY PLAN {statement}", params)
        return "\n".join(str(row[-1]) for row in cursor.fetchall())


def test_a_raters_session_is_found_by_two_index_probes_however_many_sessions_the_study_has() -> None:
    setup = build_study()
    raters = Rater.objects.bulk_create(
        [Rater(platform="prolific", external_id=f"p-{i}") for i in range(OTHER_SESSIONS)]
    )
    Session.objects.bulk_create(
        [Session(rater=rater, study=setup.study, token=f"token-{rater.pk}") for rater in raters]
    )
    wanted = Session.objects.get(rater=raters[7])
    statement = sql._rater_session_sql(connection.vendor)
    if connection.vendor != "postgresql":
        # The rater by the unique key of platform ids, then their sessions by rater; no
        # scan, and no search of the study's sessions.
        plan = _sqlite_plan(statement, ["prolific", "p-7"])
        searches = [line for line in plan.splitlines() if line.startswith("SEARCH")]
        assert len(searches) == 2 and "SCAN" not in plan, plan
        assert any("rater_unique_external_id (platform=? AND external_id=?)" in line for line in searches), plan
        assert any(line.startswith("SEARCH s ") and "(rater_id=?" in line for line in searches), plan
        return
    tables = ["raters_session", "raters_rater"]
    # The kept plan is made here before the new rows have any statistics, as on a new study.
    with connection.cursor() as cursor, _kept_plan(cursor, "lookup", "varchar, varchar", statement):
        with _reading(tables) as found:
            cursor.execute("EXECUTE lookup('prolific', 'p-7')")
            assert cursor.fetchall()[0][0] == wanted.pk
        with _reading(tables) as missing:
            cursor.execute("EXECUTE lookup('prolific', 'p-unknown')")
            assert cursor.fetchall() == []
    # The rater, then their session: not the study's other sessions or raters.
    assert found == {"raters_rater": 1, "raters_session": 1}
    assert missing == {"raters_rater": 0, "raters_session": 0}


def test_a_vote_reads_the_votes_of_its_own_session_only() -> None:
    setup = build_study(trials_per_session=10)
    for _ in range(3):
        other, _ = services.session_start(study=setup.study, identity=RaterIdentity())
        for trial in other.trials.all():
            services.rating_submit(session_token=other.token, trial_token=trial.token, score=3, response_ms=9)
    session, _ = services.session_start(study=setup.study, identity=RaterIdentity())
    trials = list(session.trials.order_by("position"))
    if not sql.votes_in_one_call():
        # Elsewhere the vote reads the session's trials with their votes in one statement:
        # each trial's vote through the votes' trial index.
        plan = _sqlite_plan(sql._trials_sql(connection.vendor), [session.pk])
        rating_lines = [line for line in plan.splitlines() if line.split()[1:2] == ["r"]]
        assert rating_lines and all(line.startswith("SEARCH r USING") for line in rating_lines), plan
        return
    with connection.cursor() as cursor:
        # Whatever plans the function's statements had on this connection are dropped, and
        # the new ones join by hash or merge, the plans bench/load saw as the votes table
        # grew: a plan that joins the trials with the votes then reads every vote of the
        # database. And no table is read whole, which a plan would do at this size (or
        # with statistics from when the table was smaller) whatever the statement says.
        cursor.execute("DISCARD PLANS")
        cursor.execute("SET LOCAL enable_nestloop = off")
        cursor.execute("SET LOCAL enable_seqscan = off")
        with _reading(["raters_rating"]) as read:
            vote = services.rating_submit(
                session_token=session.token, trial_token=trials[0].token, score=4, response_ms=9
            )
    assert vote.created and vote.progress["training_answered"] == 1
    # One lookup per trial of the session to count its progress (the vote itself is
    # inserted, not read); the other sessions' votes are never read.
    assert read["raters_rating"] <= len(trials), read


def test_the_idle_session_probe_reads_the_index_of_active_sessions_whatever_the_plan() -> None:
    statement = sql._stale_sessions_sql(connection.vendor, tuple(services.ACTIVE_STATUSES), False)
    if connection.vendor != "postgresql":
        plan = _sqlite_plan(statement, [1, timezone.now().isoformat()])
    else:
        # With the statuses as parameters, the kept plan would read every session of the
        # study: the question is which index it can use.
        with connection.cursor() as cursor, _kept_plan(cursor, "probe", "bigint, timestamptz", statement):
            cursor.execute("EXPLAIN EXECUTE probe(1, now())")
            plan = "\n".join(str(row[0]) for row in cursor.fetchall())
    assert "session_active_last_seen" in plan, plan


def test_a_next_trial_looks_up_the_images_of_the_trials_it_shows_only() -> None:
    setup = build_study(trials_per_session=10)
    session, _ = services.session_start(study=setup.study, identity=RaterIdentity())
    trials = list(session.trials.order_by("position"))
    for trial in trials[:4]:
        services.rating_submit(session_token=session.token, trial_token=trial.token, score=3, response_ms=9)
    _, states = selectors.session_with_states(token=session.token, shown=selectors.SHOWN)
    assert [state.id for state in states if state.result is not None] == [t.id for t in trials[4:6]]
    if connection.vendor != "postgresql":
        # SQLite has no lateral join: there the other trials' lookups find nothing. What is
        # shown is checked in test_sql on both databases.
        return
    statement = sql._session_trials_sql(connection.vendor, selectors.SHOWN, selectors._BESIDE_FIELDS)
    tables = ["studies_output", "studies_method", "studies_scene", "studies_imageasset"]
    with connection.cursor() as cursor, _kept_plan(cursor, "next_trial", "varchar, varchar", statement):
        with _reading(tables) as read:
            # Tokens are base64url: no quote to escape.
            cursor.execute(f"EXECUTE next_trial('{session.token}', '{session.token}')")
            assert len(cursor.fetchall()) == 1 + len(trials)
    # Each shown trial's output, method, scene and images (its result, and the scene's
    # images the protocols could show beside it); none of the other eleven trials'.
    images = read.pop("studies_imageasset")
    assert read == {"studies_output": 2, "studies_method": 2, "studies_scene": 2} and 4 <= images <= 6, (read, images)
