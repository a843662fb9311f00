"""raters.sql reads rows with hand-written SQL: what it returns must equal what the ORM
returns for the same rows, field by field, on whichever database the tests run."""

from __future__ import annotations

from dataclasses import replace
from datetime import datetime, timedelta

import pytest
from django.db import models, transaction
from django.urls import reverse
from django.utils import timezone

from raters import selectors, services, sql
from raters.models import Rating, Session, Trial
from raters.platforms import RaterIdentity
from studies.models import ImageAsset, Output, Scene, Study
from tests.raters.conftest import build_study

pytestmark = pytest.mark.django_db


def _fields(instance: models.Model) -> dict[str, object]:
    return {f.attname: getattr(instance, f.attname) for f in type(instance)._meta.concrete_fields}


def _assert_same_row(got: models.Model, expected: models.Model) -> None:
    assert _fields(got) == _fields(expected)
    for name, value in _fields(got).items():
        if isinstance(value, datetime):
            assert timezone.is_aware(value), name


def _started_session() -> Session:
    opened = timezone.now() - timedelta(days=2, microseconds=123)
    setup = build_study(protocol=Study.Protocol.REFERENCE, opened_at=opened)
    session, _ = services.session_start(study=setup.study, identity=RaterIdentity())
    return session


def test_session_with_study_by_token_equals_the_orm() -> None:
    session = _started_session()
    got = sql.session_with_study(token=session.token)
    assert got is not None
    _assert_same_row(got, Session.objects.get(token=session.token))
    _assert_same_row(got.study, Study.objects.get(pk=session.study_id))
    assert isinstance(got.study.scale_levels, list)
    assert got.study.scale_levels == Study.objects.get(pk=session.study_id).scale_levels
    assert got.study.scale_levels
    assert timezone.is_aware(got.study.opened_at)


@pytest.mark.django_db(transaction=True)
def test_statements_run_on_one_kept_cursor_until_the_connection_is_replaced() -> None:
    from django.db import connection

    with sql._cursor() as first:
        first.execute("SELECT 1")
    assert sql._fetch("SELECT CAST(%s AS integer) + 1", [1]) == [(2,)]
    with sql._cursor() as second:
        pass
    if connection.vendor != "postgresql":
        # Django's own cursor, a new one per statement.
        assert second is not first
        return
    assert second is first and second.connection is connection.connection
    connection.close()  # as after an error, or a restart of the database
    with sql._cursor() as third:
        assert third is not first and third.connection is connection.connection
    assert sql._fetch("SELECT CAST(%s AS integer) + 1", [2]) == [(3,)]


def test_session_with_unknown_token_is_none() -> None:
    _started_session()
    assert sql.session_with_study(token="no-such-token") is None
    assert selectors.session_by_token(token="no-such-token") is None


