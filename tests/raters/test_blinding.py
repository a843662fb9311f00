"""No team, method or scene name, and no file name or hash, reaches a rater."""

from __future__ import annotations

import json
import re
from xml.etree import ElementTree

import pytest
from django.test import Client

from studies.models import ImageAsset
from studies.services import image_tiles_build
from tests.raters.conftest import build_study

SECRET_METHODS = ["TeamAlpha-Secret", "TeamBravo-Secret", "TeamCharlie-Secret"]


def _body(response) -> bytes:
    if not hasattr(response, "recorded_body"):
        streaming = getattr(response, "streaming", False)
        response.recorded_body = b"".join(response.streaming_content) if streaming else response.content
    return response.recorded_body


class Recorder:
    """A test client that keeps every URL, header and body it saw."""

    def __init__(self) -> None:
        self.client = Client(enforce_csrf_checks=True)
        self.seen: list[tuple[str, bytes]] = []

    def _record(self, url: str, response) -> None:
        headers = "\n".join(f"{k}: {v}" for k, v in response.items())
        self.seen.append((url, headers.encode() + b"\n" + _body(response)))

    def get(self, url: str, **extra: object):
        response = self.client.get(url, **extra)
        self._record(url, response)
        return response

    def post(self, url: str, data: object, **extra: object):
        response = self.client.post(url, data, **extra)
        self._record(url, response)
        return response


def _fetch_tiles(walker: Recorder, dzi_url: str) -> int:
    descriptor = walker.get(dzi_url)
    assert descriptor.status_code == 200
    root = ElementTree.fromstring(_body(descriptor))
    size = root.find("{*}Size")
    width, height = int(size.get("Width")), int(size.get("Height"))
    tile, fmt = int(root.get("TileSize")), root.get("Format")
    fetched = 0
    level, w, h = (max(width, height) - 1).bit_length(), width, height
    base = dzi_url.removesuffix(".dzi") + "_files"
    while level >= 0:
        for col in range((w + tile - 1) // tile):
            for row in range((h + tile - 1) // tile):
                response = walker.get(f"{base}/{level}/{col}_{row}.{fmt}")
                assert response.status_code == 200, (level, col, row)
                fetched += 1
        level, w, h = level - 1, max(1, (w + 1) // 2), max(1, (h + 1) // 2)
    return fetched


@pytest.mark.django_db
def test_a_whole_session_never_shows_a_method_scene_or_file_name() -> None:
    setup = build_study(method_names=SECRET_METHODS, scenes=3, trials_per_session=8, control_rate=0.25)
    study = setup.study
    study.completion_redirect_url = "https://app.prolific.com/submissions/complete?cc={code}"
    study.save()
    for asset in ImageAsset.objects.all():
        image_tiles_build(asset=asset)
    assert not ImageAsset.objects.exclude(tile_status=ImageAsset.TileStatus.DONE).exists()

    walker = Recorder()
    walker.get(f"/s/{study.slug}/?PROLIFIC_PID=abc123&STUDY_ID=s1&SESSION_ID=x1")
    csrf = walker.client.cookies["csrftoken"].value
    started = walker.post(
        f"/s/{study.slug}/",
        {"csrfmiddlewaretoken": csrf, "consent": "yes", "PROLIFIC_PID": "abc123", "viewport_width": "1900"},
    )
    assert started.status_code == 302
    rate_url = started["Location"]
    token = rate_url.strip("/").split("/")[-1]
    assert walker.get(rate_url).status_code == 200
    headers = {"HTTP_X_CSRFTOKEN": csrf}
    walker.post(
        f"/api/sessions/{token}/device/",
        json.dumps({"viewport_width": 1900}),
        content_type="application/json",
        **headers,
    )

    tiles_fetched = votes = 0
    while True:
        body = walker.get(f"/api/sessions/{token}/next/").json()
        trial = body["trial"]
        if trial is None:
            break
        for pane in trial["panes"]:
            image = walker.get(pane["url"])
            assert image.status_code == 200
            assert "Content-Disposition" not in image
            tiles_fetched += _fetch_tiles(walker, pane["tiles"])
        response = walker.post(
            f"/api/sessions/{token}/trials/{trial['token']}/rating/",
            json.dumps({"score": 3, "response_ms": 900}),
            content_type="application/json",
            **headers,
        )
        assert response.status_code == 201
        votes += 1
        # A replay and a conflict are answered too; neither may leak anything.
        walker.post(
            f"/api/sessions/{token}/trials/{trial['token']}/rating/",
            json.dumps({"score": 4}),
            content_type="application/json",
            **headers,
        )
    summary = walker.get(f"/api/sessions/{token}/").json()
    done = walker.get(summary["completion_page"])
    assert done.status_code == 200
    walker.get(f"/s/{study.slug}/?PROLIFIC_PID=abc123")
    walker.get("/api/schema/")
    assert votes == 3 + 8
    assert tiles_fetched > votes

    forbidden = SECRET_METHODS + [
        "HiddenRef-Secret",
        "LowAnchor-Secret",
        "Scene-Hidden",
        "hidden_reference",
        "low_anchor",
    ]
    forbidden += list(ImageAsset.objects.values_list("sha256", flat=True))
    forbidden += ["images/", "pyramid"]
    pattern = re.compile("|".join(re.escape(word) for word in forbidden).encode(), re.IGNORECASE)
    leaks = []
    for url, blob in walker.seen:
        match = pattern.search(url.encode() + b" " + blob)
        if match:
            leaks.append((url, match.group().decode()))
    assert not leaks, leaks
    assert len(walker.seen) > 50
