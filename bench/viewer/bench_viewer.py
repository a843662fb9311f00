"""Viewer benchmark: what a pair costs at fit and at 100%, tiles against whole files.

Three studies, Deep Zoom pyramids with lossless WebP tiles unless said:

- "demo": the demo study (``manage.py build_demo``: 1800x1200, 2 MP);
- "12mp": 3 scenes of 4000x3000 (12 MP, the size of the challenge's phone and DSLR
  photos), generated like the demo's scenes, imported with ``manage.py import_study``;
- "12mp-png": the same images with PNG tiles (``MOSAIC_TILE_FORMAT=png``, as pyramids
  were built before WebP).

A fresh headless Chromium at 1920x1080 opens the study link, consents, and waits until
the first pair is fully displayed at fit zoom (both OpenSeadragon viewers report fully
loaded); then it presses "100%" (zoom about the centre) and waits until both viewers are
fully loaded again. Measured per run, with an empty cache:

- bytes and requests: image bodies of the pair on screen (tiles, descriptors or files);
- fit ms: from the rating page's navigation start until the pair is displayed;
- 100% ms: from the click until the zoomed view is complete (the zoom animates for
  0.25 s, so even with nothing to fetch this is not zero).

"file" mode rewrites the trial JSON so that the viewer loads the whole PNG files instead
of the tiles, as it does when a pyramid is missing. Every run of a study shows the same
pair (the hidden-reference pair of its first scene, the kind of pair a session starts
with), so both modes load the same images; the next pair's preload is withheld so that
only the pair on screen is counted. Each mode runs on the bare loopback and under an
emulated ordinary connection (20 Mbit/s down, 40 ms).

Then a session (``--part session``): on the 12 MP studies at 20 Mbit/s + 40 ms with the
browser cache off (every pair's images from the network, as in a study of many scenes), a
rater looks at each pair for 2 s after its buttons unlock and votes (after a practice pair,
reads its feedback and continues); measured from that click: the next pair displayed with
every tile of its view drawn, and its buttons unlocked, plus image MB per pair. The rating
screen before the vote-time preload (its modules from git commit ``BEFORE``) runs against
the current one, each on PNG and on WebP tiles.

Run: ``make bench-viewer`` or ``.venv/bin/python bench/viewer/bench_viewer.py [--runs 3]``.
The benchmark's own database and media live in bench/out/var (not the dev database); they
are rebuilt when the tile builder or the scene generator changes.
"""

from __future__ import annotations

import argparse
import ast
import hashlib
import json
import os
import shutil
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
STAMP = VAR / "build.sha256"
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
BIG_SLUG = "bench-12mp"
BIG_PNG_SLUG = "bench-12mp-png"  # the same images, PNG tiles (as pyramids were built before WebP)
BIG_SIZE = (4000, 3000)
BIG_SCENES = 3
# The methods a session needs: a hidden reference and a low anchor for training and
# controls, and two submissions.
BIG_METHODS = ("hidden-reference", "Team Aurora", "Team Cobalt", "low-anchor")
STUDIES = {"demo": "demo", "12mp": BIG_SLUG, "12mp-png": BIG_PNG_SLUG}
TIMEOUT_MS = 120_000

# Image bodies of the pair on screen whose request started within [start, end].
MEASURE = """([start, end]) => {
  const tokens = window.mosaic.current.trial.panes.map(
    (pane) => new URL(pane.url, location.href).pathname.split('/').pop().split('.')[0]);
  const mine = (path) => tokens.some((t) => path.startsWith(`/img/${t}.`) || path.startsWith(`/tiles/${t}`));
  const images = performance.getEntriesByType('resource').filter(
    (e) => e.startTime >= start && e.startTime <= end && mine(new URL(e.name).pathname));
  const levels = {};
  for (const e of images) {
    const level = new URL(e.name).pathname.match(/_files\\/(\\d+)\\//);
    if (level) levels[level[1]] = (levels[level[1]] || 0) + 1;
  }
  return {
    bytes: images.reduce((sum, e) => sum + e.encodedBodySize, 0),
    requests: images.length,
    tile_levels: levels,
  };
}"""
FIT = """() => {
  const stage = window.mosaic.current;
  const next = performance.getEntriesByType('resource').find((e) => e.name.includes('/next/'));
  return {
    ms: stage.readyAt,
    ms_after_trial_json: next ? stage.readyAt - next.responseEnd : null,
    width: stage.trial.panes[0].width,
    height: stage.trial.panes[0].height,
  };
}"""
# Press "100%" and note when both viewers have stopped animating and hold every tile of
# the new view.
ZOOM = """() => {
  const stage = window.mosaic.current;
  const zoom = { start: performance.now(), end: null, image_px_per_device_px: null };
  window.benchZoom = zoom;
  document.querySelector('[data-zoom="100"]').click();
  const settled = () => stage.viewers.every((viewer) => {
    const item = viewer.world.getItemAt(0);
    const target = viewer.viewport.getZoom(false);
    return item && item.getFullyLoaded() && Math.abs(viewer.viewport.getZoom(true) - target) <= 1e-9 * target
      && viewer.viewport.getCenter(true).equals(viewer.viewport.getCenter(false));
  });
  const tick = () => {
    if (!settled()) return requestAnimationFrame(tick);
    zoom.end = performance.now();
    const viewer = stage.viewers[0];
    zoom.image_px_per_device_px = 1 / (viewer.world.getItemAt(0).viewportToImageZoom(
      viewer.viewport.getZoom(true)) * (window.devicePixelRatio || 1));
  };
  requestAnimationFrame(tick);
}"""


