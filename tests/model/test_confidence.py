"""Each captioned tile carries its scene theme, the theme's probability and a calibrated
confidence; below the model's threshold its status is 'uncertain'."""

from __future__ import annotations

import math
import shutil

import pytest
from osgeo import ogr

from mapscribe.model import CaptionRasterParams, caption_raster, read_header
from mapscribe.model.data.themes import THEMES
from mapscribe.model.modelfile.header import record_calibration
from rasters import RGB_BYTE


def _calibrated(tiny_model_path, tmp_path, threshold):
    """The tiny model with a calibration whose confidence is the theme probability alone."""
    model = tmp_path / f"calibrated-{threshold}.mscap"
    shutil.copy(tiny_model_path, model)
    # σ(w·p + b) with a steep slope around p = 0.5: confidence ≈ 1 above, ≈ 0 below.
    record_calibration(model, {"weights": [40.0, 0.0, -20.0], "threshold": threshold,
                               "target_accuracy": 0.9, "images": 100, "confident_share": 0.5,
                               "confident_accuracy": 0.9, "reliability": []})
    return model


def _tiles(path):
    dataset = ogr.Open(str(path))
    try:
        return [{name: feature.GetField(name) for name in
                 ("status", "caption", "theme", "theme_probability", "confidence")}
                for feature in dataset.GetLayerByName("captions")]
    finally:
        dataset = None  # closed before the layer's features go (GDAL needs that order)


@pytest.mark.parametrize("threshold, uncertain", [(0.0, False), (1.01, True)])
def test_tiles_get_theme_confidence_and_the_uncertain_status(tiny_model_path, tmp_path,
                                                             threshold, uncertain):
    assert read_header(tiny_model_path).config.themes == THEMES  # trained with a theme head
    model = _calibrated(tiny_model_path, tmp_path, threshold)
    out = tmp_path / "grid.gpkg"
    result = caption_raster(CaptionRasterParams(raster=RGB_BYTE, model=model, output=out,
                                                tile_size=256, tile_size_unit="pixels",
                                                beam_size=1))
    tiles = [tile for tile in _tiles(out) if tile["status"] != "nodata"]
    assert tiles
    for tile in tiles:
        assert tile["theme"] in THEMES and 0.0 < tile["theme_probability"] <= 1.0
        p = tile["theme_probability"]
        assert tile["confidence"] == pytest.approx(1 / (1 + math.exp(-(40 * p - 20))), rel=1e-6)
        assert tile["caption"]  # an uncertain tile keeps its caption: it is only flagged
        assert (tile["status"] == "uncertain") is uncertain
    assert result.uncertain == (len(tiles) if uncertain else 0)


def test_a_model_without_calibration_leaves_confidence_empty(tiny_model_path, tmp_path):
    out = tmp_path / "grid.gpkg"
    caption_raster(CaptionRasterParams(raster=RGB_BYTE, model=tiny_model_path, output=out,
                                       tile_size=256, tile_size_unit="pixels", beam_size=1))
    tiles = [tile for tile in _tiles(out) if tile["status"] != "nodata"]
    assert tiles and all(t["confidence"] is None and t["theme"] in THEMES for t in tiles)
    assert {t["status"] for t in tiles} <= {"captioned", "unfinished"}
