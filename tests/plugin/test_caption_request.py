"""The dock's pure request module (plugin/dock/request.py), without a widget: each value that
cannot make a run gives a ParameterError naming the field at fault; good values become the
engine's CaptionRasterParams with the engine's own defaults; the tile preview is said in words.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest

from mapscribe.model import (
    BandMapping,
    CaptionRasterParams,
    MapScribeError,
    PolygonArea,
    TilePreview,
    WholeRaster,
)
from mapscribe.plugin.dock.output import default_output_path, next_free_path
from mapscribe.plugin.dock.request import (
    CAPTIONS_LAYER,
    CaptionFormValues,
    CaptionRequest,
    caption_request,
    engine_params,
    tile_preview_text,
)
from mapscribe.plugin.ui import ParameterError


@pytest.fixture
def values(tmp_path) -> CaptionFormValues:
    # The request checks that the model file is there; its header is read elsewhere
    # (model_problem None: it was read).
    model = tmp_path / "model.mscap"
    model.write_bytes(b"")
    return CaptionFormValues(
        raster_path="/data/raster.tif", raster_name="raster", model_path=str(model),
        model_problem=None, tile_size=None, tile_problem=None, overlap_percent=10,
        batch_size=4, beam_size=2, device="cpu", output_path=str(tmp_path / "out.gpkg"),
        bands=(3, 2, 1))


def _whole() -> WholeRaster:
    return WholeRaster()


def test_good_values_make_the_request_and_the_engine_params(values):
    request = caption_request(values, _whole)
    assert request == CaptionRequest(
        raster_path="/data/raster.tif", raster_name="raster", model_path=values.model_path,
        area=WholeRaster(), tile_size=None, overlap_percent=10.0, batch_size=4, beam_size=2,
        device="cpu", output_path=values.output_path, bands=(3, 2, 1))
    params = engine_params(request, resume=True)
    assert isinstance(params, CaptionRasterParams)
    assert params.tile_size is None  # the model's own tile: the engine works it out
    assert (params.tile_size_unit, params.overlap, params.overlap_unit) == ("map", 10.0,
                                                                             "percent")
    assert params.bands == BandMapping(bands=(3, 2, 1))
    assert params.layer == CAPTIONS_LAYER == CaptionRasterParams.__dataclass_fields__[
        "layer"].default
    assert params.resume and not params.overwrite
    assert engine_params(replace(request, tile_size=38_400.0)).tile_size == 38_400.0


@pytest.mark.parametrize("change, field, words", [
    ({"model_path": ""}, "model", "choose a model file"),
    ({"model_path": "/nowhere/m.mscap"}, "model", "does not exist"),
    ({"model_problem": "not a MapScribe model"}, "model", "cannot be used"),
    ({"tile_problem": "tiles need at least 4 pixels a side"}, "tile_size",
     "tiles need at least 4 pixels a side"),
    ({"output_path": ""}, "output", "choose an output GeoPackage"),
    ({"output_path": "/tmp/out.tif"}, "output", "must end in .gpkg"),
])
def test_each_bad_value_names_its_field(values, change, field, words):
    read = []
    with pytest.raises(ParameterError, match=words) as error:
        caption_request(replace(values, **change), lambda: read.append(1) or WholeRaster())
    assert error.value.field == field
    assert read == []  # the area is read last: the form's own problems are said first
    assert isinstance(error.value, MapScribeError)  # front doors catch one root


def test_the_area_is_read_last_and_its_problem_kept(values):
    def no_polygons():
        raise ParameterError("polygons", "choose a polygon layer")

    with pytest.raises(ParameterError, match="choose a polygon layer") as error:
        caption_request(values, no_polygons)
    assert error.value.field == "polygons"
    area = PolygonArea(("POLYGON ((0 0, 1 0, 1 1, 0 0))",), "EPSG:4326", "a field")
    assert caption_request(values, lambda: area).area == area


def test_the_engine_refuses_what_it_cannot_do_with_its_own_error(values):
    request = caption_request(values, _whole)
    with pytest.raises(MapScribeError, match="overwrite and resume"):
        engine_params(request, overwrite=True, resume=True)


def test_the_tile_preview_in_words():
    preview = TilePreview(tiles=42, rows=6, cols=7, tile_size_pixels=(447, 225),
                          tile_size_map=(0.002012, 0.001013),
                          tile_size_metres=(112.0, 112.3), crs="EPSG:4326",
                          notes=("the model sees these tiles too coarse",))
    text = tile_preview_text(preview, "sixty", "°", whole_raster=True,
                             trained_resolution_m=0.5, input_size=224)
    assert text.startswith("A tile spans 447 × 225 pixels of sixty: 0.002012 × 0.001013 °")
    assert "about 112 × 112 m on the ground" in text
    assert "The whole raster takes 42 tiles." in text
    assert "trained on 0.5 m per pixel, at tiles of 224 pixels" in text
    assert text.endswith("⚠ the model sees these tiles too coarse")
    pyramid = tile_preview_text(replace(preview, tiles=56, level_tiles=(2, 12, 42)), "sixty",
                                "°", whole_raster=True, trained_resolution_m=0.5,
                                input_size=224)
    assert ("The whole raster takes 42 tiles, and 14 more in 2 coarser levels for the "
            "overview.") in pyramid
    plain = tile_preview_text(replace(preview, notes=()), "sixty", "°", whole_raster=False,
                              trained_resolution_m=None, input_size=224)
    assert "tiles." not in plain and "trained" not in plain and "⚠" not in plain


def test_output_names_are_never_an_existing_file(tmp_path):
    assert next_free_path(tmp_path / "a.gpkg") == tmp_path / "a.gpkg"
    (tmp_path / "a.gpkg").write_bytes(b"")
    (tmp_path / "a-2.gpkg").write_bytes(b"")
    assert next_free_path(tmp_path / "a.gpkg") == tmp_path / "a-3.gpkg"
    assert next_free_path(tmp_path / "a-2.gpkg") == tmp_path / "a-3.gpkg"
    project = tmp_path / "survey.qgz"
    assert default_output_path("my raster (1).tif", str(project)) == (
        tmp_path / "my_raster_1-captions.gpkg")
    assert default_output_path("x.tif", "", fallback_folder=Path("/f")) == Path(
        "/f/x-captions.gpkg")