def _env() -> dict[str, str]:
    env = {**os.environ, "MOSAIC_VAR_DIR": str(VAR), "DJANGO_ENV": "development", "DJANGO_DEBUG": "true"}
    # The embedded defaults only: SQLite and media in VAR, tasks run in the process.
    for name in ("DATABASE_URL", "CELERY_BROKER_URL", "CACHE_URL", "MOSAIC_MEDIA_ROOT", "MOSAIC_MEDIA_ACCEL_PREFIX"):
        env.pop(name, None)
    return env


def _manage(*args: str, env: dict[str, str] | None = None) -> str:
    done = subprocess.run(
        [PYTHON, "manage.py", *args], cwd=ROOT, env={**_env(), **(env or {})}, capture_output=True, text=True
    )
    if done.returncode:
        raise RuntimeError(f"manage.py {' '.join(args)} failed:\n{done.stderr}")
    return done.stdout


def build_fingerprint() -> str:
    """What the stored pyramids and images depend on: the tile builder and the generator."""
    services = (ROOT / "studies" / "services.py").read_text()
    builder = ("image_tiles_build", "_dzsave", "tile_format_for")
    constants = ("TILE_SIZE", "TILE_SUFFIXES")
    parts = [
        ast.get_source_segment(services, node)
        for node in ast.parse(services).body
        if (isinstance(node, ast.FunctionDef) and node.name in builder)
        or (isinstance(node, ast.Assign) and any(getattr(t, "id", "") in constants for t in node.targets))
    ]
    parts += [(ROOT / "studies" / "demo.py").read_text(), repr((BIG_SIZE, BIG_SCENES, BIG_METHODS))]
    return hashlib.sha256("\n".join(p or "" for p in parts).encode()).hexdigest()


def ensure_studies() -> None:
    fingerprint = build_fingerprint()
    if VAR.exists() and (not STAMP.is_file() or STAMP.read_text().strip() != fingerprint):
        print("The tile builder or the scene generator changed since bench/out/var was built: rebuilding.")
        shutil.rmtree(VAR)
    VAR.mkdir(parents=True, exist_ok=True)
    started = time.monotonic()
    _manage("migrate", "--noinput", "-v0")
    _manage("build_demo")
    folder = OUT / "import-12mp"
    for slug, tiles in ((BIG_SLUG, "webp"), (BIG_PNG_SLUG, "png")):
        exists = f"from studies.models import Study; print(Study.objects.filter(slug={slug!r}, status='open').exists())"
        if _manage("shell", "-v0", "-c", exists).split()[-1:] == ["True"]:
            continue
        print(f"Building the 12 MP study with {tiles} tiles ({BIG_SCENES} scenes x {len(BIG_METHODS)} methods)...")
        if not folder.is_dir():
            write = (
                "from pathlib import Path; from studies import demo; "
                f"methods = tuple(d for d in demo.DEGRADATIONS if d.name in {BIG_METHODS!r}); "
                f"demo.write_demo_folder(Path({str(folder)!r}), n_scenes={BIG_SCENES}, "
                f"width={BIG_SIZE[0]}, height={BIG_SIZE[1]}, degradations=methods)"
            )
            _manage("shell", "-c", write)
        title = f"Viewer benchmark: 12 MP photos, {tiles} tiles"
        _manage("import_study", slug, str(folder), "--title", title, env={"MOSAIC_TILE_FORMAT": tiles})
        opened = (
            "from studies.models import Study; from studies.services import study_open; "
            f"study_open(study=Study.objects.get(slug={slug!r}))"
        )
        _manage("shell", "-c", opened)
    shutil.rmtree(folder, ignore_errors=True)
    STAMP.write_text(fingerprint)
    print(f"Studies ready in {time.monotonic() - started:.0f} s.")


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


