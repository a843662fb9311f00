"""`make demo` says when its port is taken, before it installs or builds anything."""

from __future__ import annotations

import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError

from studies.models import Study

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def listening() -> Iterator[int]:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as server:
        server.bind(("127.0.0.1", 0))
        server.listen()
        yield server.getsockname()[1]


def test_port_check_names_a_taken_port_and_passes_a_free_one(listening: int) -> None:
    taken = subprocess.run(
        [sys.executable, "tools/port_free.py", "127.0.0.1", str(listening)], cwd=ROOT, capture_output=True, text=True
    )
    assert taken.returncode == 1
    assert f"Port {listening} on 127.0.0.1 is taken" in taken.stderr and "PORT=8123 make demo" in taken.stderr
    bad = subprocess.run(
        [sys.executable, "tools/port_free.py", "127.0.0.1", "80a"], cwd=ROOT, capture_output=True, text=True
    )
    assert bad.returncode == 2 and "not a TCP port" in bad.stderr
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        free = probe.getsockname()[1]
    assert subprocess.run([sys.executable, "tools/port_free.py", "127.0.0.1", str(free)], cwd=ROOT).returncode == 0


@pytest.mark.django_db
def test_serve_demo_refuses_a_taken_port_before_building(listening: int) -> None:
    with pytest.raises(CommandError, match=f"Port {listening} on 127.0.0.1 is taken"):
        call_command("serve_demo", port=listening)
    assert not Study.objects.exists()


def test_makefile_checks_the_port_before_installing() -> None:
    recipe = (ROOT / "Makefile").read_text().split("\ndemo:", 1)[1].split("\n\n", 1)[0]
    lines = [line.strip() for line in recipe.strip().splitlines()]
    assert lines[0].startswith("@$(PYTHON) tools/port_free.py $(HOST) $(PORT)")
    assert "install" in lines[1] and "serve_demo --host $(HOST) --port $(PORT)" in lines[-1]
