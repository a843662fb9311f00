"""The rater's pages: arrival with consent and instructions, the rating screen, the end.

The rating screen is a shell; its script talks to raters.api, which calls the same
services as the arrival form here.
"""

from __future__ import annotations

import math
from types import SimpleNamespace
from typing import Any

from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.views.decorators.csrf import ensure_csrf_cookie
from django.views.decorators.http import require_http_methods, require_safe
from rest_framework.exceptions import ValidationError
from rest_framework.throttling import ScopedRateThrottle

from raters import capacity, selectors, services
from raters.api.serializers import DeviceSerializer
from raters.completion import session_completion
from raters.cookies import remember_session, resume_token
from raters.models import Rater, Session
from raters.platforms import InvalidIdentity, identity_from_params, identity_params
from studies.models import Study
from studies.protocols import wording


def _unavailable(request: HttpRequest, message: str, status: int) -> HttpResponse:
    return render(request, "raters/unavailable.html", {"message": message}, status=status)


def _full(request: HttpRequest, study: Study) -> HttpResponse:
    """The page of a rater who arrives once the study is full, with the way back."""
    return render(request, "raters/full.html", {"study": study, "return_url": study.full_return_url}, status=409)


def _start_refused_for(request: HttpRequest) -> float | None:
    """Seconds to wait when this client started too many sessions, else None.

    The API's "session_start" throttle: same rate, and the same per-client bucket, so
    alternating between the form and the API buys no extra starts.
    """
    throttle = ScopedRateThrottle()
    if throttle.allow_request(request, SimpleNamespace(throttle_scope="session_start")):
        return None
    return throttle.wait() or 60.0


def _levels_ascending(study: Study) -> list[dict[str, Any]]:
    return sorted(study.scale_levels, key=lambda level: int(level["score"]))


def _device_from_form(request: HttpRequest) -> dict[str, Any]:
    """The device fields the entry page's script filled in, those that are valid."""
    device = {"user_agent": request.headers.get("User-Agent", "")[:1000]}
    for name, field in DeviceSerializer().fields.items():
        try:
            device[name] = field.run_validation(request.POST[name])
        except (KeyError, ValidationError):
            pass
    return device


@ensure_csrf_cookie
@require_http_methods(["GET", "HEAD", "POST"])
def study_entry(request: HttpRequest, slug: str) -> HttpResponse:
    """Consent and instructions; the form starts (or resumes) the session."""
    study = selectors.study_for_rater(slug=slug)
    if study is None:
        return _unavailable(request, "This study does not exist or is not open yet.", 404)
    params = request.POST if request.method == "POST" else request.GET
    try:
        identity = identity_from_params(params)
    except InvalidIdentity as error:
        return _unavailable(request, str(error), 400)

    try:
        existing = services.session_known(study=study, identity=identity, resume_token=resume_token(request, study))
    except services.SessionElsewhere as error:
        return _unavailable(request, str(error), 409)
    if existing is not None and request.method != "POST":
        return redirect("raters:rate", token=existing.token)
    if existing is None and study.status == Study.Status.OPEN and capacity.study_is_full(study=study):
        return _full(request, study)
    if request.method == "POST" and params.get("consent") == "yes":
        wait = _start_refused_for(request)
        if wait is not None:
            response = _unavailable(
                request,
                f"Too many sessions were started from your network just now. "
                f"Please wait {math.ceil(wait)} seconds and try again.",
                429,
            )
            response["Retry-After"] = str(math.ceil(wait))
            return response
        try:
            session, _ = services.session_start(
                study=study,
                identity=identity,
                resume_token=resume_token(request, study),
                device=_device_from_form(request),
            )
        except services.StudyFull:
            return _full(request, study)
        except (services.StudyNotOpen, services.SessionElsewhere) as error:
            return _unavailable(request, str(error), 409)
        response = redirect("raters:rate", token=session.token)
        remember_session(request, response, session)
        return response
    if study.status != Study.Status.OPEN:
        return _unavailable(request, "This study has closed. Thank you for your interest.", 410)
    return render(
        request,
        "raters/entry.html",
        {
            "study": study,
            "levels": study.scale_levels,
            "plan": selectors.session_plan(study=study),
            "identity_params": identity_params(identity),
            "preview": identity.preview,
            "consent_missing": request.method == "POST",
            "protocol": study.protocol,
            "wording": wording(study.protocol),
            "is_mturk": identity.platform == Rater.Platform.MTURK,
        },
    )


@ensure_csrf_cookie
@require_safe
def rate(request: HttpRequest, token: str) -> HttpResponse:
    session = selectors.session_by_token(token=token)
    if session is None:
        return _unavailable(request, "This session link is not valid.", 404)
    if session.status == Session.Status.COMPLETE:
        return redirect("raters:done", token=session.token)
    study = session.study
    config = {
        "protocol": study.protocol,
        "levels": _levels_ascending(study),
        "urls": {
            "next": reverse("raters:api-trial-next", kwargs={"token": session.token}),
            "device": reverse("raters:api-session-device", kwargs={"token": session.token}),
            "rating": reverse("raters:api-rating-submit", kwargs={"token": session.token, "trial_token": "TRIAL"}),
            "done": reverse("raters:done", kwargs={"token": session.token}),
        },
        "storageKey": f"mosaic-pending-{session.pk}",
    }
    context = {
        "study": study,
        "config": config,
        "wording": wording(study.protocol),
        # For the instructions the rater can reopen while rating.
        "levels": study.scale_levels,
        "protocol": study.protocol,
    }
    response = render(request, "raters/rate.html", context)
    remember_session(request, response, session)
    return response


@require_safe
def done(request: HttpRequest, token: str) -> HttpResponse:
    session = selectors.session_by_token(token=token)
    if session is None:
        return _unavailable(request, "This session link is not valid.", 404)
    if session.status != Session.Status.COMPLETE:
        return redirect("raters:rate", token=session.token)
    return render(
        request,
        "raters/done.html",
        {"study": session.study, "completion": session_completion(session=session)},
    )