# The pair every run shows: a session's first pair is always a hidden reference (training),
# of a scene drawn at random; the bench takes the first scene's, so that runs, modes and
# invocations load the same images.
PINNED_PAIR = """
import json
from raters.selectors import image_source
from studies.models import Method, Output
output = (
    Output.objects.filter(method__study__slug=SLUG, method__kind=Method.Kind.HIDDEN_REFERENCE)
    .select_related("scene__reference", "image").order_by("scene__name").first()
)
def source(a):
    return image_source(token=a.token, file=a.file.name, tile_status=a.tile_status, width=a.width, height=a.height)
print(json.dumps([source(output.scene.reference), source(output.image)]))
"""


def pinned_pair(slug: str) -> list[dict]:
    return json.loads(_manage("shell", "-v0", "-c", PINNED_PAIR.replace("SLUG", repr(slug))).splitlines()[-1])


class TrialRewrite:
    """Rewrites the next-trial JSON: the pinned pair, no preload, tiles or whole files."""

    def __init__(self, mode: str, pair: list[dict]) -> None:
        self.mode, self.pair = mode, pair

    def __call__(self, route: Route) -> None:
        response = route.fetch()
        body = response.json()
        trial = body.get("trial")
        if trial:
            trial["panes"] = [{**pane, **source} for pane, source in zip(trial["panes"], self.pair, strict=True)]
            if self.mode == "file":
                for pane in trial["panes"]:
                    pane["tiles"] = None
        body["upcoming"] = None
        route.fulfill(response=response, json=body)


def one_run(browser, base: str, slug: str, mode: str, network: dict | None, pair: list[dict]) -> dict:
    context = browser.new_context(viewport={"width": 1920, "height": 1080})
    context.add_init_script("performance.setResourceTimingBufferSize(100000)")
    page = context.new_page()
    page.set_default_timeout(TIMEOUT_MS)
    try:
        if network:
            cdp = context.new_cdp_session(page)
            cdp.send("Network.enable")
            cdp.send("Network.emulateNetworkConditions", {"offline": False, **network})
        page.route("**/api/sessions/*/next/", TrialRewrite(mode, pair))
        page.goto(f"{base}/s/{slug}/")
        page.locator("#consent").check()
        page.locator("#start").click()
        page.wait_for_url("**/r/*/")
        page.wait_for_function("() => window.mosaic && window.mosaic.current && window.mosaic.current.readyAt !== null")
        if mode == "tiles" and not page.evaluate("() => window.mosaic.current.trial.panes.every((p) => p.tiles)"):
            raise RuntimeError("a pyramid is missing: delete bench/out/var and run again")
        fit = page.evaluate(FIT)
        fit.update(page.evaluate(MEASURE, [0, fit["ms"]]))
        page.evaluate(ZOOM)
        page.wait_for_function("() => window.benchZoom.end !== null")
        zoom = page.evaluate("() => window.benchZoom")
        loaded = page.evaluate(MEASURE, [zoom["start"], zoom["end"]])
        return {
            "fit": fit,
            "zoom100": {
                "ms": zoom["end"] - zoom["start"],
                **loaded,
                "image_px_per_device_px": zoom["image_px_per_device_px"],
            },
        }
    finally:
        context.close()


def _median(runs: list[dict], phase: str, key: str) -> float:
    return statistics.median(r[phase][key] for r in runs)


def summarise(study: str, network: str, mode: str, runs: list[dict]) -> dict:
    fit = runs[0]["fit"]
    return {
        "study": study,
        "network": network,
        "mode": mode,
        "image": f"{fit['width']}x{fit['height']}",
        "fit_bytes_median": int(_median(runs, "fit", "bytes")),
        "fit_requests_median": int(_median(runs, "fit", "requests")),
        "fit_ms_median": round(_median(runs, "fit", "ms")),
        "fit_ms_after_trial_json_median": round(_median(runs, "fit", "ms_after_trial_json")),
        "zoom100_bytes_median": int(_median(runs, "zoom100", "bytes")),
        "zoom100_requests_median": int(_median(runs, "zoom100", "requests")),
        "zoom100_ms_median": round(_median(runs, "zoom100", "ms")),
        "runs": runs,
    }


