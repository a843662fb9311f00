"""The production profile refuses a secret key anyone could know."""

from __future__ import annotations

import re

import pytest

from tests.test_settings import REPO, _check


def _production(tmp_path, key: str):
    return _check(
        {
            "DJANGO_ENV": "production",
            "DJANGO_ALLOWED_HOSTS": "mosaic.example.org",
            "MOSAIC_VAR_DIR": str(tmp_path),
            "DJANGO_SECRET_KEY": key,
        }
    )


def _placeholder() -> str:
    text = (REPO / "deploy" / "env.example").read_text()
    return re.search(r"^DJANGO_SECRET_KEY=(.*)$", text, re.MULTILINE).group(1).strip()


@pytest.mark.parametrize("key", ["placeholder", "x" * 49], ids=["env-example-placeholder", "49-characters"])
def test_production_refuses_the_placeholder_and_short_secret_keys(tmp_path, key):
    key = _placeholder() if key == "placeholder" else key
    result = _production(tmp_path, key)
    assert result.returncode != 0
    assert "placeholder of deploy/env.example or shorter than 50 characters" in result.stderr
    assert key not in result.stderr  # the message never repeats a key


def test_production_accepts_a_random_key_of_50_characters(tmp_path):
    result = _production(tmp_path, "Qm3v9ZtR1xLp8Wc2Hs7Ud4Ny6Kb0Ef5Ga1Jo3Ti8Vr2Xe9Sl4P")
    assert result.returncode == 0, result.stderr
