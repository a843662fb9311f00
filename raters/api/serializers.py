from __future__ import annotations

from typing import Any

from rest_framework import serializers

from raters.platforms import PLATFORM_PARAMS


class StrictIntegerField(serializers.IntegerField):
    """An integer in the JSON sense: 4 is one, "4", 4.5 and true are not."""

    default_error_messages = {"invalid": "A whole number is required."}

    def to_internal_value(self, data: Any) -> int:
        if isinstance(data, bool) or not isinstance(data, int):
            self.fail("invalid")
        return super().to_internal_value(data)


class DeviceSerializer(serializers.Serializer):
    screen_width = serializers.IntegerField(min_value=0, max_value=100_000, required=False)
    screen_height = serializers.IntegerField(min_value=0, max_value=100_000, required=False)
    viewport_width = serializers.IntegerField(min_value=0, max_value=100_000, required=False)
    viewport_height = serializers.IntegerField(min_value=0, max_value=100_000, required=False)
    device_pixel_ratio = serializers.FloatField(min_value=0.1, max_value=20, required=False)
    user_agent = serializers.CharField(max_length=1000, required=False, allow_blank=True)


class SessionStartInputSerializer(serializers.Serializer):
    device = DeviceSerializer(required=False)

    def get_fields(self) -> dict[str, serializers.Field]:
        fields = super().get_fields()
        for name in PLATFORM_PARAMS:
            fields[name] = serializers.CharField(max_length=200, required=False, allow_blank=True)
        return fields


class ProgressSerializer(serializers.Serializer):
    answered = serializers.IntegerField()
    total = serializers.IntegerField()
    training_answered = serializers.IntegerField()
    training_total = serializers.IntegerField()


class SessionOutputSerializer(serializers.Serializer):
    token = serializers.CharField()
    status = serializers.CharField()
    progress = ProgressSerializer()
    completion_code = serializers.CharField(allow_null=True)
    completion_page = serializers.CharField(allow_null=True)
    rating_page = serializers.CharField()


class PaneSerializer(serializers.Serializer):
    role = serializers.ChoiceField(choices=["reference", "result"])
    label = serializers.CharField()
    url = serializers.CharField(help_text="The whole image file, byte-exact.")
    tiles = serializers.CharField(allow_null=True, help_text="Deep Zoom descriptor, once the tiles are built.")
    width = serializers.IntegerField()
    height = serializers.IntegerField()


class TrialOutputSerializer(serializers.Serializer):
    token = serializers.CharField()
    phase = serializers.ChoiceField(choices=["training", "rating"])
    number = serializers.IntegerField(help_text="1-based position within its phase.")
    total = serializers.IntegerField(help_text="Trials in this phase.")
    panes = PaneSerializer(many=True)


class NextOutputSerializer(serializers.Serializer):
    session = SessionOutputSerializer()
    trial = TrialOutputSerializer(allow_null=True, help_text="Null once every trial is answered.")
    upcoming = TrialOutputSerializer(allow_null=True, help_text="The trial after this one, to preload.")
    later = TrialOutputSerializer(
        allow_null=True, help_text="The trial after `upcoming`, preloaded once `upcoming` is on screen."
    )


class RatingInputSerializer(serializers.Serializer):
    score = StrictIntegerField()
    response_ms = StrictIntegerField(min_value=0, max_value=24 * 3600 * 1000, required=False, allow_null=True)


class ExpectedLevelSerializer(serializers.Serializer):
    score = serializers.IntegerField()
    label = serializers.CharField()


class FeedbackSerializer(serializers.Serializer):
    ok = serializers.BooleanField()
    expected = ExpectedLevelSerializer(many=True)
    hint = serializers.CharField()


class RatingOutputSerializer(serializers.Serializer):
    trial = serializers.CharField()
    score = serializers.IntegerField()
    response_ms = serializers.IntegerField(allow_null=True)
    created_at = serializers.DateTimeField()
    feedback = FeedbackSerializer(allow_null=True, help_text="Training trials only.")
    session = SessionOutputSerializer()


class ConflictSerializer(serializers.Serializer):
    detail = serializers.CharField()
    code = serializers.CharField()
    rating = RatingOutputSerializer(required=False)


class ErrorSerializer(serializers.Serializer):
    detail = serializers.CharField()