def print_table(results: list[dict]) -> None:
    print(
        f"\n{'study':<5} {'image':<9} {'network':<11} {'mode':<5} | {'fit MB':>6} {'req':>4} {'ms':>6} | "
        f"{'100% MB':>7} {'req':>4} {'ms':>6} | {'total MB':>8}"
    )
    for row in results:
        print(
            f"{row['study']:<5} {row['image']:<9} {row['network']:<11} {row['mode']:<5} | "
            f"{row['fit_bytes_median'] / 1e6:>6.2f} {row['fit_requests_median']:>4} {row['fit_ms_median']:>6} | "
            f"{row['zoom100_bytes_median'] / 1e6:>7.2f} {row['zoom100_requests_median']:>4} "
            f"{row['zoom100_ms_median']:>6} | {(row['fit_bytes_median'] + row['zoom100_bytes_median']) / 1e6:>8.2f}"
        )
    print("\nTiles / file (below 1: tiles win)")
    print(f"{'study':<5} {'network':<11} | {'fit bytes':>9} {'fit ms':>6} | {'fit+100% bytes':>14}")
    rows = {(r["study"], r["network"], r["mode"]): r for r in results}
    for (study, network, mode), tiles in rows.items():
        if mode != "tiles":
            continue
        file = rows[(study, network, "file")]
        fit_bytes = tiles["fit_bytes_median"] / file["fit_bytes_median"]
        fit_ms = tiles["fit_ms_median"] / file["fit_ms_median"]
        total = (tiles["fit_bytes_median"] + tiles["zoom100_bytes_median"]) / (
            file["fit_bytes_median"] + file["zoom100_bytes_median"]
        )
        print(f"{study:<5} {network:<11} | {fit_bytes:>9.2f} {fit_ms:>6.2f} | {total:>14.2f}")


# ---------------------------------------------------------------- a session: vote to next pair
# The client before the vote-time preload (its rating-screen modules, served from git in
# place of the current ones), against the current one, each on PNG and WebP tiles.
BEFORE = "961e460"
LOOK_MS = 2000
# Vote (or, after a practice pair, "Continue") and note when the next pair is on screen
# with every tile of its view drawn, and when its buttons unlock.
ACT = """([selector]) => new Promise((resolve) => {
  const state = window.mosaic;
  const before = state.current;
  const t0 = performance.now();
  document.querySelector(selector).click();
  let displayed = null;
  const tick = () => {
    if (!document.getElementById('feedback').hidden) return resolve({ feedback: true });
    const stage = state.current;
    const drawn = stage && stage !== before && stage.readyAt !== null && !stage.el.classList.contains('hidden')
      && stage.viewers.every((v) => v.world.getItemAt(0) && v.world.getItemAt(0).getFullyLoaded());
    if (drawn && displayed === null) displayed = performance.now() - t0;  // painted with the next frame
    if (displayed !== null && state.accepting) {
      return resolve({ displayed_ms: displayed, unlocked_ms: performance.now() - t0 });
    }
    requestAnimationFrame(tick);
  };
  requestAnimationFrame(tick);
})"""
IMAGE_BYTES = """() => performance.getEntriesByType('resource')
  .filter((e) => /\\/(tiles|img)\\//.test(new URL(e.name).pathname))
  .reduce((sum, e) => sum + e.encodedBodySize, 0)"""


def _old_client(route: Route) -> None:
    name = route.request.url.split("/static/", 1)[1].split("?")[0]
    body = subprocess.run(["git", "show", f"{BEFORE}:static/{name}"], cwd=ROOT, capture_output=True, check=True).stdout
    route.fulfill(body=body, content_type="text/javascript")


