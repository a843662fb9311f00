from __future__ import annotations

import re

from django.http import Http404, HttpRequest, HttpResponse
from django.views.decorators.http import require_safe

from studies import selectors
from studies.media import media_response

# Pyramids are WebP or PNG (older ones, and 16-bit images): the descriptor names which.
_TILE = re.compile(r"^\d+_\d+\.(png|webp)$")


@require_safe
def image_file(request: HttpRequest, token: str, ext: str) -> HttpResponse:
    asset = selectors.image_asset_by_token(token=token)
    # The rater copy only, never the original: it has the same pixels and nothing else.
    if asset is None or not asset.file or not asset.file.name.endswith("." + ext):
        raise Http404("No such image.")
    return media_response(asset.file.name, content_type="image/png")


@require_safe
def tiles_descriptor(request: HttpRequest, token: str) -> HttpResponse:
    asset = selectors.image_asset_by_token(token=token)
    if asset is None or asset.tile_status != asset.TileStatus.DONE:
        raise Http404("No tiles for this image.")
    return media_response(f"{asset.tiles_dir}/pyramid.dzi", content_type="application/xml")


@require_safe
def tile_file(request: HttpRequest, token: str, level: int, tile: str) -> HttpResponse:
    name = _TILE.match(tile)
    if not name:
        raise Http404("No such tile.")
    asset = selectors.image_asset_by_token(token=token)
    if asset is None or asset.tile_status != asset.TileStatus.DONE:
        raise Http404("No tiles for this image.")
    content_type = f"image/{name.group(1)}"
    return media_response(f"{asset.tiles_dir}/pyramid_files/{level}/{tile}", content_type=content_type)
