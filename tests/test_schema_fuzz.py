"""Property-based requests against every operation of the OpenAPI schema (schemathesis).

Every response must be documented (status code, content type, body schema) and none may
be a server error. Requests run in-process through the WSGI app on the test database,
once as an anonymous rater holding a valid CSRF pair and once as staff; path parameters
point half of the time at a real open study, session and trial so that the fuzzing goes
past the 404s.
"""

from __future__ import annotations

import itertools
import os
import re

import pytest
import schemathesis
from hypothesis import HealthCheck, settings
from schemathesis import checks

from raters import services
from raters.models import Trial
from raters.platforms import RaterIdentity
from tests.raters.conftest import build_study

CSRF = "a" * 32  # an unmasked secret is accepted as both cookie and header value
CHECKS = [
    checks.not_a_server_error,
    checks.status_code_conformance,
    checks.content_type_conformance,
    checks.response_schema_conformance,
]


def _load_schema():
    # Loaded at collection (pytest-django has configured Django by then); generating the
    # schema needs no database.
    from config.wsgi import application

    return schemathesis.openapi.from_wsgi("/api/schema/?format=json", application)


schema = _load_schema()
_turn = itertools.count()


@pytest.fixture(autouse=True)
def keep_the_test_transaction():
    """Requests go through the plain WSGI handler, whose request signals close "old"
    database connections, the test's open transaction included; Django's test client
    disconnects that handler the same way."""
    from django.core.signals import request_finished, request_started
    from django.db import close_old_connections

    request_started.disconnect(close_old_connections)
    request_finished.disconnect(close_old_connections)
    yield
    request_started.connect(close_old_connections)
    request_finished.connect(close_old_connections)


@pytest.fixture
def real_ids(db, django_user_model):
    setup = build_study(methods=3, scenes=3, slug="fuzz", trials_per_session=4)
    session, _ = services.session_start(study=setup.study, identity=RaterIdentity(platform="direct"))
    trial = Trial.objects.filter(session=session).first()
    staff = django_user_model.objects.create_user("staff", password="pw", is_staff=True, is_superuser=True)
    return {"slug": "fuzz", "token": session.token, "trial_token": trial.token, "staff": staff}


def _session_cookie(client_user) -> str:
    from django.test import Client

    client = Client()
    client.force_login(client_user)
    return client.cookies["sessionid"].value


# What Django's URL converters accept; anything else never reaches a view (plain 404).
_CONVERTER = {"slug": r"[-a-zA-Z0-9_]+", "token": r"[^/]+", "trial_token": r"[^/]+", "run_id": r"[0-9]+"}


def _routable(case) -> bool:
    return all(re.fullmatch(_CONVERTER[name], str(value)) for name, value in (case.path_parameters or {}).items())


def _call(case, *, cookies: dict[str, str]) -> None:
    case.cookies = {**(case.cookies or {}), **cookies}
    if not _routable(case):  # negative path values: Django's resolver answers 404 itself
        assert case.call(headers={"X-CSRFToken": CSRF}).status_code == 404
        return
    response = case.call(headers={"X-CSRFToken": CSRF})
    case.validate_response(response, checks=CHECKS)


def _point_at_real_objects(case, real_ids: dict) -> None:
    if next(_turn) % 2 and case.path_parameters:
        for name in ("slug", "token", "trial_token"):
            if name in case.path_parameters:
                case.path_parameters[name] = real_ids[name]


# Local runs explore new random cases each time (they found the undocumented 415 and the
# unparseable-body 400); CI replays a fixed set so that a submission's result is repeatable.
CI = bool(os.environ.get("CI"))


@pytest.mark.django_db
@schema.parametrize()
@settings(max_examples=25, deadline=None, derandomize=CI, suppress_health_check=list(HealthCheck))
def test_anonymous_rater_gets_only_documented_responses(case, real_ids):
    _point_at_real_objects(case, real_ids)
    _call(case, cookies={"csrftoken": CSRF})


@pytest.mark.django_db
@schema.parametrize()
@settings(max_examples=15, deadline=None, derandomize=CI, suppress_health_check=list(HealthCheck))
def test_staff_gets_only_documented_responses(case, real_ids):
    _point_at_real_objects(case, real_ids)
    _call(case, cookies={"csrftoken": CSRF, "sessionid": _session_cookie(real_ids["staff"])})
