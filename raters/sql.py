"""Hand-written SQL for the rater hot paths: "next trial" and "submit vote".

Two hundred raters voting at once run these on every request. Built through the ORM, the
same statements cost three to ten times the CPU of running them: compiling a
select_related query took longer than PostgreSQL took to answer it (bench/load). Table and
column names come from the models' ``_meta``, and every value goes through the converters
the ORM itself applies, so the rows read here are the rows the ORM would read, on SQLite
as on PostgreSQL.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from functools import cache
from typing import Any, NamedTuple, TypeVar

from django.db import DEFAULT_DB_ALIAS, connection, connections, models

from raters.models import OutputLoad, Rater, Rating, Session, Trial
from studies.models import ImageAsset, Method, Output, Scene, Study

M = TypeVar("M", bound=models.Model)
Converter = Callable[[Any, Any, Any], Any]


def _q(name: str) -> str:
    return connection.ops.quote_name(name)


def _table(model: type[models.Model]) -> str:
    return _q(model._meta.db_table)


def _col(model: type[models.Model], field: str) -> str:
    return _q(model._meta.get_field(field).column)


def _columns(model: type[models.Model], alias: str) -> str:
    return ", ".join(f"{alias}.{_q(f.column)}" for f in model._meta.concrete_fields)


@cache
def _converters(model: type[models.Model], vendor: str) -> tuple[tuple[int, tuple[Converter, ...], Any], ...]:
    """Per concrete field that has any: its position, and the backend's and the field's
    converters, as the ORM finds them. (Most fields have none: on PostgreSQL, all of a
    study's but its JSON.)"""
    result = []
    for index, field in enumerate(model._meta.concrete_fields):
        converters, col = _field_converters(model, field.name, vendor)
        if converters:
            result.append((index, converters, col))
    return tuple(result)


@cache
def _field_converters(model: type[models.Model], name: str, vendor: str) -> tuple[tuple[Converter, ...], Any]:
    """One field's converters (the backend's, then the field's) and its column."""
    col = model._meta.get_field(name).get_col(model._meta.db_table)
    return tuple(connection.ops.get_db_converters(col) + col.get_db_converters(connection)), col


def _convert(converters: Sequence[Converter], col: Any, value: Any) -> Any:
    for convert in converters:
        value = convert(value, col, connection)
    return value


def _instance(model: type[M], values: Sequence[Any]) -> M:
    """A model instance from a row holding all its concrete columns, in ``_meta`` order."""
    if len(values) != len(model._meta.concrete_fields):
        raise ValueError(f"{len(values)} columns for the {len(model._meta.concrete_fields)} of {model.__name__}")
    converted = list(values)
    for index, converters, col in _converters(model, connection.vendor):
        converted[index] = _convert(converters, col, converted[index])
    return model.from_db(connection.alias, None, converted)


@contextmanager
def _cursor() -> Iterator[Any]:
    """Django's cursor where queries are logged or wrapped (the tests' query counts) and
    off PostgreSQL; otherwise the driver's cursor under the guards Django's wrapper applies
    (a failed health check, a broken transaction, errors as django.db errors that mark the
    connection) without the wrapper's own layers, which cost as much CPU as the execute."""
    # The connection itself: each attribute of the ``connection`` proxy is a thread-local
    # lookup, and this runs for every statement.
    db = connections[DEFAULT_DB_ALIAS]
    if db.vendor != "postgresql" or db.queries_logged or db.execute_wrappers:
        with db.cursor() as cursor:
            yield cursor
        return
    db.close_if_health_check_failed()
    db.ensure_connection()
    db.validate_no_broken_transaction()
    with db.wrap_database_errors:
        yield _kept_cursor(db)


def _kept_cursor(db: Any) -> Any:
    """The driver cursor this connection keeps for these statements. A cursor makes a
    loader for each column type of a result and keeps it for the next: a new cursor per
    statement made them all again (a timestamp's loader is Python), a tenth of a "next
    trial". Each statement here fetches its rows before the next one runs."""
    cursor = getattr(db, "_mosaic_cursor", None)
    if cursor is None or cursor.closed or cursor.connection is not db.connection:
        cursor = db._mosaic_cursor = db.connection.cursor()
    return cursor


def _fetch(sql: str, params: Sequence[Any]) -> list[tuple[Any, ...]]:
    """Run one statement that returns rows, and return them."""
    with _cursor() as cursor:
        cursor.execute(sql, params)
        return cursor.fetchall()


def _execute(sql: str, params: Sequence[Any]) -> None:
    """Run one statement that returns no rows. (Asking the driver whether a statement
    returned rows builds a description of every column: a tenth of a "next".)"""
    with _cursor() as cursor:
        cursor.execute(sql, params)


def _session_by_token(joins: str = "") -> str:
    """The FROM and WHERE of a session by token (``s``) with its study (``st``), and
    ``joins`` after them."""
    return (
        f"FROM {_table(Session)} s JOIN {_table(Study)} st ON st.{_col(Study, 'id')} = s.{_col(Session, 'study')} "
        f"{joins} WHERE s.{_col(Session, 'token')} = %s"
    )


@cache
def _session_sql(vendor: str) -> str:
    return f"SELECT {_columns(Session, 's')}, {_columns(Study, 'st')} {_session_by_token()}"


def _session_with_study(values: Sequence[Any]) -> Session:
    """The session, with its study, from a row holding the session's columns then the study's."""
    width = len(Session._meta.concrete_fields)
    session = _instance(Session, values[:width])
    session.study = _instance(Study, values[width:])
    return session


def session_with_study(*, token: str) -> Session | None:
    """The session holding this token, with its study, in one statement."""
    rows = _fetch(_session_sql(connection.vendor), [token])
    return _session_with_study(rows[0]) if rows else None


@cache
def _study_sql(vendor: str, by: str, lock: bool) -> str:
    # By id, or by slug unless the study has a given status.
    where = f"st.{_col(Study, by)} = %s"
    if by == "slug":
        where += f" AND st.{_col(Study, 'status')} <> %s"
    sql = f"SELECT {_columns(Study, 'st')} FROM {_table(Study)} st WHERE {where}"
    # Where the database locks whole files instead (SQLite), the transaction already does.
    return sql + " FOR UPDATE" if lock and connection.features.has_select_for_update else sql


def study_by_slug(*, slug: str, excluded_status: str) -> Study | None:
    """The study with this slug unless its status is ``excluded_status``: every study page
    and session start reads it, and the ORM took longer to build the query than to run it."""
    rows = _fetch(_study_sql(connection.vendor, "slug", False), [slug, excluded_status])
    return _instance(Study, rows[0]) if rows else None


def study_locked(*, study_id: int) -> Study:
    """The study, read again and locked until the transaction ends."""
    return _instance(Study, _fetch(_study_sql(connection.vendor, "id", True), [study_id])[0])


@cache
def _rater_session_sql(vendor: str) -> str:
    # The rater by the unique key of platform ids (its condition written out, as the
    # constraint writes it, so that the plan may use the key whatever the parameters),
    # then that rater's sessions by the rater alone: two index probes, however many
    # sessions the study has. As a join, the plan PostgreSQL keeps for the prepared
    # statement walked every session of the study and looked each one's rater up (bench/
    # load: 13 ms per study page after 800 sessions); with the study in the condition too,
    # a plan made on a new study's empty tables searched the study's sessions instead.
    platform, external_id = _col(Rater, "platform"), _col(Rater, "external_id")
    rater = (
        f"SELECT ra.{_col(Rater, 'id')} FROM {_table(Rater)} ra "
        f"WHERE ra.{platform} = %s AND ra.{external_id} = %s AND NOT (ra.{external_id} = '')"
    )
    return f"SELECT {_columns(Session, 's')} FROM {_table(Session)} s WHERE s.{_col(Session, 'rater')} = ({rater})"


@cache
def _position(model: type[models.Model], attname: str) -> int:
    """Where a field's column is in a row of all the model's concrete columns."""
    return [f.attname for f in model._meta.concrete_fields].index(attname)


def session_of_rater(*, study_id: int, platform: str, external_id: str) -> Session | None:
    """The session of the study's rater with this platform id, if any (at most one)."""
    study = _position(Session, "study_id")
    # A row per study the rater has joined: seldom more than one.
    rows = _fetch(_rater_session_sql(connection.vendor), [platform, external_id])
    return next((_instance(Session, row) for row in rows if row[study] == study_id), None)


@cache
def _rater_fields() -> tuple[models.Field, ...]:
    return tuple(f for f in Rater._meta.concrete_fields if not f.primary_key)


@cache
def _rater_insert_sql(vendor: str, known: bool) -> str:
    fields = _rater_fields()
    sql = (
        f"INSERT INTO {_table(Rater)} ({', '.join(_q(f.column) for f in fields)}) "
        f"VALUES ({', '.join(['%s'] * len(fields))})"
    )
    if known:
        # The unique key of raters with a platform id (rater_unique_external_id), with its
        # condition as the constraint writes it.
        platform, external_id = _col(Rater, "platform"), _col(Rater, "external_id")
        sql += f" ON CONFLICT ({platform}, {external_id}) WHERE NOT ({external_id} = '') DO NOTHING"
    return f"{sql} RETURNING {_col(Rater, 'id')}"


def rater_insert(rater: Rater) -> bool:
    """Store this new rater and set its id; True if stored. A rater with a platform id
    that is already stored is left as it was (False, the id unset): one statement where
    get_or_create took a read, a savepoint, the insert and the savepoint's release."""
    values = [f.get_db_prep_save(f.pre_save(rater, add=True), connection) for f in _rater_fields()]
    rows = _fetch(_rater_insert_sql(connection.vendor, bool(rater.external_id)), values)
    if not rows:
        return False
    rater.pk = rows[0][0]
    rater._state.adding, rater._state.db = False, connection.alias
    return True


@cache
def _stale_sessions_sql(vendor: str, statuses: tuple[str, ...], lock: bool) -> str:
    # The statuses are written into the statement, not passed as parameters: PostgreSQL
    # keeps one plan for a prepared statement, and only with the values in sight can that
    # plan use the partial index of active sessions (session_active_last_seen) instead of
    # reading every session of the study.
    if not all(status.isidentifier() for status in statuses):
        raise ValueError(f"not a status: {statuses!r}")
    listed = ", ".join(f"'{status}'" for status in statuses)
    sql = (
        f"SELECT s.{_col(Session, 'id')} FROM {_table(Session)} s "
        f"WHERE s.{_col(Session, 'study')} = %s AND s.{_col(Session, 'status')} IN "
        f"({listed}) "
        f"AND s.{_col(Session, 'last_seen_at')} < %s ORDER BY s.{_col(Session, 'id')}"
    )
    # A session locked right now is taking a vote or being reclaimed: it is not abandoned,
    # and waiting for it would hold up the start that asks. (SQLite: the transaction holds
    # the whole database already.)
    return sql + " FOR UPDATE SKIP LOCKED" if lock and connection.features.has_select_for_update_skip_locked else sql


def stale_session_ids(*, study_id: int, statuses: Sequence[str], seen_before: Any, lock: bool) -> list[int]:
    """Ids of the study's sessions in one of ``statuses``, last seen before ``seen_before``,
    in id order. With ``lock``, only those no other transaction has locked, and they stay
    locked until the transaction ends, so that none of them takes a vote meanwhile."""
    sql = _stale_sessions_sql(connection.vendor, tuple(str(status) for status in statuses), lock)
    return [row[0] for row in _fetch(sql, [study_id, _prep(Session, "last_seen_at", seen_before)])]


_IMAGE_FIELDS = ("token", "file", "tile_status", "width", "height")


def _trial_parts() -> tuple[list[str], list[str]]:
    """The columns and the join (after ``trial t``) that read a trial with its vote."""
    select = [
        f"t.{_col(Trial, 'id')}",
        f"t.{_col(Trial, 'position')}",
        f"t.{_col(Trial, 'kind')}",
        f"t.{_col(Trial, 'token')}",
        # Whether it was released, not when: one timestamp fewer to parse per row.
        f"t.{_col(Trial, 'released_at')} IS NOT NULL",
        f"r.{_col(Rating, 'id')}",
        f"r.{_col(Rating, 'score')}",
        f"r.{_col(Rating, 'response_ms')}",
        f"r.{_col(Rating, 'created_at')}",
    ]
    return select, [f"LEFT JOIN {_table(Rating)} r ON r.{_col(Rating, 'trial')} = t.{_col(Trial, 'id')}"]


def _output_parts(
    output: str, images: bool, beside: tuple[tuple[str, str], ...], protocol: str
) -> tuple[list[str], list[str]]:
    """The columns and the joins that read, for the output whose id is ``output`` (an
    expression of the outer query, with any condition after it), its method's kind and,
    with ``images``, the public handles of its result image and of the scene's image shown
    beside it: the Scene field that ``beside`` pairs with the study's protocol (the
    expression ``protocol``; none for a protocol it does not name). Every join is outer."""
    select = [f"m.{_col(Method, 'kind')}"]
    joins = [
        f"LEFT JOIN {_table(Output)} o ON o.{_col(Output, 'id')} = {output}",
        f"LEFT JOIN {_table(Method)} m ON m.{_col(Method, 'id')} = o.{_col(Output, 'method')}",
    ]
    if not images:
        return select, joins
    # Written into the statement, as the statement's own names are (checked: no quotes).
    if not all(protocol.isidentifier() for protocol, _ in beside):
        raise ValueError(f"not a protocol: {beside!r}")
    select += [f"ri.{_col(ImageAsset, f)}" for f in _IMAGE_FIELDS]
    joins += [
        f"LEFT JOIN {_table(ImageAsset)} ri ON ri.{_col(ImageAsset, 'id')} = o.{_col(Output, 'image')}",
        f"LEFT JOIN {_table(Scene)} sc ON sc.{_col(Scene, 'id')} = o.{_col(Output, 'scene')}",
    ]
    # A join per protocol, each on the scene's foreign key (an index lookup, where one join
    # on a choice between the keys made PostgreSQL hash every image of the database).
    for index, (name, field) in enumerate(beside):
        joins.append(
            f"LEFT JOIN {_table(ImageAsset)} p{index} ON p{index}.{_col(ImageAsset, 'id')} = sc.{_col(Scene, field)} "
            f"AND {protocol} = '{name}'"
        )
    for name in _IMAGE_FIELDS:
        whens = " ".join(
            f"WHEN p{index}.{_col(ImageAsset, 'id')} IS NOT NULL THEN p{index}.{_col(ImageAsset, name)}"
            for index in range(len(beside))
        )
        select.append(f"CASE {whens} END" if beside else "NULL")
    return select, joins


def _trial_and_method_parts() -> tuple[list[str], list[str]]:
    """The columns and the joins (after ``trial t``) that read a trial with its vote and its
    method's kind."""
    select, joins = _trial_parts()
    method, output_joins = _output_parts(f"t.{_col(Trial, 'output')}", False, (), "")
    return select + method, joins + output_joins


@cache
def _trials_sql(vendor: str) -> str:
    """Every trial of a session, with its vote and its method's kind."""
    select, joins = _trial_and_method_parts()
    return (
        f"SELECT {', '.join(select)} FROM {_table(Trial)} t {' '.join(joins)} "
        f"WHERE t.{_col(Trial, 'session')} = %s ORDER BY t.{_col(Trial, 'position')}"
    )


def _session_trials(joins: list[str]) -> str:
    """The join of the session ``s`` with its trials ``t``, and ``joins`` after it."""
    return f"JOIN {_table(Trial)} t ON t.{_col(Trial, 'session')} = s.{_col(Session, 'id')} {' '.join(joins)}"


def _shown_trials_sql(vendor: str, shown: int, beside: tuple[tuple[str, str], ...]) -> tuple[list[str], str]:
    """The columns and the FROM of a session's trials (the session by token, ``s``, with
    its study, ``st``), each with its vote, where the first ``shown`` open trials also
    carry their method's kind and their images (see :func:`_output_parts`).

    Only those trials are shown, and the images are most of a "next trial"'s reading: a
    trial's outputs, method, scene and images are five index lookups. PostgreSQL reads them
    in a lateral subquery whose condition on the trial it tests before any lookup; SQLite,
    which has no lateral joins, in joins that find nothing for the other trials."""
    select, joins = _trial_parts()
    open_ = f"r.{_col(Rating, 'id')} IS NULL AND t.{_col(Trial, 'released_at')} IS NULL"
    inner = [f"{column} AS c{index}" for index, column in enumerate(select)] + [
        f"t.{_col(Trial, 'output')} AS output_id",
        f"st.{_col(Study, 'protocol')} AS protocol",
        # Open, and among the first ``shown`` open ones by position.
        f"{open_} AND SUM(CASE WHEN {open_} THEN 1 ELSE 0 END) "
        f"OVER (ORDER BY t.{_col(Trial, 'position')}) <= {int(shown)} AS shown",
    ]
    source = f"(SELECT {', '.join(inner)} {_session_by_token(_session_trials(joins))}) q"
    columns = [f"q.c{index}" for index in range(len(select))]
    if vendor == "postgresql":
        images, output_joins = _output_parts("q.output_id", True, beside, "q.protocol")
        lateral = (
            f"LEFT JOIN LATERAL (SELECT {', '.join(f'{column} AS i{index}' for index, column in enumerate(images))} "
            f"FROM (SELECT 1) one {' '.join(output_joins)} WHERE q.shown) i ON TRUE"
        )
        return columns + [f"i.i{index}" for index in range(len(images))], f"FROM {source} {lateral}"
    images, output_joins = _output_parts("q.output_id AND q.shown", True, beside, "q.protocol")
    return columns + images, f"FROM {source} {' '.join(output_joins)}"


@cache
def _session_trials_sql(vendor: str, shown: int, beside: tuple[tuple[str, str], ...]) -> str:
    """A session by token with its study, in a first row, then every trial of it (see
    :func:`_trials_sql`; with ``shown``, :func:`_shown_trials_sql`), a row each, in position
    order."""
    width = len(Session._meta.concrete_fields) + len(Study._meta.concrete_fields)
    if shown:
        select, source = _shown_trials_sql(vendor, shown, beside)
    else:
        select, joins = _trial_and_method_parts()
        source = _session_by_token(_session_trials(joins))
    # The session's and the study's columns once, in a row of their own, not on every
    # trial's row: each of their timestamps costs a parse in Python. The first column
    # orders that row first, then the trials by position (the third of their columns).
    return (
        f"SELECT 0, {_columns(Session, 's')}, {_columns(Study, 'st')}, {', '.join(['NULL'] * len(select))} "
        f"{_session_by_token()} "
        f"UNION ALL SELECT 1, {', '.join(['NULL'] * width)}, {', '.join(select)} "
        f"{source} "
        f"ORDER BY 1, {width + 3}"
    )


def session_trial_rows(*, session_id: int) -> list[tuple[Any, ...]]:
    """Rows of :func:`_trials_sql` in position order, datetimes converted: (id, position,
    kind, token, released (a boolean), rating id, score, response_ms, created_at, method
    kind)."""
    return _trial_rows(_fetch(_trials_sql(connection.vendor), [session_id]))


def session_with_trials(
    *, token: str, shown: int = 0, beside: tuple[tuple[str, str], ...] = ()
) -> tuple[Session, list[tuple[Any, ...]]] | None:
    """The session holding this token, with its study, and the rows of its trials (as
    :func:`session_trial_rows` returns them; with ``shown``, only the first ``shown`` open
    trials have their method's kind, and they have the columns of their result image and
    of the image beside it too), in one statement: what every "next trial" reads first, in
    one round trip. ``beside`` pairs each protocol with the Scene field of the image shown
    beside the result."""
    rows = _fetch(_session_trials_sql(connection.vendor, shown, beside), [token, token])
    if not rows:
        return None
    trials = 1 + len(Session._meta.concrete_fields) + len(Study._meta.concrete_fields)
    return _session_with_study(rows[0][1:trials]), _trial_rows([row[trials:] for row in rows[1:]])


def _trial_rows(rows: list[tuple[Any, ...]]) -> list[tuple[Any, ...]]:
    # The vote's created_at: SQLite returns it as text.
    converters, col = _field_converters(Rating, "created_at", connection.vendor)
    if not converters:
        # PostgreSQL: the boolean and the datetime arrive as they are.
        return rows
    return [(*row[:4], bool(row[4]), *row[5:8], _convert(converters, col, row[8]), *row[9:]) for row in rows]


def _prep(model: type[models.Model], name: str, value: Any) -> Any:
    return model._meta.get_field(name).get_db_prep_save(value, connection)


_RATING_COLUMNS = ("trial", "score", "response_ms", "created_at")


@cache
def _rating_insert_sql(vendor: str) -> str:
    return (
        f"INSERT INTO {_table(Rating)} ({', '.join(_col(Rating, name) for name in _RATING_COLUMNS)}) "
        f"VALUES ({', '.join(['%s'] * len(_RATING_COLUMNS))}) "
        f"ON CONFLICT ({_col(Rating, 'trial')}) DO NOTHING RETURNING {_col(Rating, 'id')}"
    )


@cache
def _session_update_sql(vendor: str, names: tuple[str, ...]) -> str:
    assignments = ", ".join(f"{_col(Session, name)} = %s" for name in names)
    return f"UPDATE {_table(Session)} SET {assignments} WHERE {_col(Session, 'id')} = %s"


def rating_store(
    *, trial_id: int, score: int, response_ms: int | None, created_at: Any, session_id: int, session: dict[str, Any]
) -> int | None:
    """Store a vote unless its trial already has one (no savepoint) and, if stored, write
    the columns in ``session`` (if any) to the session row: the new rating's id, or None
    when another vote was there first (the session is then left as it was). Where votes
    are not stored with :func:`vote_store`."""
    values = (trial_id, score, response_ms, created_at)
    vote = [_prep(Rating, name, value) for name, value in zip(_RATING_COLUMNS, values, strict=True)]
    rows = _fetch(_rating_insert_sql(connection.vendor), vote)
    if rows and session:
        update = [*(_prep(Session, name, value) for name, value in session.items()), session_id]
        _execute(_session_update_sql(connection.vendor, tuple(session)), update)
    return rows[0][0] if rows else None


class StoredVote(NamedTuple):
    """What :func:`vote_store` found or did, with the session as it stands after it."""

    outcome: str  # one of the VOTE_* below
    session_id: int
    study_id: int
    status: str
    completion_code: str
    completed_at: Any
    last_seen_at: Any
    scale_levels: list[dict[str, Any]]  # the study's scale, which the score was checked against
    # The trial (None when the session has no trial with that token).
    trial_id: int | None
    trial_position: int | None
    trial_kind: str | None
    method_kind: str | None
    released: bool | None
    # Its vote: just stored, stored before, or none (released, not answered, or refused).
    rating_id: int | None
    score: int | None
    response_ms: int | None
    rated_at: Any
    # The progress the answer shows (raters.selectors.session_progress).
    total: int
    answered: int
    training_total: int
    training_answered: int

    @property
    def progress(self) -> dict[str, int]:
        return {
            "total": self.total,
            "answered": self.answered,
            "training_total": self.training_total,
            "training_answered": self.training_answered,
        }


VOTE_STORED = "stored"
VOTE_EXISTING = "existing"  # the trial was answered already: that vote stands
VOTE_RELEASED = "released"  # handed to another rater before it was answered: nothing stored
VOTE_NO_TRIAL = "no_trial"  # no trial with that token in the session: nothing stored
VOTE_BAD_SCORE = "bad_score"  # not a level of the study's scale: nothing stored


def votes_in_one_call() -> bool:
    """Whether this database stores a vote with :func:`vote_store` (PostgreSQL, where
    migration raters 0006 installed the function)."""
    return connection.vendor == "postgresql"


_VOTE_CALL = (
    "SELECT * FROM mosaic_vote(%s::varchar, %s::varchar, %s::integer, %s::integer, "
    "%s::timestamptz, %s::timestamptz, %s::varchar)"
)


def vote_store(
    *,
    session_token: str,
    trial_token: str,
    score: int | None,
    response_ms: int | None,
    now: Any,
    touch_before: Any,
    code: str,
) -> StoredVote | None:
    """Lock the session holding ``session_token``, find its trial holding ``trial_token``,
    check ``score`` (None: not a whole number) against the study's scale, then store the
    vote unless the trial is answered or released, and bring the session's status,
    last_seen_at (if at or before ``touch_before``) and, on completion, its code (``code``)
    and completed_at up to date: one statement, atomic on its own. None if there is no such
    session. PostgreSQL only (see :func:`votes_in_one_call`); raters.services.rating_submit
    does the same in a transaction elsewhere."""
    rows = _fetch(_VOTE_CALL, [session_token, trial_token, score, response_ms, now, touch_before, code])
    if not rows:
        return None
    vote = StoredVote(*rows[0])
    # The scale as the study's JSONField reads it (Django's driver setup hands JSON over as text).
    converters, col = _field_converters(Study, "scale_levels", connection.vendor)
    return vote._replace(scale_levels=_convert(converters, col, vote.scale_levels))


def deferred_instance(model: type[M], values: dict[str, Any]) -> M:
    """A model instance holding only these field values (by attname), as .only() makes
    them: any other field is read from the database on first use."""
    names = [f.attname for f in model._meta.concrete_fields if f.attname in values]
    return model.from_db(connection.alias, names, [values[name] for name in names])


@cache
def _output_loads_sql(vendor: str, pane: str | None) -> str:
    """Every output of a study that raters can be shown (its image imported and, with
    ``pane``, the scene's image beside it too) with its stored load."""
    where = f"m.{_col(Method, 'study')} = %s AND o.{_col(Output, 'image')} IS NOT NULL"
    if pane is not None:
        where += f" AND sc.{_col(Scene, pane)} IS NOT NULL"
    return (
        f"SELECT o.{_col(Output, 'id')}, o.{_col(Output, 'method')}, m.{_col(Method, 'kind')}, "
        f"o.{_col(Output, 'scene')}, COALESCE(l.{_col(OutputLoad, 'trials')}, 0), o.{_col(Output, 'psnr')} "
        f"FROM {_table(Output)} o "
        f"JOIN {_table(Method)} m ON m.{_col(Method, 'id')} = o.{_col(Output, 'method')} "
        f"JOIN {_table(Scene)} sc ON sc.{_col(Scene, 'id')} = o.{_col(Output, 'scene')} "
        f"LEFT JOIN {_table(OutputLoad)} l ON l.{_col(OutputLoad, 'output')} = o.{_col(Output, 'id')} "
        f"WHERE {where} ORDER BY o.{_col(Output, 'id')}"
    )


def study_output_loads(*, study_id: int, pane: str | None) -> list[tuple[int, int, str, int, int, float | None]]:
    """(output id, method id, method kind, scene id, load, PSNR) of every output raters can
    be shown, by id (a fixed order: assignment draws from it with a seeded generator), in
    one statement."""
    return _fetch(_output_loads_sql(connection.vendor, pane), [study_id])


def _load_upsert() -> str:
    """The end of an INSERT of (output, trials) rows that adds to the loads already stored."""
    output, trials, table = _col(OutputLoad, "output"), _col(OutputLoad, "trials"), _table(OutputLoad)
    return f"ON CONFLICT ({output}) DO UPDATE SET {trials} = {table}.{trials} + EXCLUDED.{trials}"


@cache
def _load_add_sql(vendor: str, rows: int) -> str:
    return (
        f"INSERT INTO {_table(OutputLoad)} ({_col(OutputLoad, 'output')}, {_col(OutputLoad, 'trials')}) "
        f"VALUES {', '.join(['(%s, %s)'] * rows)} {_load_upsert()}"
    )


def output_loads_add(trials: Iterable[Any], *, counted: Sequence[str]) -> None:
    """Add new trials (just stored, none released) of a ``counted`` kind to their outputs'
    loads, creating the loads not stored yet, in one statement. ``trials`` have an
    ``output_id`` and a ``kind``. The rows are written in id order, so that two writers
    never wait for each other's rows in opposite orders."""
    counts = Counter(t.output_id for t in trials if t.kind in counted)
    if not counts:
        return
    ids = sorted(counts)
    _execute(_load_add_sql(connection.vendor, len(ids)), [value for i in ids for value in (i, counts[i])])


_TRIAL_COLUMNS = ("session", "output", "position", "kind", "token")


def _trial_values(trial: Any) -> tuple[Any, ...]:
    return (trial.session_id, trial.output_id, trial.position, trial.kind, trial.token)


@cache
def _trials_insert_sql(vendor: str, rows: int) -> str:
    row = f"({', '.join(['%s'] * len(_TRIAL_COLUMNS))})"
    return (
        f"INSERT INTO {_table(Trial)} ({', '.join(_col(Trial, name) for name in _TRIAL_COLUMNS)}) "
        f"VALUES {', '.join([row] * rows)}"
    )


@cache
def _trials_store_sql(vendor: str, counted: int) -> str:
    """PostgreSQL: the trials' INSERT, one array per column, and the loads of their
    outputs counted from the rows it returns, as one statement (data-modifying WITH)."""
    arrays = ", ".join(f"%s::{Trial._meta.get_field(name).db_type(connection)}[]" for name in _TRIAL_COLUMNS)
    output, kind = _col(Trial, "output"), _col(Trial, "kind")
    return (
        f"WITH t AS (INSERT INTO {_table(Trial)} ({', '.join(_col(Trial, name) for name in _TRIAL_COLUMNS)}) "
        f"SELECT * FROM unnest({arrays}) RETURNING {output}, {kind}) "
        f"INSERT INTO {_table(OutputLoad)} ({_col(OutputLoad, 'output')}, {_col(OutputLoad, 'trials')}) "
        f"SELECT {output}, COUNT(*) FROM t WHERE {kind} IN ({', '.join(['%s'] * counted)}) "
        # In id order, as output_loads_add writes them.
        f"GROUP BY {output} ORDER BY {output} {_load_upsert()}"
    )


def trials_store(trials: Sequence[Any], *, counted: Sequence[str]) -> None:
    """Insert new trials (not released; their ids stay unset) and add those of a
    ``counted`` kind to their outputs' loads. ``trials`` have the attributes of
    ``_TRIAL_COLUMNS`` (``session_id``, ``output_id``...). One statement on PostgreSQL;
    the ORM's bulk_create spent longer preparing the values than the database took to
    store them, and a session start does this while every other start of the study waits."""
    if not trials:
        return
    rows = [_trial_values(t) for t in trials]
    if connection.vendor == "postgresql":
        columns = [list(column) for column in zip(*rows, strict=True)]
        _execute(_trials_store_sql(connection.vendor, len(counted)), [*columns, *counted])
        return
    _execute(_trials_insert_sql(connection.vendor, len(rows)), [value for row in rows for value in row])
    output_loads_add(trials, counted=counted)
