"""Viewer benchmark: what the first pair costs, tiles against whole files.

For the demo study (``manage.py build_demo``: 6 scenes of 1800x1200, Deep Zoom pyramids
with PNG tiles), a fresh headless Chromium at 1920x1080 opens the study link, consents,
and waits until the first pair is fully displayed at fit zoom (both OpenSeadragon
viewers report fully loaded). Measured per run, with an empty cache:

- bytes: image bodies fetched before that moment (tiles, descriptors or whole files);
- ms: time from the rating page's navigation start until the pair is displayed.

"file" mode rewrites the trial JSON so that the viewer loads the whole PNG files instead
of the tiles, as it does when a pyramid is missing. Each mode runs on the bare loopback
and under an emulated ordinary connection (20 Mbit/s down, 40 ms latency).

Run: ``make bench-viewer`` or ``.venv/bin/python bench/viewer/bench_viewer.py [--runs 3]``.
The benchmark's own database and media live in bench/out/var (not the dev database).
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import statistics
import subprocess
import sys
import time
from pathlib import Path

from playwright.sync_api import Route, sync_playwright

ROOT = Path(__file__).resolve().parents[2]
OUT = ROOT / "bench" / "out"
VAR = OUT / "var"
PYTHON = ROOT / ".venv" / "bin" / "python"
CHROMIUM = "/usr/bin/chromium"
ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
NETWORKS = {
    "loopback": None,
    "20Mbit-40ms": {"latency": 40, "downloadThroughput": 20e6 / 8, "uploadThroughput": 5e6 / 8},
}
MEASURE = """() => {
  const ready = window.mosaic.current.readyAt;
  const images = performance.getEntriesByType('resource').filter(
    (e) => e.startTime <= ready && /\\/(tiles|img)\\//.test(new URL(e.name).pathname));
  const next = performance.getEntriesByType('resource').find((e) => e.name.includes('/next/'));
  return {
    ms: ready,
    ms_after_trial_json: next ? ready - next.responseEnd : null,
    bytes: images.reduce((sum, e) => sum + e.encodedBodySize, 0),
    requests: images.length,
    width: window.mosaic.current.trial.panes[0].width,
    height: window.mosaic.current.trial.panes[0].height,
  };
}"""


def _env() -> dict[str, str]:
    return {**os.environ, "MOSAIC_VAR_DIR": str(VAR), "DJANGO_ENV": "development", "DJANGO_DEBUG": "true"}


def ensure_demo() -> None:
    VAR.mkdir(parents=True, exist_ok=True)
    subprocess.run([PYTHON, "manage.py", "migrate", "--noinput", "-v0"], cwd=ROOT, env=_env(), check=True)
    subprocess.run([PYTHON, "manage.py", "build_demo"], cwd=ROOT, env=_env(), check=True, stdout=subprocess.DEVNULL)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def start_server(port: int) -> subprocess.Popen:
    server = subprocess.Popen(
        [PYTHON, "manage.py", "runserver", f"127.0.0.1:{port}", "--noreload"],
        cwd=ROOT,
        env=_env(),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
            return server
        except OSError:
            time.sleep(0.2)
    server.terminate()
    raise RuntimeError("the development server did not start")


def _without_tiles(route: Route) -> None:
    response = route.fetch()
    body = response.json()
    for key in ("trial", "upcoming"):
        if body.get(key):
            for pane in body[key]["panes"]:
                pane["tiles"] = None
    route.fulfill(response=response, json=body)


def one_run(browser, base: str, mode: str, network: dict | None) -> dict:
    context = browser.new_context(viewport={"width": 1920, "height": 1080})
    page = context.new_page()
    page.set_default_timeout(120_000)
    if network:
        cdp = context.new_cdp_session(page)
        cdp.send("Network.enable")
        cdp.send("Network.emulateNetworkConditions", {"offline": False, **network})
    if mode == "file":
        page.route("**/api/sessions/*/next/", _without_tiles)
    page.goto(f"{base}/s/demo/")
    page.locator("#consent").check()
    page.locator("#start").click()
    page.wait_for_url("**/r/*/")
    page.wait_for_function("() => window.mosaic && window.mosaic.current && window.mosaic.current.readyAt !== null")
    result = page.evaluate(MEASURE)
    context.close()
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    ensure_demo()
    port = free_port()
    server = start_server(port)
    results: list[dict] = []
    try:
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=ARGS)
            for network_name, network in NETWORKS.items():
                for mode in ("tiles", "file"):
                    runs = [one_run(browser, f"http://127.0.0.1:{port}", mode, network) for _ in range(args.runs)]
                    results.append(
                        {
                            "network": network_name,
                            "mode": mode,
                            "image": f"{runs[0]['width']}x{runs[0]['height']}",
                            "bytes_median": int(statistics.median(r["bytes"] for r in runs)),
                            "requests_median": int(statistics.median(r["requests"] for r in runs)),
                            "ms_median": round(statistics.median(r["ms"] for r in runs)),
                            "ms_after_trial_json_median": round(
                                statistics.median(r["ms_after_trial_json"] for r in runs)
                            ),
                            "runs": runs,
                        }
                    )
            browser.close()
    finally:
        server.terminate()
        server.wait(timeout=10)
    OUT.mkdir(parents=True, exist_ok=True)
    (OUT / "viewer.json").write_text(json.dumps(results, indent=2))
    print(f"{'network':<12} {'mode':<6} {'image':<10} {'MB':>7} {'requests':>8} {'ms':>7} {'ms after JSON':>13}")
    for row in results:
        print(
            f"{row['network']:<12} {row['mode']:<6} {row['image']:<10} {row['bytes_median'] / 1e6:>7.2f} "
            f"{row['requests_median']:>8} {row['ms_median']:>7} {row['ms_after_trial_json_median']:>13}"
        )
    print(f"\nDetails: {OUT / 'viewer.json'}")


if __name__ == "__main__":
    sys.exit(main())
