"""Organizer API: the latest results of a study as JSON, and queueing a new analysis.

Staff only (``IsAdminUser``), authenticated by the admin session like the results page.
"""

from __future__ import annotations

from django.shortcuts import get_object_or_404
from drf_spectacular.utils import OpenApiResponse, extend_schema, extend_schema_serializer
from rest_framework import serializers, status
from rest_framework.permissions import SAFE_METHODS, BasePermission, IsAdminUser
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from analysis.api.serializers import (
    AnalysisRunSerializer,
    CorrelationRowSerializer,
    CoverageSerializer,
    LeaderboardRowSerializer,
    ManualExclusionSerializer,
    ScreeningSerializer,
)
from analysis.models import AnalysisRun
from studies.models import Study

# The analysis modules (pandas, SciPy, statsmodels) are imported by the methods that use
# them, as in analysis.views: a web worker serving raters loads this module and never
# needs them.

# DRF's validation error body: {"field": ["message", ...], ...}.
# DRF's 400: each offending field with its messages, or {"detail": ...} when the body is
# not parseable JSON at all.
FIELD_ERRORS = {
    "type": "object",
    "properties": {"detail": {"type": "string"}},
    "additionalProperties": {"type": "array", "items": {"type": "string"}},
}


# The most bootstrap resamples a run may ask for (2000 by default).
MAX_BOOT = 10_000


class CanRunAnalysis(BasePermission):
    """Queueing a run takes the analysis permission (staff alone may read results)."""

    message = "Running an analysis needs the permission 'analysis | analysis run | Can add analysis run'."

    def has_permission(self, request: Request, view: APIView) -> bool:
        return request.method in SAFE_METHODS or request.user.has_perm("analysis.add_analysisrun")


class OrganizerAPIView(APIView):
    permission_classes = [IsAdminUser, CanRunAnalysis]

    def study_or_404(self, slug: str) -> Study:
        return get_object_or_404(Study, slug=slug)


# Every view nests its own InputSerializer/OutputSerializer (STYLE.md); the schema needs
# distinct component names for them.
class StudyResultsView(OrganizerAPIView):
    @extend_schema_serializer(component_name="StudyResults")
    class OutputSerializer(serializers.Serializer):
        study = serializers.SlugField()
        run = AnalysisRunSerializer(allow_null=True, help_text="Latest finished run.")
        latest_run = AnalysisRunSerializer(allow_null=True, help_text="Newest run, any status.")
        leaderboard = LeaderboardRowSerializer(many=True, help_text="Screened raters excluded.")
        leaderboard_all_raters = LeaderboardRowSerializer(many=True)
        correlations = CorrelationRowSerializer(many=True)
        screening = ScreeningSerializer()
        manual_exclusions = ManualExclusionSerializer(many=True, help_text="Sessions the run left out by hand.")
        votes_after_run = serializers.IntegerField(help_text="Counted votes stored after the run's cut-off.")
        coverage = CoverageSerializer(help_text="Live: counted votes per output now.")

    @extend_schema(
        operation_id="study_results",
        summary="Latest analysis results of a study",
        description=(
            "Leaderboard (screened and with every rater), metric correlations and rater "
            "screening of the latest finished analysis run, plus live coverage. Tables are "
            "empty until a run has finished."
        ),
        responses={200: OutputSerializer, 403: OpenApiResponse(description="Not staff.")},
    )
    def get(self, request: Request, slug: str) -> Response:
        from analysis import selectors
        from analysis.results import to_records

        study = self.study_or_404(slug)
        results = selectors.study_results(study=study)
        coverage = selectors.study_coverage(study=study)
        raters = results.raters
        payload = {
            "study": study.slug,
            "run": results.run,
            "latest_run": results.latest,
            # to_records: NaN (no interval from one scene, no PSNR) becomes JSON null.
            "leaderboard": to_records(results.leaderboard),
            "leaderboard_all_raters": to_records(results.leaderboard_all_raters),
            "correlations": to_records(results.correlations),
            "screening": {
                "n_raters": results.n_raters,
                "n_excluded": results.n_excluded,
                "excluded_by_rule": results.excluded_by_rule,
                "raters": to_records(raters),
            },
            "manual_exclusions": to_records(results.manual_exclusions),
            "votes_after_run": selectors.study_votes_after(study=study, run=results.run) if results.run else 0,
            "coverage": coverage,
        }
        return Response(self.OutputSerializer(payload).data)


