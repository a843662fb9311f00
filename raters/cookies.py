"""The cookie that lets a rater without a platform id resume their session."""

from __future__ import annotations

from django.http import HttpRequest, HttpResponse

from raters.models import Session
from studies.models import Study

MAX_AGE = 30 * 24 * 3600


def cookie_name(study: Study) -> str:
    return f"mosaic_session_{study.pk}"


def resume_token(request: HttpRequest, study: Study) -> str:
    return request.COOKIES.get(cookie_name(study), "")[:64]


def remember_session(request: HttpRequest, response: HttpResponse, session: Session) -> None:
    # HttpOnly: page scripts get the token from the page itself, never from the cookie.
    response.set_cookie(
        cookie_name(session.study),
        session.token,
        max_age=MAX_AGE,
        httponly=True,
        samesite="Lax",
        secure=request.is_secure(),
    )
