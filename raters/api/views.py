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
from rest_framework import exceptions, serializers, status
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
from raters.practice import practice_role


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


class PerSessionRateThrottle(ScopedRateThrottle):
    """DRF's scoped throttle counted per session (the token in the URL), not per address:
    a class or a lab behind one address has one budget per rater."""

    def get_cache_key(self, request: Request, view: APIView) -> str | None:
        token = view.kwargs.get("token")
        if not token:
            return super().get_cache_key(request, view)
        return self.cache_format % {"scope": self.scope, "ident": token}


class RaterAPIView(APIView):
    authentication_classes = [CsrfForEveryone]
    throttle_classes = [PerSessionRateThrottle]
    # Per session (see PerSessionRateThrottle): reads of a session and its trials.
    throttle_scope = "session"

    def valid(self, serializer_class: type[serializers.Serializer]) -> dict:
        """The request's body checked by ``serializer_class`` (400 with its errors if not)."""
        serializer = serializer_class(data=self.request.data)
        serializer.is_valid(raise_exception=True)
        return serializer.validated_data

    def device(self, fields: dict | None) -> dict:
        return {"user_agent": self.request.headers.get("User-Agent", "")[:1000], **(fields or {})}

    def session_or_404(self, token: str) -> Session:
        session = selectors.session_by_token(token=token)
        if session is None:
            raise Http404("No such session.")
        return session

    def handle_exception(self, exc: Exception) -> Response:
        # The rater flow's errors, as the answers the schema documents.
        if isinstance(exc, services.SessionNotFound | services.TrialNotFound):
            exc = Http404(str(exc))
        elif isinstance(exc, services.InvalidScore):
            exc = exceptions.ValidationError({"score": [str(exc)]})
        elif isinstance(exc, services.StudyNotOpen | services.SessionElsewhere):
            return Response({"detail": str(exc)}, status=status.HTTP_409_CONFLICT)
        elif isinstance(exc, services.TrialReleased):
            return Response({"detail": str(exc), "code": "released"}, status=status.HTTP_409_CONFLICT)
        elif isinstance(exc, services.VoteConflict):
            # The stored vote, with the session as it stands.
            body = {"detail": str(exc), "code": "conflict", "rating": _rating_payload(exc.vote)}
            return Response(body, status=status.HTTP_409_CONFLICT)
        return super().handle_exception(exc)


def _rating_payload(vote: services.Vote) -> dict:
    trial, rating, session = vote.trial, vote.rating, vote.session
    feedback = None
    if trial["kind"] == Trial.Kind.TRAINING:
        feedback = selectors.training_feedback(
            study=session.study,
            method_kind=trial["output__method__kind"],
            score=rating.score,
            role=practice_role(session=session, trial_pk=trial["pk"]),
        )
    return {
        "trial": trial["token"],
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
            409: OpenApiResponse(s.ErrorSerializer, "Not taking new raters, or the id's session is elsewhere"),
        },
    )
    def post(self, request: Request, slug: str) -> Response:
        study = selectors.study_for_rater(slug=slug)
        if study is None:
            raise Http404("No such study.")
        data = self.valid(s.SessionStartInputSerializer)
        try:
            identity = identity_from_params(data)
        except InvalidIdentity as error:
            raise exceptions.ValidationError({"identity": [str(error)]}) from error
        session, created = services.session_start(
            study=study,
            identity=identity,
            resume_token=resume_token(request, study),
            device=self.device(data.get("device")),
        )
        response = Response(selectors.session_summary(session=session), status=201 if created else 200)
        remember_session(request, response, session)
        return response


class SessionDetailView(RaterAPIView):
    @extend_schema(summary="A session's status and progress", responses={200: s.SessionOutputSerializer})
    def get(self, request: Request, token: str) -> Response:
        return Response(selectors.session_summary(session=self.session_or_404(token)))


class SessionDeviceView(RaterAPIView):
    @extend_schema(
        summary="Record the rater's screen, viewport, pixel ratio and browser",
        request=s.DeviceSerializer,
        responses={204: None},
    )
    def post(self, request: Request, token: str) -> Response:
        session = self.session_or_404(token)
        services.rater_device_record(rater=session.rater, device=self.device(self.valid(s.DeviceSerializer)))
        return Response(status=status.HTTP_204_NO_CONTENT)


class TrialNextView(RaterAPIView):
    @extend_schema(
        summary="The first unanswered trial (where a reload resumes) and the one after it",
        responses={200: s.NextOutputSerializer},
    )
    def get(self, request: Request, token: str) -> Response:
        session = services.session_resume(token=token)
        progress, summaries = selectors.next_trials(session=session)
        return Response(
            {
                "session": selectors.session_summary(session=session, progress=progress),
                "trial": summaries[0] if summaries else None,
                "upcoming": summaries[1] if len(summaries) > 1 else None,
                "later": summaries[2] if len(summaries) > 2 else None,
            }
        )


class RatingSubmitView(RaterAPIView):
    throttle_scope = "vote"

    @extend_schema(
        summary="Submit the vote for a trial: 201 stored, 200 the same vote again, 409 another vote or released",
        request=s.RatingInputSerializer,
        responses={200: s.RatingOutputSerializer, 201: s.RatingOutputSerializer, 409: s.ConflictSerializer},
    )
    def post(self, request: Request, token: str, trial_token: str) -> Response:
        data = self.valid(s.RatingInputSerializer)
        vote = services.rating_submit(
            session_token=token, trial_token=trial_token, score=data["score"], response_ms=data.get("response_ms")
        )
        return Response(_rating_payload(vote), status=201 if vote.created else 200)