def test_trial_states_agree_with_the_orm() -> None:
    session = _started_session()
    trials = list(Trial.objects.filter(session=session).order_by("position"))
    assert len(trials) >= 3
    votes = [
        services.rating_submit(session_token=session.token, trial_token=t.token, score=4, response_ms=250 + i)
        for i, t in enumerate(trials[:2])
    ]
    assert all(vote.created for vote in votes)
    Trial.objects.filter(pk=trials[-1].pk).update(released_at=timezone.now())

    session, states = selectors.session_with_states(token=session.token, shown=selectors.SHOWN)
    trials = list(
        Trial.objects.filter(session=session)
        .select_related("output__method", "output__image", "output__scene__reference")
        .order_by("position")
    )
    assert [s.id for s in states] == [t.id for t in trials]
    assert {s.answered for s in states} == {True, False}
    assert {s.released for s in states} == {True, False}
    # The first two open trials by position: the third and the fourth (two are answered).
    shown = [t.id for t in trials if t.released_at is None and not Rating.objects.filter(trial=t).exists()][:2]
    assert shown == [trials[2].id, trials[3].id]
    for state, trial in zip(states, trials, strict=True):
        assert (state.position, state.kind, state.token) == (trial.position, trial.kind, trial.token)
        assert state.released == (trial.released_at is not None)
        if trial.id in shown:
            assert state.method_kind == trial.output.method.kind
            assert state.result is not None and state.result.token == trial.output.image.token
            assert state.beside is not None and state.beside.token == trial.output.scene.reference.token
        else:
            assert (state.method_kind, state.result, state.beside) == (None, None, None)
        rating = Rating.objects.filter(trial=trial).first()
        if rating is None:
            assert (state.rating_id, state.score, state.response_ms, state.rated_at) == (None, None, None, None)
            continue
        assert (state.rating_id, state.score, state.response_ms) == (rating.id, rating.score, rating.response_ms)
        assert state.rated_at == rating.created_at
        assert timezone.is_aware(state.rated_at)

    # Every open trial, when as many are asked for; never an answered or a released one.
    _, every = selectors.session_with_states(token=session.token, shown=len(trials))
    assert (
        [s.result is not None for s in every]
        == [s.open for s in every]
        == [s.id not in {t.id for t in trials[:2]} and s.id != trials[-1].id for s in every]
    )

    plain = selectors.session_trial_states(session=session)
    assert [s.id for s in plain] == [s.id for s in states]
    assert all(s.result is None and s.beside is None for s in plain)


def test_image_source_and_summary_urls_equal_reverse() -> None:
    session = _started_session()
    session, states = selectors.session_with_states(token=session.token, shown=selectors.SHOWN)
    state = states[0]
    assert state.result is not None
    image = state.result
    assert image == selectors.ImageRef.of(ImageAsset.objects.get(token=image.token))
    source = selectors.image_source(image=image)
    assert source["url"] == reverse("studies:image-file", kwargs={"token": image.token, "ext": image.ext})
    assert source["tiles"] is None

    ImageAsset.objects.filter(token=image.token).update(tile_status=ImageAsset.TileStatus.DONE)
    tiled = selectors.session_with_states(token=session.token, shown=selectors.SHOWN)[1][0].result
    assert tiled is not None and tiled.tiled
    assert selectors.image_source(image=tiled)["tiles"] == reverse("studies:tiles-dzi", kwargs={"token": image.token})

    summary = selectors.session_summary(session=session)
    assert summary["rating_page"] == reverse("raters:rate", kwargs={"token": session.token})


@pytest.mark.parametrize(
    ("protocol", "beside"),
    [
        (Study.Protocol.REFERENCE, ("reference", "Reference (DSLR)")),
        (Study.Protocol.INPUT, ("input", "Input photo")),
        (Study.Protocol.SINGLE, None),
    ],
)
def test_panes_show_the_image_the_protocol_puts_beside_the_result(protocol: str, beside: tuple | None) -> None:
    setup = build_study(protocol=protocol)
    session, _ = services.session_start(study=setup.study, identity=RaterIdentity())
    # Every trial shown: a new session's are all open.
    session, states = selectors.session_with_states(token=session.token, shown=100)
    for state in states:
        trial = Trial.objects.select_related("output__image", "output__scene").get(pk=state.id)
        panes = selectors.trial_panes(state=state, protocol=protocol)
        expected = [("result", "Result", trial.output.image.token)]
        if beside is not None:
            field, label = beside
            expected.insert(0, ("reference", label, getattr(trial.output.scene, field).token))
        got = [(pane["role"], pane["label"], pane["url"].split("/")[-1].split(".")[0]) for pane in panes]
        assert got == sorted(expected)


