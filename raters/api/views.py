"""The rater API: start or resume a session, get the next trial, submit a vote.

The session token in the URL is the credential. CSRF is enforced on every unsafe request,
for anonymous raters too: DRF's SessionAuthentication would only check it for logged-in
users, and a vote forged from another site must not land.
"""

from __future__ import annotations

from django.http import Http404
from django.middleware.csrf import CsrfViewMiddleware
from drf_spectacular.extensions import OpenApiAuthenticationExtension
from drf_spectacular.utils import OpenApiResponse, extend_schema
from rest_framework import exceptions, status
from rest_framework.authentication import BaseAuthentication
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.throttling import ScopedRateThrottle
from rest_framework.views import APIView

from raters import selectors, services
from raters.api import serializers as s
from raters.cookies import remember_session, resume_token
from raters.models import Session, Trial
from raters.platforms import InvalidIdentity, identity_from_params


class _CsrfCheck(CsrfViewMiddleware):
    def _reject(self, request, reason):  # noqa: ANN001, ANN202 - Django's signature
        return reason


class CsrfForEveryone(BaseAuthentication):
    """Authenticates nobody; refuses an unsafe request without a valid CSRF token."""

    def authenticate(self, request: Request) -> None:
        check = _CsrfCheck(lambda req: None)
        check.process_request(request._request)
        reason = check.process_view(request._request, None, (), {})
        if reason:
            raise exceptions.PermissionDenied(f"CSRF Failed: {reason}")
        return None


class CsrfForEveryoneScheme(OpenApiAuthenticationExtension):
    target_class = "raters.api.views.CsrfForEveryone"
    name = "csrfToken"

    def get_security_definition(self, auto_schema):  # noqa: ANN001, ANN201 - extension API
        return {
            "type": "apiKey",
            "in": "header",
            "name": "X-CSRFToken",
            "description": "The csrftoken cookie's value, required on POST (set by the study page).",
        }


class RaterAPIView(APIView):
    authentication_classes = [CsrfForEveryone]
    throttle_classes = [ScopedRateThrottle]

    def session_or_404(self, token: str) -> Session:
        session = selectors.session_by_token(token=token)
        if session is None:
            raise Http404("No such session.")
        return session


def _rating_payload(vote: services.Vote) -> dict:
    trial, rating, session = vote.trial, vote.rating, vote.session
    feedback = None
    if trial.kind == Trial.Kind.TRAINING:
        feedback = selectors.training_feedback(
            study=session.study, method_kind=trial.output.method.kind, score=rating.score
        )
    return {
        "trial": trial.token,
        "score": rating.score,
        "response_ms": rating.response_ms,
        "created_at": rating.created_at,
        "feedback": feedback,
        "session": selectors.session_summary(session=session, progress=vote.progress),
    }


class SessionStartView(RaterAPIView):
    throttle_scope = "session_start"

    @extend_schema(
        summary="Start a session, or resume the rater's existing one",
        request=s.SessionStartInputSerializer,
        responses={
            200: OpenApiResponse(s.SessionOutputSerializer, "Resumed"),
            201: OpenApiResponse(s.SessionOutputSerializer, "Started"),
            400: OpenApiResponse(description="Invalid platform parameters or device"),
            403: OpenApiResponse(s.ErrorSerializer, "Missing CSRF token"),
            404: OpenApiResponse(s.ErrorSerializer, "No such study"),
            409: OpenApiResponse(s.ErrorSerializer, "The study is not taking new raters"),
        },
    )
    def post(self, request: Request, slug: str) -> Response:
        study = selectors.study_for_rater(slug=slug)
        if study is None:
            raise Http404("No such study.")
        start_input = s.SessionStartInputSerializer(data=request.data)
        start_input.is_valid(raise_exception=True)
        data = start_input.validated_data
        try:
            identity = identity_from_params(data)
        except InvalidIdentity as error:
            raise exceptions.ValidationError({"identity": [str(error)]}) from error
        device = dict(data.get("device") or {})
        device.setdefault("user_agent", request.headers.get("User-Agent", "")[:1000])
        try:
            session, created = services.session_start(
                study=study, identity=identity, resume_token=resume_token(request, study), device=device
            )
        except services.StudyNotOpen as error:
            return Response({"detail": str(error)}, status=status.HTTP_409_CONFLICT)
        response = Response(
            selectors.session_summary(session=session),
            status=status.HTTP_201_CREATED if created else status.HTTP_200_OK,
        )
        remember_session(request, response, session)
        return response


