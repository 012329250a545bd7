"""The default tile is the model's input size × its training ground resolution, in metres on the
ground, whatever the raster's CRS: projected (UTM), geographic (degrees) and Web Mercator (whose
map unit is cos(latitude) ground metres), at the equator, 45° and 60°.

The dock shows what preview_tiles says; the command line's run uses the same plan, which the
last test checks through caption_raster's result.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
from rasterio.crs import CRS
from rasterio.transform import from_origin
from rasterio.warp import transform as warp_points

from mapscribe.model import WholeRaster, preview_tiles, read_header
from mapscribe.model.geo.crs import ground_scale
from rasters import write_raster

LATITUDES = (0.0, 45.0, 60.0)
SIZE = 400  # raster pixels a side


def _utm_epsg(latitude: float, longitude: float = 15.0) -> int:
    zone = int((longitude + 180) // 6) + 1
    return (32600 if latitude >= 0 else 32700) + zone


def _raster(tmp_path, kind: str, latitude: float):
    """A raster centred on (15°E, latitude) whose pixels are about 0.5 m on the ground."""
    longitude = 15.0
    if kind == "utm":
        crs = f"EPSG:{_utm_epsg(latitude)}"
        xs, ys = warp_points(CRS.from_epsg(4326), CRS.from_string(crs), [longitude], [latitude])
        pixel = (0.5, 0.5)
    elif kind == "geographic":
        crs = "EPSG:4326"
        xs, ys = [longitude], [latitude]
        pixel = (0.5 / (111_320 * math.cos(math.radians(latitude))), 0.5 / 110_574)
    else:
        crs = "EPSG:3857"
        xs, ys = warp_points(CRS.from_epsg(4326), CRS.from_epsg(3857), [longitude], [latitude])
        pixel = (0.5 / math.cos(math.radians(latitude)),) * 2
    left = xs[0] - SIZE / 2 * pixel[0]
    top = ys[0] + SIZE / 2 * pixel[1]
    return write_raster(tmp_path / f"{kind}-{latitude:g}.tif",
                        np.zeros((3, SIZE, SIZE), np.uint8), crs=crs,
                        transform=from_origin(left, top, *pixel))


@pytest.mark.parametrize("kind", ["utm", "geographic", "webmercator"])
@pytest.mark.parametrize("latitude", LATITUDES)
def test_the_default_tile_is_the_same_ground_size_in_every_crs(tmp_path, tiny_model_path, kind,
                                                                latitude):
    header = read_header(tiny_model_path)
    metres = header.config.input_size * header.ground_resolution_m   # 224 × 0.3 m = 67.2 m
    preview = preview_tiles(_raster(tmp_path, kind, latitude), tiny_model_path, WholeRaster())
    width_m, height_m = preview.tile_size_metres
    # Whole pixels of about 0.5 m: within a pixel (and UTM's scale factor) of the ground size.
    assert width_m == pytest.approx(metres, abs=0.6) and height_m == pytest.approx(metres, abs=0.6)
    assert preview.tile_size_pixels == (round(metres / 0.5),) * 2


def test_web_mercator_units_shrink_with_latitude():
    # At 54°N a 112-unit tile is 65.8 m on the ground.
    _, y = warp_points(CRS.from_epsg(4326), CRS.from_epsg(3857), [0.0], [54.0])
    scale_x, scale_y = ground_scale(CRS.from_epsg(3857).to_wkt(), (0.0, y[0]))
    assert 112 * scale_x == pytest.approx(112 * math.cos(math.radians(54)), rel=1e-6)
    assert scale_x == scale_y


def test_a_geographic_raster_at_60_degrees_gets_a_wide_tile_in_pixels(tmp_path, tiny_model_path):
    # The case: on EPSG:4326 at 60°N a ground square is twice as many degrees wide as
    # tall, so a raster of square-degree pixels needs about twice as many columns as rows.
    path = write_raster(tmp_path / "square-degrees.tif", np.zeros((3, 800, 800), np.uint8),
                        crs="EPSG:4326", transform=from_origin(15.0, 60.001, 2.5e-6, 2.5e-6))
    preview = preview_tiles(path, tiny_model_path, WholeRaster())
    width, height = preview.tile_size_pixels
    assert width / height == pytest.approx(110_574 / (111_320 * math.cos(math.radians(60))),
                                           rel=0.01)