@pytest.mark.parametrize("protocol", [Study.Protocol.REFERENCE, Study.Protocol.INPUT, Study.Protocol.SINGLE])
@pytest.mark.parametrize("shown", [0, 1, selectors.SHOWN])
def test_session_with_its_trials_in_one_statement_equals_the_two_reads(protocol: str, shown: int) -> None:
    setup = build_study(protocol=protocol, methods=3, scenes=4, trials_per_session=6)
    session, _ = services.session_start(study=setup.study, identity=RaterIdentity())
    trials = list(Trial.objects.filter(session=session).order_by("position"))
    for trial in trials[:2]:
        services.rating_submit(session_token=session.token, trial_token=trial.token, score=2, response_ms=9)
    Trial.objects.filter(pk=trials[-1].pk).update(released_at=timezone.now())
    # Another session of the study, whose trials must not come along.
    services.session_start(study=setup.study, identity=RaterIdentity())

    found = selectors.session_with_states(token=session.token, shown=shown)
    assert found is not None
    got, states = found
    _assert_same_row(got, Session.objects.get(pk=session.pk))
    _assert_same_row(got.study, Study.objects.get(pk=setup.study.pk))
    assert got.study.scale_levels == Study.objects.get(pk=setup.study.pk).scale_levels
    # The trials the plain read finds, as they stand, the ones not shown without their
    # method's kind; the images are checked against the ORM in the tests above.
    expected = selectors.session_trial_states(session=got)
    first_open = [state.id for state in expected if state.open][:shown]
    assert len(first_open) == shown
    assert [replace(state, images=()) for state in states] == [
        state if not shown or state.id in first_open else replace(state, method_kind=None) for state in expected
    ]
    assert [state.id for state in states] == [trial.id for trial in trials]
    assert {state.answered for state in states} == {True, False} and any(state.released for state in states)
    beside = selectors.beside_field(protocol)
    for state in states:
        assert (state.result is not None) == (state.id in first_open)
        assert (state.beside is not None) == (state.id in first_open and beside is not None)


def test_session_with_its_trials_reads_a_session_without_trials_or_none() -> None:
    session = _started_session()
    Trial.objects.filter(session=session).delete()
    found = selectors.session_with_states(token=session.token, shown=selectors.SHOWN)
    assert found is not None
    got, states = found
    _assert_same_row(got, Session.objects.get(pk=session.pk))
    assert states == []
    assert selectors.session_with_states(token="no-such-token") is None
    assert selectors.session_with_states(token="") is None


def _orm_output_loads(study: Study) -> list[tuple]:
    """The loads as the ORM counts them: the reference the hand-written statement must equal."""
    counted = models.Q(trials__kind__in=services.TRIAL_KINDS_COUNTED) & (
        models.Q(trials__released_at__isnull=True) | models.Q(trials__rating__isnull=False)
    )
    outputs = Output.objects.filter(method__study=study, image__isnull=False)
    if study.protocol == Study.Protocol.REFERENCE:
        outputs = outputs.filter(scene__reference__isnull=False)
    elif study.protocol == Study.Protocol.INPUT:
        outputs = outputs.filter(scene__input__isnull=False)
    rows = outputs.annotate(counted=models.Count("trials", filter=counted)).values_list(
        "id", "method_id", "method__kind", "scene_id", "counted", "psnr"
    )
    return list(rows)