class SessionDetailView(RaterAPIView):
    @extend_schema(summary="A session's status and progress", responses={200: s.SessionOutputSerializer})
    def get(self, request: Request, token: str) -> Response:
        session = self.session_or_404(token)
        return Response(selectors.session_summary(session=session))


class SessionDeviceView(RaterAPIView):
    @extend_schema(
        summary="Record the rater's screen, viewport, pixel ratio and browser",
        request=s.DeviceSerializer,
        responses={204: None, 400: OpenApiResponse(description="Invalid values")},
    )
    def post(self, request: Request, token: str) -> Response:
        session = self.session_or_404(token)
        data = s.DeviceSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        device = dict(data.validated_data)
        device.setdefault("user_agent", request.headers.get("User-Agent", "")[:1000])
        services.rater_device_record(rater=session.rater, device=device)
        return Response(status=status.HTTP_204_NO_CONTENT)


class TrialNextView(RaterAPIView):
    @extend_schema(
        summary="The first unanswered trial (where a reload resumes) and the one after it",
        responses={200: s.NextOutputSerializer, 404: s.ErrorSerializer},
    )
    def get(self, request: Request, token: str) -> Response:
        try:
            session = services.session_resume(token=token)
        except services.SessionNotFound as error:
            raise Http404(str(error)) from error
        progress = selectors.session_progress(session=session)
        summaries = selectors.shown_summaries(session=session, progress=progress)
        return Response(
            {
                "session": selectors.session_summary(session=session, progress=progress),
                "trial": summaries[0] if summaries else None,
                "upcoming": summaries[1] if len(summaries) > 1 else None,
            }
        )


class RatingSubmitView(RaterAPIView):
    throttle_scope = "vote"

    @extend_schema(
        summary="Submit the vote for a trial (idempotent)",
        request=s.RatingInputSerializer,
        responses={
            200: OpenApiResponse(s.RatingOutputSerializer, "The same vote was already stored"),
            201: OpenApiResponse(s.RatingOutputSerializer, "Stored"),
            400: OpenApiResponse(description="Score outside the scale or not a whole number"),
            403: OpenApiResponse(s.ErrorSerializer, "Missing CSRF token"),
            404: OpenApiResponse(s.ErrorSerializer, "No such session, or the trial is not in it"),
            409: OpenApiResponse(s.ConflictSerializer, "A different vote is stored, or the trial was released"),
        },
    )
    def post(self, request: Request, token: str, trial_token: str) -> Response:
        vote_input = s.RatingInputSerializer(data=request.data)
        vote_input.is_valid(raise_exception=True)
        data = vote_input.validated_data
        try:
            vote = services.rating_submit(
                session_token=token,
                trial_token=trial_token,
                score=data["score"],
                response_ms=data.get("response_ms"),
            )
        except (services.SessionNotFound, services.TrialNotFound) as error:
            raise Http404(str(error)) from error
        except services.InvalidScore as error:
            raise exceptions.ValidationError({"score": [str(error)]}) from error
        except services.VoteConflict as error:
            # The stored vote, with the session as it stands.
            rating = _rating_payload(error.vote)
            return Response(
                {"detail": str(error), "code": "conflict", "rating": rating}, status=status.HTTP_409_CONFLICT
            )
        except services.TrialReleased as error:
            return Response({"detail": str(error), "code": "released"}, status=status.HTTP_409_CONFLICT)
        return Response(
            _rating_payload(vote),
            status=status.HTTP_201_CREATED if vote.created else status.HTTP_200_OK,
        )
