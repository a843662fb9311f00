"""The Django-free statistics core names vote and method kinds by their stored values; the
models are where those values are defined. They must agree, or votes would be silently
left out of (or counted into) the estimates."""

from __future__ import annotations

from analysis.stats import _common
from raters.models import Trial
from studies.models import Method


def test_counted_and_control_kinds_are_the_models_values() -> None:
    assert set(_common.COUNTED_KINDS) == {str(kind) for kind in Trial.COUNTED_KINDS}
    assert set(_common.KINDS) == {kind.value for kind in Trial.Kind}
    assert set(_common.CONTROL_KINDS) == {str(kind) for kind in Method.CONTROL_KINDS}
    assert _common.HIDDEN_REFERENCE == Method.Kind.HIDDEN_REFERENCE
    assert _common.LOW_ANCHOR == Method.Kind.LOW_ANCHOR