def session_run(browser, base: str, slug: str, client: str, pairs: int) -> dict:
    context = browser.new_context(viewport={"width": 1920, "height": 1080})
    context.add_init_script("performance.setResourceTimingBufferSize(100000)")
    page = context.new_page()
    page.set_default_timeout(TIMEOUT_MS)
    try:
        cdp = context.new_cdp_session(page)
        cdp.send("Network.enable")
        cdp.send("Network.emulateNetworkConditions", {"offline": False, **NETWORKS["20Mbit-40ms"]})
        # Every pair's images from the network, as in a study of many scenes (this one has 3).
        cdp.send("Network.setCacheDisabled", {"cacheDisabled": True})
        if client == "before":
            page.route("**/static/raters/rate/*.js", _old_client)
        page.goto(f"{base}/s/{slug}/")
        page.locator("#consent").check()
        page.locator("#start").click()
        page.wait_for_url("**/r/*/")
        page.wait_for_function("() => window.mosaic && window.mosaic.current && window.mosaic.accepting")
        samples = []
        for _ in range(pairs):
            page.wait_for_function(f"() => performance.now() - window.mosaic.shownAt >= {LOOK_MS}")
            result = page.evaluate(ACT, ["#levels button.level:nth-child(3)"])
            if result.get("feedback"):
                page.wait_for_timeout(300)  # reading the feedback
                result = page.evaluate(ACT, ["#feedback-continue"])
            samples.append(result)
        shown = pairs + 1
        return {"samples": samples, "bytes_per_pair": page.evaluate(IMAGE_BYTES) / shown}
    finally:
        context.close()


def session_part(base: str, browser, runs: int, pairs: int) -> list[dict]:
    # Each run is a new rater: the studies must never be full of them.
    slugs = [BIG_SLUG, BIG_PNG_SLUG]
    unlimited = f"Study.objects.filter(slug__in={slugs!r}).update(ratings_per_output=10**6)"
    _manage("shell", "-c", f"from studies.models import Study; {unlimited}")
    rows = []
    for client in ("before", "now"):
        for tiles, slug in (("png", BIG_PNG_SLUG), ("webp", BIG_SLUG)):
            done = [session_run(browser, base, slug, client, pairs) for _ in range(runs)]
            displayed = sorted(s["displayed_ms"] for run in done for s in run["samples"])
            unlocked = sorted(s["unlocked_ms"] for run in done for s in run["samples"])
            rows.append(
                {
                    "client": client,
                    "tiles": tiles,
                    "transitions": len(displayed),
                    "displayed_p50_ms": round(statistics.median(displayed)),
                    "displayed_p95_ms": round(statistics.quantiles(displayed, n=20, method="inclusive")[-1]),
                    "displayed_max_ms": round(displayed[-1]),
                    "unlocked_p95_ms": round(statistics.quantiles(unlocked, n=20, method="inclusive")[-1]),
                    "mb_per_pair": round(statistics.mean(r["bytes_per_pair"] for r in done) / 1e6, 2),
                    "runs": done,
                }
            )
    print(f"\nSession, 12 MP, 20 Mbit/s + 40 ms, no cache, {LOOK_MS} ms look per pair: vote to next pair")
    print(
        f"{'client':<7} {'tiles':<5} | {'n':>3} {'p50 ms':>7} {'p95 ms':>7} {'max ms':>7} | "
        f"{'unlock p95':>10} | {'MB/pair':>7}"
    )
    for r in rows:
        print(
            f"{r['client']:<7} {r['tiles']:<5} | {r['transitions']:>3} {r['displayed_p50_ms']:>7} "
            f"{r['displayed_p95_ms']:>7} {r['displayed_max_ms']:>7} | {r['unlocked_p95_ms']:>10} | "
            f"{r['mb_per_pair']:>7.2f}"
        )
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--part", choices=("pair", "session", "all"), default="all")
    parser.add_argument("--session-runs", type=int, default=3)
    parser.add_argument("--pairs", type=int, default=8, help="votes per session run")
    args = parser.parse_args()
    ensure_studies()
    pairs = {slug: pinned_pair(slug) for slug in STUDIES.values()}
    port = free_port()
    server = start_server(port)
    results: list[dict] = []
    session: list[dict] = []
    base = f"http://127.0.0.1:{port}"
    try:
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=ARGS)
            if args.part in ("pair", "all"):
                for study, slug in STUDIES.items():
                    for network_name, network in NETWORKS.items():
                        for mode in ("tiles", "file"):
                            runs = [one_run(browser, base, slug, mode, network, pairs[slug]) for _ in range(args.runs)]
                            results.append(summarise(study, network_name, mode, runs))
            if args.part in ("session", "all"):
                session = session_part(base, browser, args.session_runs, args.pairs)
            browser.close()
    finally:
        server.terminate()
        server.wait(timeout=10)
    OUT.mkdir(parents=True, exist_ok=True)
    (OUT / "viewer.json").write_text(json.dumps({"pair": results, "session": session}, indent=2))
    if results:
        print_table(results)
    print(f"\nDetails: {OUT / 'viewer.json'}")


if __name__ == "__main__":
    sys.exit(main())