class AnalysisRunListCreateView(OrganizerAPIView):
    @extend_schema_serializer(component_name="AnalysisRunParams")
    class InputSerializer(serializers.Serializer):
        confidence = serializers.FloatField(min_value=0.5, max_value=0.999, required=False)
        # Bounded: a run is a task on the workers, and its bootstrap grows with n_boot.
        n_boot = serializers.IntegerField(min_value=100, max_value=MAX_BOOT, required=False)
        seed = serializers.IntegerField(required=False)
        alpha = serializers.FloatField(min_value=0.001, max_value=0.5, required=False)
        correlation_threshold = serializers.FloatField(min_value=-1, max_value=1, required=False)
        rank_baselines = serializers.BooleanField(
            required=False, help_text="Rank baselines with the teams (default: shown, not ranked)."
        )

    OutputSerializer = AnalysisRunSerializer

    @extend_schema(
        operation_id="analysis_runs_list",
        summary="Analysis runs of a study, newest first",
        responses={200: OutputSerializer(many=True)},
    )
    def get(self, request: Request, slug: str) -> Response:
        from analysis import selectors

        runs = selectors.study_runs(study=self.study_or_404(slug))[:50]
        return Response(self.OutputSerializer(runs, many=True).data)

    @extend_schema(
        operation_id="analysis_runs_create",
        summary="Queue an analysis of the votes stored now",
        request=InputSerializer,
        responses={
            202: OutputSerializer,
            400: OpenApiResponse(
                response=FIELD_ERRORS,
                description="Invalid parameters: each offending field with its messages.",
            ),
        },
    )
    def post(self, request: Request, slug: str) -> Response:
        from analysis import services

        study = self.study_or_404(slug)
        params = self.InputSerializer(data=request.data)
        params.is_valid(raise_exception=True)
        run = services.analysis_run_queue(study=study, params=params.validated_data)
        # In the embedded default Celery runs the task eagerly on commit: reload so the
        # answer shows what happened rather than the pending row.
        run.refresh_from_db()
        return Response(self.OutputSerializer(run).data, status=status.HTTP_202_ACCEPTED)


class AnalysisRunDetailView(OrganizerAPIView):
    @extend_schema_serializer(component_name="AnalysisRunDetail")
    class OutputSerializer(AnalysisRunSerializer):
        class Meta(AnalysisRunSerializer.Meta):
            fields = [*AnalysisRunSerializer.Meta.fields, "results"]
            read_only_fields = fields

    @extend_schema(
        operation_id="analysis_run_detail",
        summary="One analysis run with every stored table",
        responses={200: OutputSerializer},
    )
    def get(self, request: Request, slug: str, run_id: int) -> Response:
        run = get_object_or_404(AnalysisRun, study__slug=slug, pk=run_id)
        return Response(self.OutputSerializer(run).data)


class StudyDecisionView(OrganizerAPIView):
    @extend_schema_serializer(component_name="StudyDecision")
    class OutputSerializer(serializers.Serializer):
        class MethodSerializer(serializers.Serializer):
            method = serializers.CharField()
            rank = serializers.IntegerField()
            mos = serializers.FloatField(allow_null=True)
            se = serializers.FloatField(allow_null=True)
            cs_low = serializers.FloatField(allow_null=True)
            cs_high = serializers.FloatField(allow_null=True)
            n_votes = serializers.IntegerField()

        class PairSerializer(serializers.Serializer):
            method_a = serializers.CharField(help_text="Ranked above method_b now.")
            method_b = serializers.CharField()
            diff = serializers.FloatField(allow_null=True)
            cs_low = serializers.FloatField(allow_null=True)
            cs_high = serializers.FloatField(allow_null=True)
            state = serializers.ChoiceField(choices=["separated", "equivalent", "undecided"])
            votes_to_decide = serializers.IntegerField(allow_null=True)

        study = serializers.SlugField()
        status = serializers.CharField()
        allocation = serializers.CharField()
        smallest_difference = serializers.FloatField()
        alpha = serializers.FloatField()
        method = serializers.CharField()
        decided = serializers.BooleanField()
        n_votes = serializers.IntegerField(help_text="Counted votes (rated and control trials).")
        vote_budget = serializers.IntegerField(allow_null=True)
        stop_when_decided = serializers.BooleanField()
        computed_at = serializers.FloatField(help_text="Unix time of the cached decision.")
        methods = MethodSerializer(many=True)
        pairs = PairSerializer(many=True)

    @extend_schema(
        operation_id="study_decision",
        summary="Live decision on the adjacent pairs of the ranking",
        description=(
            "Each pair of methods adjacent in the current ranking is separated, equivalent "
            "(within the study's smallest difference) or undecided, with the further votes "
            "estimated to decide it. Computed from the stored votes at most every few seconds."
        ),
        responses={200: OutputSerializer, 403: OpenApiResponse(description="Not staff.")},
    )
    def get(self, request: Request, slug: str) -> Response:
        from raters.allocation import decision_summary

        return Response(self.OutputSerializer(decision_summary(study=self.study_or_404(slug))).data)