@pytest.mark.parametrize("protocol", [Study.Protocol.REFERENCE, Study.Protocol.INPUT, Study.Protocol.SINGLE])
def test_output_loads_are_the_counts_the_orm_makes_in_id_order(protocol: str) -> None:
    setup = build_study(protocol=protocol, methods=3, scenes=4, trials_per_session=6)
    study = setup.study
    outputs = list(Output.objects.filter(method__study=study).order_by("pk"))
    Output.objects.filter(pk=outputs[0].pk).update(psnr=31.5)
    # One scene without the image beside the result, one output without its own image.
    Scene.objects.filter(pk=setup.scenes[1].pk).update(**{"input" if protocol == "input" else "reference": None})
    Output.objects.filter(pk=outputs[-1].pk).update(image=None)
    sessions = [services.session_start(study=study, identity=RaterIdentity())[0] for _ in range(3)]
    trials = list(Trial.objects.filter(session=sessions[0], kind__in=services.TRIAL_KINDS_COUNTED))
    # The first session answers two trials, then leaves: its four others are released.
    for trial in trials[:2]:
        Rating.objects.create(trial=trial, score=3)
    Session.objects.filter(pk=sessions[0].pk).update(last_seen_at=timezone.now() - timedelta(hours=5))
    assert services.sessions_release_abandoned(study=study) == 1

    pane = selectors.beside_field(protocol)
    got = sql.study_output_loads(study_id=study.pk, pane=pane)
    assert got == sorted(_orm_output_loads(study))
    assert sum(row[4] for row in got) == 3 * len(trials) - (len(trials) - 2), "released unanswered trials left"
    assert len(got) < len(outputs), "outputs raters cannot be shown are left out"
    assert any(row[5] == 31.5 for row in got)


@pytest.mark.parametrize(
    ("file", "ext"),
    [
        ("images/ab/c0ffee.PNG", "png"),
        ("images/ab/c0ffee.webp", "webp"),
        ("images/ab/c0ffee", "png"),
        ("images/a.b/c0ffee", "png"),
        ("images/ab/c0ffee.", "png"),
        ("", "png"),
    ],
)
def test_image_reference_takes_the_stored_files_extension(file: str, ext: str) -> None:
    ref = selectors.ImageRef.from_columns("tok", file, ImageAsset.TileStatus.DONE, 10, 20)
    assert (ref.ext, ref.tiled, ref.width, ref.height) == (ext, True, 10, 20)
    assert selectors.ImageRef.from_columns(None, file, "", 0, 0) is None


def test_hand_written_statements_fail_as_django_errors_and_respect_a_broken_transaction() -> None:
    from django.db import DatabaseError
    from django.db.transaction import TransactionManagementError

    with transaction.atomic():
        with pytest.raises(DatabaseError) as error:
            with transaction.atomic(savepoint=False):
                sql._fetch("SELECT * FROM no_such_table", [])
        # A django.db error, as the ORM raises: what the views and the health checks handle.
        assert type(error.value).__module__ == "django.db.utils"
        with pytest.raises(TransactionManagementError):
            sql._fetch("SELECT 1", [])


def test_study_by_slug_equals_the_orm_and_leaves_out_the_excluded_status() -> None:
    setup = build_study(opened_at=timezone.now() - timedelta(hours=1, microseconds=5))
    study = Study.objects.get(pk=setup.study.pk)
    got = sql.study_by_slug(slug=study.slug, excluded_status=Study.Status.DRAFT)
    assert got is not None
    _assert_same_row(got, study)
    assert got.scores == study.scores
    assert sql.study_by_slug(slug=study.slug, excluded_status=study.status) is None
    assert sql.study_by_slug(slug="no-such-study", excluded_status=Study.Status.DRAFT) is None
    Study.objects.filter(pk=study.pk).update(status=Study.Status.DRAFT)
    assert selectors.study_for_rater(slug=study.slug) is None


def test_locked_study_equals_the_orm() -> None:
    setup = build_study()
    with transaction.atomic():
        _assert_same_row(sql.study_locked(study_id=setup.study.pk), Study.objects.get(pk=setup.study.pk))


def test_session_of_rater_is_the_one_the_orm_finds() -> None:
    setup = build_study()
    other = build_study(slug="other-study")
    identity = RaterIdentity(platform="prolific", external_id="p-1")
    session, _ = services.session_start(study=setup.study, identity=identity)
    elsewhere, _ = services.session_start(study=other.study, identity=identity)
    services.session_start(study=setup.study, identity=RaterIdentity(platform="prolific", external_id="p-2"))

    got = selectors.session_of_rater(study=setup.study, platform="prolific", external_id="p-1")
    assert got is not None
    _assert_same_row(got, Session.objects.get(study=setup.study, rater__external_id="p-1"))
    assert got.study is setup.study
    assert sql.session_of_rater(study_id=other.study.pk, platform="prolific", external_id="p-1").pk == elsewhere.pk
    assert sql.session_of_rater(study_id=setup.study.pk, platform="mturk", external_id="p-1") is None
    assert sql.session_of_rater(study_id=setup.study.pk, platform="prolific", external_id="p-3") is None
    assert session.pk == got.pk


