from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from config.env import ImproperlyConfiguredEnv, envbool, envint

REPO = Path(__file__).resolve().parents[1]


def test_env_helpers_read_and_refuse(monkeypatch):
    monkeypatch.setenv("X_BOOL", "yes")
    monkeypatch.setenv("X_INT", "12")
    assert envbool("X_BOOL") is True and envint("X_INT", 0) == 12
    monkeypatch.setenv("X_BOOL", "maybe")
    monkeypatch.setenv("X_INT", "twelve")
    with pytest.raises(ImproperlyConfiguredEnv, match="X_BOOL='maybe' is not a boolean"):
        envbool("X_BOOL")
    with pytest.raises(ImproperlyConfiguredEnv, match="X_INT='twelve' is not an integer"):
        envint("X_INT", 0)


def _check(env: dict[str, str], *args: str) -> subprocess.CompletedProcess:
    base = {k: v for k, v in os.environ.items() if not k.startswith(("DJANGO_", "DATABASE_URL", "CELERY_"))}
    return subprocess.run(
        [sys.executable, "manage.py", "check", *args],
        cwd=REPO,
        capture_output=True,
        text=True,
        env={**base, "DJANGO_SETTINGS_MODULE": "config.settings", **env},
    )


def test_embedded_default_uses_sqlite_wal_immediate_and_a_broker_without_a_server():
    from django.conf import settings

    options = settings.DATABASES["default"].get("OPTIONS", {})
    if settings.DATABASES["default"]["ENGINE"].endswith("sqlite3"):
        assert options["transaction_mode"] == "IMMEDIATE"
        assert "journal_mode=WAL" in options["init_command"]
        assert options["timeout"] >= 5
    assert settings.CELERY_TASK_ACKS_LATE is True


def test_tasks_go_to_a_worker_in_every_configuration(tmp_path):
    """The settings themselves never run tasks in-process (only the test overlay does):
    without CELERY_BROKER_URL the broker is kombu's filesystem transport under the var dir."""
    code = (
        "from django.conf import settings as s; "
        "print(s.CELERY_TASK_ALWAYS_EAGER, s.CELERY_BROKER_URL, s.CELERY_BROKER_TRANSPORT_OPTIONS['data_folder_in'])"
    )
    env = {k: v for k, v in os.environ.items() if k not in ("CELERY_BROKER_URL", "DATABASE_URL", "MOSAIC_BROKER_DIR")}
    env |= {"DJANGO_SETTINGS_MODULE": "config.settings", "MOSAIC_VAR_DIR": str(tmp_path)}
    result = subprocess.run(
        [sys.executable, "manage.py", "shell", "-c", code], cwd=REPO, capture_output=True, text=True, env=env
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines()[-1].split() == ["False", "filesystem://", str(tmp_path / "broker" / "queue")]
    assert (tmp_path / "broker" / "queue").is_dir()


def test_production_without_secret_key_refuses_to_start(tmp_path):
    result = _check(
        {"DJANGO_ENV": "production", "DJANGO_ALLOWED_HOSTS": "mosaic.example.org", "MOSAIC_VAR_DIR": str(tmp_path)}
    )
    assert result.returncode != 0
    assert "DJANGO_ENV=production needs DJANGO_SECRET_KEY" in result.stderr


def test_production_profile_passes_the_deploy_check(tmp_path):
    result = _check(
        {
            "DJANGO_ENV": "production",
            "DJANGO_ALLOWED_HOSTS": "mosaic.example.org",
            "MOSAIC_VAR_DIR": str(tmp_path),
            "DJANGO_SECRET_KEY": "k" * 20 + "9f8e7d6c5b4a3210zyxwvutsrqponmlkjihgfedcba",
        },
        "--deploy",
        "--fail-level",
        "WARNING",
    )
    assert result.returncode == 0, result.stderr + result.stdout
    assert "no issues" in result.stdout


def test_bad_boolean_in_environment_stops_the_process(tmp_path):
    result = _check({"DJANGO_DEBUG": "sometimes", "MOSAIC_VAR_DIR": str(tmp_path)})
    assert result.returncode != 0 and "DJANGO_DEBUG='sometimes' is not a boolean" in result.stderr
