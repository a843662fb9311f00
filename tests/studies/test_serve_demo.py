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


def _running(pid: int) -> bool:
    try:
        return "zombie" not in Path(f"/proc/{pid}/status").read_text().lower()
    except FileNotFoundError:
        return False


def test_serve_demo_runs_a_worker_that_computes_the_images_and_ctrl_c_stops_both(tmp_path: Path) -> None:
    """`make demo`'s command: one Celery worker beside the web server, on the embedded
    broker (no broker server); the worker computes the demo's metrics and tiles; Ctrl-C
    (SIGINT) stops the server and the worker it started."""
    import http.cookiejar
    import json
    import os
    import re
    import signal
    import time
    import urllib.parse
    import urllib.request

    env = {
        key: value for key, value in os.environ.items() if not key.startswith(("DATABASE_URL", "CELERY_", "MOSAIC_"))
    }
    env |= {"DJANGO_SETTINGS_MODULE": "config.settings", "MOSAIC_VAR_DIR": str(tmp_path)}
    manage = [sys.executable, "manage.py"]
    run = dict(cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    assert subprocess.run([*manage, "migrate", "-v", "0"], **run).returncode == 0
    # A one-scene demo built beforehand (serve_demo reuses it): its images wait for a worker.
    assert subprocess.run([*manage, "build_demo", "--scenes", "1", "--no-links"], **run).returncode == 0
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    log = (tmp_path / "serve.log").open("w")
    server = subprocess.Popen(
        ["timeout", "--signal=INT", "--kill-after=10", "300", *manage, "serve_demo", "--port", str(port)],
        cwd=ROOT,
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    try:
        deadline = time.monotonic() + 240
        while "Mosaic demo is serving." not in (tmp_path / "serve.log").read_text():
            assert server.poll() is None and time.monotonic() < deadline, (tmp_path / "serve.log").read_text()
            time.sleep(0.5)
        output = (tmp_path / "serve.log").read_text()
        worker_pid = int(re.search(r"Celery worker: pid (\d+)", output).group(1))
        assert "Jobs" in output  # where the progress of the demo's images is shown
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/s/demo/", timeout=30) as response:
            assert response.status == 200
        # The worker, not the server, computes PSNR/SSIM and the tile pyramids: polled as an
        # organizer sees it, on the Jobs page's data, logged in with the printed login.
        base = f"http://127.0.0.1:{port}"
        user, password = re.search(r"user: (\S+)\s+password: (\S+)", output).groups()
        jobs = re.search(r"Jobs:\s+\S+?(/admin/\S+/jobs/)", output).group(1)
        browser = urllib.request.build_opener(urllib.request.HTTPCookieProcessor(http.cookiejar.CookieJar()))
        login = browser.open(f"{base}/admin/login/", timeout=30).read().decode()
        csrf = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', login).group(1)
        fields = {"username": user, "password": password, "csrfmiddlewaretoken": csrf, "next": jobs}
        form = urllib.parse.urlencode(fields)
        request = urllib.request.Request(f"{base}/admin/login/", data=form.encode(), headers={"Referer": base})
        browser.open(request, timeout=30)
        while True:
            progress = json.load(browser.open(f"{base}{jobs[:-1]}.json", timeout=30))
            metrics, tiles = progress["metrics"], progress["tiles"]
            if metrics["done"] == metrics["total"] > 0 and tiles["done"] == tiles["total"] > 0:
                break
            assert time.monotonic() < deadline, (tmp_path / "celery-worker.log").read_text()[-3000:]
            time.sleep(1)
        os.killpg(server.pid, signal.SIGINT)  # what Ctrl-C in the terminal sends
        server.wait(timeout=60)
        deadline = time.monotonic() + 30
        while _running(worker_pid):
            assert time.monotonic() < deadline, "the worker outlived the server"
            time.sleep(0.2)
    finally:
        if server.poll() is None:
            os.killpg(server.pid, signal.SIGKILL)
            server.wait(timeout=10)
        log.close()
