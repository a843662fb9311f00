"""At 100% the rating screen shows the image's own pixels: a screenshot of each pane equals
the rater copy's pixels exactly, at common window sizes and at devicePixelRatio 1 and 2."""

from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image

from studies.models import ImageAsset
from studies.services import image_tiles_build
from tests.raters.conftest import build_study
from tests.raters.test_browser import ARTIFACTS, CHROMIUM, LAUNCH_ARGS, playwright_api

pytestmark = [
    pytest.mark.browser,
    pytest.mark.skipif(not CHROMIUM.exists(), reason="Debian's chromium is not installed"),
]

TILE_FORMATS = """() => [...new Set(performance.getEntriesByType('resource')
  .map((e) => new URL(e.name).pathname).filter((path) => path.includes('_files/'))
  .map((path) => path.split('.').pop()))]"""
# Each pane's viewer box, the image's corner in it and its scale, in CSS pixels.
PANES = """() => window.mosaic.current.viewers.map((v, index) => {
  const item = v.world.getItemAt(0);
  const box = v.element.getBoundingClientRect();
  const caption = v.element.parentElement.querySelector('figcaption').getBoundingClientRect();
  const corner = item.imageToViewerElementCoordinates(new OpenSeadragon.Point(0, 0));
  return {
    token: window.mosaic.current.trial.panes[index].url.split('/').filter(Boolean).slice(-2, -1)[0],
    url: window.mosaic.current.trial.panes[index].url,
    box: {left: box.left, top: box.top, right: box.right, bottom: box.bottom},
    captionBottom: caption.bottom,
    corner: {x: corner.x, y: corner.y},
    scale: item.viewportToImageZoom(v.viewport.getZoom(true)) * window.devicePixelRatio,
    settled: v.viewport.getZoom(true) === v.viewport.getZoom(false) && item.getFullyLoaded()
      && !v.isAnimating(),
  };
})"""
AT_100 = f"""() => ({PANES})().every((p) => p.settled && Math.abs(p.scale - 1) < 1e-9
  && [p.corner.x, p.corner.y].every((c) => Math.abs(c * devicePixelRatio - Math.round(c * devicePixelRatio)) < 1e-3))"""
SIZES = [(1920, 1080), (1440, 900), (1366, 768)]


def _asset_for(url: str) -> ImageAsset:
    for asset in ImageAsset.objects.all():
        if asset.token in url:
            return asset
    raise AssertionError(f"no asset serves {url}")


def _compare(shot: np.ndarray, pane: dict, dpr: float) -> tuple[int, int]:
    """Pixels compared and pixels that differ, of one pane's visible image area."""
    source = np.asarray(Image.open(_asset_for(pane["url"]).file.path).convert("RGB"))
    box = pane["box"]
    for edge in ("left", "top", "right", "bottom"):  # snapped to whole device pixels
        assert box[edge] * dpr == pytest.approx(round(box[edge] * dpr), abs=1e-6), (edge, box)
    x0 = round((box["left"] + pane["corner"]["x"]) * dpr)
    y0 = round((box["top"] + pane["corner"]["y"]) * dpr)
    # The visible part of the image: inside the viewer box, below the pane's caption.
    left, right = max(x0, round(box["left"] * dpr)), min(x0 + source.shape[1], round(box["right"] * dpr))
    top = max(y0, round(box["top"] * dpr), int(np.ceil(pane["captionBottom"] * dpr)))
    bottom = min(y0 + source.shape[0], round(box["bottom"] * dpr))
    assert right - left > 200 and bottom - top > 100, (left, right, top, bottom)
    on_screen = shot[top:bottom, left:right].astype(int)
    expected = source[top - y0 : bottom - y0, left - x0 : right - x0].astype(int)
    differ = int(np.any(on_screen != expected, axis=2).sum())
    return on_screen.shape[0] * on_screen.shape[1], differ


@pytest.mark.django_db(transaction=True)
def test_100_percent_shows_the_source_pixels_exactly(live_server) -> None:
    setup = build_study(methods=2, scenes=3, trials_per_session=4, size=(1300, 860))
    for asset in ImageAsset.objects.all():
        image_tiles_build(asset=asset)
    ARTIFACTS.mkdir(exist_ok=True)
    results = {}
    with playwright_api.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=str(CHROMIUM), headless=True, args=LAUNCH_ARGS)
        for dpr in (1, 2):
            for width, height in SIZES:
                context = browser.new_context(viewport={"width": width, "height": height}, device_scale_factor=dpr)
                page = context.new_page()
                page.set_default_timeout(20_000)
                errors: list[str] = []
                page.on("pageerror", lambda error, errors=errors: errors.append(str(error)))
                page.goto(
                    f"{live_server.url}/s/{setup.study.slug}/?PROLIFIC_PID=px-{width}-{dpr}&STUDY_ID=s&SESSION_ID=x"
                )
                page.locator("#consent").check()
                page.keyboard.press("Enter")
                page.wait_for_url("**/r/*/")
                page.wait_for_function("() => window.mosaic && window.mosaic.current && window.mosaic.accepting")
                page.keyboard.press("g")
                page.wait_for_function(AT_100)
                page.wait_for_timeout(300)  # a few frames: the last draw reaches the screen
                assert page.evaluate(AT_100)
                # The tiles on screen are lossless WebP, the format new pyramids are built in.
                assert page.evaluate(TILE_FORMATS) == ["webp"]
                shot_bytes = page.screenshot()
                shot = np.asarray(Image.open(io.BytesIO(shot_bytes)).convert("RGB"))
                assert shot.shape[:2] == (height * dpr, width * dpr)
                if width == 1920:
                    (ARTIFACTS / f"rater-100-percent-dpr{dpr}.png").write_bytes(shot_bytes)
                results[(width, height, dpr)] = [_compare(shot, pane, dpr) for pane in page.evaluate(PANES)]
                assert not errors, errors
                context.close()
        browser.close()
    for key, panes in results.items():
        assert len(panes) == 2, key
        for compared, differ in panes:
            assert differ == 0, f"{differ} of {compared} pixels differ at {key}"