def test_stale_session_ids_are_the_ones_the_orm_filters() -> None:
    setup = build_study()
    other = build_study(slug="other-study")
    sessions = [
        services.session_start(study=s.study, identity=RaterIdentity())[0] for s in (setup, setup, setup, setup, other)
    ]
    now = timezone.now()
    long_ago = now - timedelta(hours=5)
    stale = [sessions[0].pk, sessions[1].pk, sessions[3].pk, sessions[4].pk]
    Session.objects.filter(pk__in=stale).update(last_seen_at=long_ago)
    Session.objects.filter(pk=sessions[1].pk).update(status=Session.Status.COMPLETE)
    statuses = services.ACTIVE_STATUSES
    before = now - timedelta(hours=1)
    expected = Session.objects.filter(study=setup.study, status__in=statuses, last_seen_at__lt=before)
    for lock in (False, True):
        got = sql.stale_session_ids(study_id=setup.study.pk, statuses=statuses, seen_before=before, lock=lock)
        assert got == sorted(expected.values_list("id", flat=True)) == [sessions[0].pk, sessions[3].pk]


def test_trials_store_inserts_the_planned_rows_and_counts_the_counted_kinds_in_the_loads() -> None:
    from raters.models import OutputLoad

    setup = build_study(methods=2, scenes=2, trials_per_session=2)
    session, _ = services.session_start(study=setup.study, identity=RaterIdentity())
    before = dict(OutputLoad.objects.values_list("output_id", "trials"))
    a, b = setup.rated_outputs[:2]
    planned = [
        services.NewTrial(session.pk, a.pk, 50, Trial.Kind.RATING, "tok-1"),
        services.NewTrial(session.pk, a.pk, 51, Trial.Kind.CONTROL, "tok-2"),
        services.NewTrial(session.pk, b.pk, 52, Trial.Kind.TRAINING, "tok-3"),
    ]
    sql.trials_store(planned, counted=services.TRIAL_KINDS_COUNTED)
    stored = Trial.objects.filter(position__gte=50).order_by("position")
    rows = [(t.session_id, t.output_id, t.position, t.kind, t.token, t.released_at) for t in stored]
    assert rows == [(*trial, None) for trial in planned]
    after = dict(OutputLoad.objects.values_list("output_id", "trials"))
    assert after[a.pk] == before.get(a.pk, 0) + 2, "rating and control count"
    assert after.get(b.pk, 0) == before.get(b.pk, 0), "training does not"
    assert selectors.output_load_drift(study=setup.study) == {}


def test_rater_insert_stores_a_new_rater_once_per_platform_id() -> None:
    from raters.models import Rater

    rater = Rater(platform="prolific", external_id="p-9", screen_width=1920, device_pixel_ratio=1.5)
    assert sql.rater_insert(rater)
    stored = Rater.objects.get(pk=rater.pk)
    _assert_same_row(rater, stored)
    assert stored.created_at is not None and stored.user_agent == ""

    again = Rater(platform="prolific", external_id="p-9", screen_width=640)
    assert not sql.rater_insert(again)
    assert again.pk is None
    assert Rater.objects.get(platform="prolific", external_id="p-9").screen_width == 1920
    # Another platform's p-9, and direct raters (no platform id), are other raters.
    assert sql.rater_insert(Rater(platform="mturk", external_id="p-9"))
    assert sql.rater_insert(Rater()) and sql.rater_insert(Rater())
    assert Rater.objects.count() == 4
