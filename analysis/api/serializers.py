"""Output shapes of the organizer API, shared by its views (rows are stored records)."""

from __future__ import annotations

from rest_framework import serializers

from analysis.models import AnalysisRun


class AnalysisRunSerializer(serializers.ModelSerializer):
    class Meta:
        model = AnalysisRun
        fields = [
            "id",
            "number",
            "status",
            "created_at",
            "finished_at",
            "n_votes",
            "params",
            "estimators",
            "error",
        ]
        read_only_fields = fields


class LeaderboardRowSerializer(serializers.Serializer):
    method = serializers.CharField()
    method_kind = serializers.CharField()
    mos = serializers.FloatField(allow_null=True)
    ci_low = serializers.FloatField(allow_null=True)
    ci_high = serializers.FloatField(allow_null=True)
    ci_method = serializers.CharField()
    estimand = serializers.CharField(help_text='"test set": scenes fixed, raters sampled.')
    ci_low_new_scenes = serializers.FloatField(allow_null=True)
    ci_high_new_scenes = serializers.FloatField(allow_null=True)
    rank_display_new_scenes = serializers.CharField(allow_null=True)
    tied_with_winner = serializers.BooleanField(allow_null=True)
    ranked = serializers.BooleanField(
        required=False, help_text="Takes part in the ranking (controls never; baselines when the run ranks them)."
    )
    n_raters_used = serializers.IntegerField(allow_null=True)
    confidence = serializers.FloatField()
    rank = serializers.IntegerField(allow_null=True, help_text="Best place the data allows.")
    rank_high = serializers.IntegerField(allow_null=True, help_text="Worst place.")
    rank_display = serializers.CharField(allow_null=True, help_text='"1" or a tie like "2-4".')
    n_votes = serializers.IntegerField()
    n_raters = serializers.IntegerField()
    n_scenes = serializers.IntegerField()
    psnr = serializers.FloatField(allow_null=True)
    ssim = serializers.FloatField(allow_null=True)
    boot_ci_low = serializers.FloatField(allow_null=True)
    boot_ci_high = serializers.FloatField(allow_null=True)
    p910 = serializers.FloatField(allow_null=True)
    estimator = serializers.CharField()
    estimator_version = serializers.CharField()


class CorrelationRowSerializer(serializers.Serializer):
    metric = serializers.CharField()
    level = serializers.CharField(help_text="method (n = methods) or image (n = outputs)")
    n = serializers.IntegerField()
    plcc = serializers.FloatField(allow_null=True)
    plcc_p = serializers.FloatField(allow_null=True)
    plcc_ci_low = serializers.FloatField(allow_null=True)
    plcc_ci_high = serializers.FloatField(allow_null=True)
    plcc_logistic = serializers.FloatField(allow_null=True)
    srcc = serializers.FloatField(allow_null=True)
    srcc_p = serializers.FloatField(allow_null=True)
    krcc = serializers.FloatField(allow_null=True)
    krcc_p = serializers.FloatField(allow_null=True)


class RaterScreeningSerializer(serializers.Serializer):
    rater = serializers.CharField()
    n_votes = serializers.IntegerField()
    bt500_rejected = serializers.BooleanField()
    correlation = serializers.FloatField(allow_null=True)
    correlation_rejected = serializers.BooleanField()
    controls_rejected = serializers.BooleanField()
    excluded = serializers.BooleanField()
    excluded_by = serializers.CharField(allow_blank=True)


class ScreeningSerializer(serializers.Serializer):
    n_raters = serializers.IntegerField()
    n_excluded = serializers.IntegerField()
    excluded_by_rule = serializers.DictField(child=serializers.ListField(child=serializers.CharField()))
    raters = RaterScreeningSerializer(many=True)


class ManualExclusionSerializer(serializers.Serializer):
    session = serializers.IntegerField()
    rater = serializers.CharField(allow_blank=True)
    platform = serializers.CharField()
    platform_id = serializers.CharField(allow_blank=True)
    scope = serializers.ChoiceField(
        choices=["session", "rater"], help_text="What was excluded: the session or its rater."
    )
    reason = serializers.CharField()
    n_votes = serializers.IntegerField(help_text="Votes of the session the run left out.")


class CoverageSerializer(serializers.Serializer):
    target = serializers.IntegerField()
    n_outputs = serializers.IntegerField()
    n_votes = serializers.IntegerField()
    min = serializers.IntegerField()
    median = serializers.FloatField()
    max = serializers.IntegerField()
    n_below_target = serializers.IntegerField()
