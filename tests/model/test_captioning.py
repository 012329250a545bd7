"""caption_raster: the real rasters and generated edge cases end to end, into a real GeoPackage.

Kept fast on 2 CPU cores: the tiny session model, beam 1, small tiles in pixels (a few dozen
tiles per run).
"""

from __future__ import annotations

import datetime
import json
import os
import sqlite3
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
from affine import Affine
from osgeo import ogr, osr
from rasterio.enums import ColorInterp
from rasterio.warp import transform_bounds

from mapscribe.model.geo.areas import BoundingBox, WholeRaster
from mapscribe.model.geo.errors import RasterReadError, TilingError
from mapscribe.model.geo.raster_info import RasterInfo
from mapscribe.model.geo.read_plan import BandMapping
from mapscribe.model.geo.tiling import TileGridParams, plan_tiles
from mapscribe.model.geo.vector import read_polygon_file
from mapscribe.model.jobs.caption import CAPTION_RASTER_ERRORS, caption_raster
from mapscribe.model.jobs.caption_params import CaptioningError, CaptionRasterParams
from mapscribe.model.modelfile.header import ModelFileError
from mapscribe.model.modelfile.weights import load_model, save_model
from mapscribe.model.output.plan import OutputPlan, plan_output
from mapscribe.model.output.schema import (
    FIELD_NAMES,
    FORMAT,
    GridWriteError,
    TileRecord,
)
from mapscribe.model.output.writer import open_grid_layer
from rasters import NAIP, RGB_BYTE, write_raster

# A box in lon/lat well inside RGB.byte.tif (Bahamas, UTM 18N), and the same box in Web Mercator.
BOX_4326 = (-78.0, 24.0, -77.5, 24.5)
BOX_3857 = (-8_682_920.0, 2_753_408.0, -8_627_260.0, 2_814_893.0)


def _params(model, raster, out, **overrides) -> CaptionRasterParams:
    values = dict(raster=raster, model=model, output=out, tile_size=64, tile_size_unit="pixels",
                  batch_size=8, beam_size=1, max_length=12, device="cpu")
    values.update(overrides)
    return CaptionRasterParams(**values)


def _features(path, layer="captions"):
    """Every feature as a dict of its fields, plus 'envelope' and the OGR geometry's WKT."""
    dataset = ogr.Open(str(path))
    assert dataset is not None, path
    rows = []
    for feature in dataset.GetLayerByName(layer):
        values = {name: feature.GetField(name) for name in FIELD_NAMES}
        geometry = feature.GetGeometryRef()
        minx, maxx, miny, maxy = geometry.GetEnvelope()
        values["envelope"] = (minx, miny, maxx, maxy)
        values["points"] = geometry.GetGeometryRef(0).GetPointCount()
        values["null_caption"] = feature.IsFieldNull("caption")
        values["null_score"] = feature.IsFieldNull("score")
        rows.append(values)
    return rows


def _metadata(path, key, layer=0):
    # The dataset must outlive its layer: GDAL 3.6's bindings crash otherwise.
    dataset = ogr.Open(str(path))
    value = dataset.GetLayer(layer).GetMetadataItem(key)
    dataset = None
    return json.loads(value)


def _srs_code(path, layer=0):
    dataset = ogr.Open(str(path))
    code = dataset.GetLayer(layer).GetSpatialRef().GetAuthorityCode(None)
    dataset = None
    return code


def _grid(raster, area, tile_pixels):
    return plan_tiles(RasterInfo.from_path(raster), area,
                      TileGridParams(tile_size=tile_pixels, tile_size_unit="pixels"))


@pytest.fixture(scope="module")
def landsat_run(tiny_model_path, tmp_path_factory):
    """RGB.byte.tif, whole, in 128-pixel tiles: 6 rows × 7 columns, black no-data corners."""
    out = tmp_path_factory.mktemp("landsat") / "grid.gpkg"
    updates = []
    result = caption_raster(_params(tiny_model_path, RGB_BYTE, out, tile_size=128),
                            updates.append)
    return result, out, updates


# --------------------------------------------------------------------------------------------
# The real rasters
# --------------------------------------------------------------------------------------------
def test_whole_landsat_raster_gets_one_feature_per_tile_with_fields_and_statuses(landsat_run):
    result, out, updates = landsat_run
    grid = _grid(RGB_BYTE, WholeRaster(), 128)
    rows = _features(out)
    assert result.stopped == "completed" and result.output == out.resolve()
    assert sorted(r["tile_id"] for r in rows) == [t.tile_id for t in grid.tiles]
    assert result.tiles_total == len(grid.tiles) == 42 and result.skipped_existing == 0
    assert result.captioned + result.nodata == 42 and result.grid_signature == grid.grid_signature

    statuses = {r["status"] for r in rows}
    assert statuses <= {"captioned", "unfinished", "nodata"}
    by_id = {r["tile_id"]: r for r in rows}
    # The top-left corner of this Landsat scene is black no-data; its centre is land and sea.
    corner, centre = by_id[0], by_id[3 * 7 + 3]
    assert corner["status"] == "nodata" and corner["null_caption"] and corner["null_score"]
    assert corner["valid_fraction"] < 0.5
    assert centre["status"] in ("captioned", "unfinished") and centre["caption"].strip()
    assert centre["score"] <= 0 and centre["valid_fraction"] == pytest.approx(1.0)
    assert sum(r["status"] == "nodata" for r in rows) == result.nodata > 0
    assert all(not r["null_caption"] for r in rows if r["status"] != "nodata")

    # Each polygon is its tile's footprint in the raster's CRS (no reprojection: 5 points).
    for tile in grid.tiles:
        left, bottom, right, top = tile.bounds
        assert by_id[tile.tile_id]["envelope"] == pytest.approx((left, bottom, right, top))
        assert by_id[tile.tile_id]["points"] == 5
        assert (by_id[tile.tile_id]["row"], by_id[tile.tile_id]["col"]) == (tile.row, tile.col)
        assert bool(by_id[tile.tile_id]["is_edge"]) == tile.is_edge
    assert any(r["is_edge"] for r in rows)  # 718 and 791 are not multiples of 128

    assert all(r["model"].startswith("tiny.mscap (sha256 ") for r in rows)
    created = datetime.datetime.strptime(rows[0]["created"], "%Y/%m/%d %H:%M:%S+00")
    age = datetime.datetime.now(datetime.timezone.utc).replace(tzinfo=None) - created
    assert datetime.timedelta(0) <= age < datetime.timedelta(minutes=30)

    assert updates and updates[-1].done == updates[-1].total == 42
    assert updates[-1].stage == "captioning" and updates[-1].unit == "tiles"
    assert result.tiles_per_second > 0 and result.device == "cpu"
    assert result.examples and all(e.caption for e in result.examples)


def test_layer_types_crs_and_metadata_read_back_with_ogr(landsat_run):
    _, out, _ = landsat_run
    dataset = ogr.Open(str(out))
    layer = dataset.GetLayerByName("captions")
    definition = layer.GetLayerDefn()
    types = {definition.GetFieldDefn(i).GetName():
             (ogr.GetFieldTypeName(definition.GetFieldDefn(i).GetType()),
              ogr.GetFieldSubTypeName(definition.GetFieldDefn(i).GetSubType()))
             for i in range(definition.GetFieldCount())}
    assert types == {"tile_id": ("Integer64", "None"), "row": ("Integer", "None"),
                     "col": ("Integer", "None"), "caption": ("String", "None"),
                     "score": ("Real", "None"), "status": ("String", "None"),
                     "valid_fraction": ("Real", "None"), "is_edge": ("Integer", "Boolean"),
                     "model": ("String", "None"), "created": ("DateTime", "None"),
                     "theme": ("String", "None"), "theme_probability": ("Real", "None"),
                     "confidence": ("Real", "None"), "reason": ("String", "None"),
                     "level": ("Integer", "None"), "parent_id": ("Integer64", "None")}
    assert layer.GetGeomType() == ogr.wkbPolygon
    srs = layer.GetSpatialRef()
    assert (srs.GetAuthorityName(None), srs.GetAuthorityCode(None)) == ("EPSG", "32618")
    metadata = layer.GetMetadata()
    assert metadata["MAPSCRIBE_FORMAT"] == FORMAT
    grid = json.loads(metadata["MAPSCRIBE_GRID"])
    assert metadata["MAPSCRIBE_GRID_SIGNATURE"] == grid["signature"]
    assert grid["tile_size"] == [128, 128] and grid["tiles"] == 42
    run = json.loads(metadata["MAPSCRIBE_RUN"])
    assert run["raster"]["name"] == "RGB.byte.tif" and run["raster"]["stretch"] is None
    assert run["decoding"] == {"beam_size": 1, "max_length": 12}
    assert "MapScribe captions of RGB.byte.tif" in metadata["DESCRIPTION"]
    # A spatial index and a unique tile_id index exist.
    with sqlite3.connect(out) as db:
        assert db.execute("SELECT count(*) FROM rtree_captions_geom").fetchone()[0] == 42
        indexes = db.execute("SELECT sql FROM sqlite_master WHERE type='index' AND "
                             "tbl_name='captions'").fetchall()
    assert any("UNIQUE" in (sql or "") and "tile_id" in sql for (sql,) in indexes)


def test_layer_reads_back_in_qgis_with_its_crs(landsat_run):
    from qgis.core import QgsVectorLayer

    _, out, _ = landsat_run
    layer = QgsVectorLayer(f"{out}|layername=captions", "captions", "ogr")
    assert layer.isValid()
    assert layer.crs().authid() == "EPSG:32618"
    assert layer.featureCount() == 42
    assert {"tile_id", "caption", "score", "status", "created"} <= set(layer.fields().names())
    assert "MapScribe captions" in layer.metadata().abstract()


def test_naip_four_band_raster_in_nad83_is_captioned_from_bands_1_2_3(tiny_model_path,
                                                                       tmp_path):
    out = tmp_path / "naip.gpkg"
    result = caption_raster(_params(tiny_model_path, NAIP, out, tile_size=240))
    grid = _grid(NAIP, WholeRaster(), 240)
    rows = _features(out)
    assert sorted(r["tile_id"] for r in rows) == [t.tile_id for t in grid.tiles]
    assert result.crs == "EPSG:26914" and result.tiles_total == len(grid.tiles) == 16
    # 723 rows: the fourth row of tiles (rows 720..959) holds 3 rows of imagery, so no data.
    assert [r["tile_id"] for r in rows if r["status"] == "nodata"] == [12, 13, 14, 15]
    assert result.captioned == 12 and result.nodata == 4
    assert _srs_code(out) == "26914"
    assert _metadata(out, "MAPSCRIBE_RUN")["raster"]["bands"] == [1, 2, 3]


@pytest.mark.parametrize("box, crs", [(BOX_4326, "EPSG:4326"), (BOX_3857, "EPSG:3857")])
def test_bounding_box_in_another_crs_captions_exactly_the_planned_tiles(tiny_model_path,
                                                                        tmp_path, box, crs):
    out = tmp_path / "box.gpkg"
    area = BoundingBox(*box, crs=crs)
    result = caption_raster(_params(tiny_model_path, RGB_BYTE, out, area=area))
    grid = _grid(RGB_BYTE, area, 64)
    rows = _features(out)
    assert sorted(r["tile_id"] for r in rows) == [t.tile_id for t in grid.tiles]
    assert len(rows) == result.tiles_total == 9
    # The tiles cover the box (reprojected to UTM 18N) and no tile lies outside it.
    left, bottom, right, top = transform_bounds(crs, "EPSG:32618", *box, densify_pts=21)
    assert min(r["envelope"][0] for r in rows) <= left
    assert max(r["envelope"][2] for r in rows) >= right
    assert min(r["envelope"][1] for r in rows) <= bottom
    assert max(r["envelope"][3] for r in rows) >= top
    for r in rows:
        minx, miny, maxx, maxy = r["envelope"]
        assert minx < right and maxx > left and miny < top and maxy > bottom


def test_output_crs_named_by_the_user_reprojects_densified_polygons(tiny_model_path, tmp_path):
    out = tmp_path / "wgs84.gpkg"
    area = BoundingBox(*BOX_4326, crs="EPSG:4326")
    result = caption_raster(_params(tiny_model_path, RGB_BYTE, out, area=area,
                                    output_crs="EPSG:4326"))
    grid = _grid(RGB_BYTE, area, 64)
    assert result.crs == "EPSG:4326"
    assert _srs_code(out) == "4326"
    by_id = {r["tile_id"]: r for r in _features(out)}
    for tile in grid.tiles:
        expected = transform_bounds("EPSG:32618", "EPSG:4326", *tile.bounds, densify_pts=21)
        row = by_id[tile.tile_id]
        # x is longitude and y latitude in the GeoPackage (GeoPackage axis order).
        assert row["envelope"] == pytest.approx(expected, abs=1e-6)
        assert -79 < row["envelope"][0] < -77 and 23 < row["envelope"][1] < 25.5
        assert row["points"] > 5  # edges densified before reprojection


def test_polygon_area_captions_only_the_tiles_meeting_the_polygon(tiny_model_path, tmp_path):
    polygon_file = tmp_path / "aoi.geojson"
    polygon_file.write_text(json.dumps({"type": "FeatureCollection", "features": [{
        "type": "Feature", "properties": {},
        "geometry": {"type": "Polygon", "coordinates": [[[-78.0, 24.0], [-77.4, 24.0],
                                                         [-78.0, 24.6], [-78.0, 24.0]]]}}]}))
    area = read_polygon_file(polygon_file)
    out = tmp_path / "poly.gpkg"
    caption_raster(_params(tiny_model_path, RGB_BYTE, out, area=area))
    grid = _grid(RGB_BYTE, area, 64)
    envelope_grid = _grid(RGB_BYTE, BoundingBox(-78.0, 24.0, -77.4, 24.6, "EPSG:4326"), 64)
    ids = sorted(r["tile_id"] for r in _features(out))
    assert ids == [t.tile_id for t in grid.tiles]
    assert grid.skipped > 0 and set(ids) < {t.tile_id for t in envelope_grid.tiles}


# --------------------------------------------------------------------------------------------
# Generated rasters: data types, masks, one band
# --------------------------------------------------------------------------------------------
def _quadrant_raster(tmp_path, kind):
    """64 × 64 px at 10 m; the top-left 32 × 32 quadrant is invalid where the kind allows."""
    rng = np.random.default_rng(0)
    path = tmp_path / f"{kind}.tif"
    if kind == "uint16":
        data = rng.integers(200, 4000, (3, 64, 64)).astype(np.uint16)
        data[:, :32, :32] = 0
        return write_raster(path, data, nodata=0), 1
    if kind == "float32-nan":
        data = rng.random((3, 64, 64)).astype(np.float32) * 0.3
        data[:, :32, :32] = np.nan
        return write_raster(path, data), 1
    if kind == "single-band":
        return write_raster(path, rng.integers(0, 255, (64, 64)).astype(np.uint8)), 0
    if kind == "rgba":
        data = rng.integers(1, 255, (4, 64, 64)).astype(np.uint8)
        data[3] = 255
        data[3, :32, :32] = 0
        return write_raster(path, data, colorinterp=[ColorInterp.red, ColorInterp.green,
                                                     ColorInterp.blue, ColorInterp.alpha]), 1
    raise ValueError(kind)


@pytest.mark.parametrize("kind", ["uint16", "float32-nan", "single-band", "rgba"])
def test_generated_rasters_run_end_to_end(tiny_model_path, tmp_path, kind):
    raster, expected_nodata = _quadrant_raster(tmp_path, kind)
    out = tmp_path / "out.gpkg"
    result = caption_raster(_params(tiny_model_path, raster, out, tile_size=32))
    rows = {r["tile_id"]: r for r in _features(out)}
    assert sorted(rows) == [0, 1, 2, 3]
    assert result.nodata == expected_nodata and result.captioned == 4 - expected_nodata
    if expected_nodata:
        assert rows[0]["status"] == "nodata" and rows[0]["valid_fraction"] == 0
    assert all(rows[i]["status"] != "nodata" for i in (1, 2, 3))
    run = _metadata(out, "MAPSCRIBE_RUN")
    if kind in ("uint16", "float32-nan"):
        assert run["raster"]["stretch"]["bands"] == [1, 2, 3]  # one stretch for the raster
    if kind == "single-band":
        assert run["raster"]["bands"] == [1]
        assert any("gray" in note for note in result.notes)


# --------------------------------------------------------------------------------------------
# Clear errors, before anything is written
# --------------------------------------------------------------------------------------------
def _bad_inputs(tmp_path, model):
    no_crs = write_raster(tmp_path / "nocrs.tif", np.ones((3, 16, 16), np.uint8), crs=None)
    rotated = write_raster(tmp_path / "rotated.tif", np.ones((3, 16, 16), np.uint8),
                           transform=Affine(10, 2, 500_000, 2, -10, 4_000_000))
    not_a_model = tmp_path / "model.mscap"
    not_a_model.write_text("hello")
    a_file = tmp_path / "a-file"
    a_file.write_text("x")
    return {
        "missing raster": (dict(raster=tmp_path / "nope.tif"), TilingError, "cannot open raster"),
        "not a model": (dict(model=not_a_model), ModelFileError, "not a MapScribe model"),
        "no crs": (dict(raster=no_crs), TilingError, "has no CRS"),
        "rotated": (dict(raster=rotated), TilingError, "rotated or sheared"),
        "area outside": (dict(area=BoundingBox(-60.0, 10.0, -59.0, 11.0, "EPSG:4326")),
                         TilingError, "does not overlap"),
        "bands": (dict(bands=BandMapping((5, 6, 7))), RasterReadError, "band 5 does not exist"),
        "folder not writable": (dict(output=a_file / "grid.gpkg"), GridWriteError,
                                "cannot create the output folder"),
        "not a gpkg": (dict(output=tmp_path / "grid.shp"), GridWriteError,
                       "must be a GeoPackage"),
        "tile too small": (dict(tile_size=2), TilingError, "at least 4 pixels"),
        "output crs": (dict(output_crs="EPSG:999999"), GridWriteError, "unknown CRS"),
        "layer name": (dict(layer="my layer"), GridWriteError, "layer name 'my layer'"),
        "device": (dict(device="cuda:7"), Exception, "cuda:7"),
    }


def test_bad_inputs_are_refused_with_clear_errors_and_no_output(tiny_model_path, tmp_path):
    for name, (overrides, error_type, words) in _bad_inputs(tmp_path, tiny_model_path).items():
        overrides = dict(overrides)
        raster = overrides.pop("raster", RGB_BYTE)
        model = overrides.pop("model", tiny_model_path)
        out = overrides.pop("output", tmp_path / f"{name}.gpkg")
        with pytest.raises(CAPTION_RASTER_ERRORS) as caught:
            caption_raster(_params(model, raster, out, **overrides))
        assert isinstance(caught.value, error_type), name
        assert words in str(caught.value), (name, str(caught.value))
        assert not Path(out).exists(), name


def test_bad_parameters_are_refused_when_made():
    with pytest.raises(CaptioningError, match="beam_size must be a whole number"):
        CaptionRasterParams(raster="r.tif", model="m.mscap", output="o.gpkg", beam_size=0)
    with pytest.raises(CaptioningError, match="exclude each other"):
        CaptionRasterParams(raster="r.tif", model="m.mscap", output="o.gpkg", overwrite=True,
                            resume=True)
    with pytest.raises(RasterReadError, match="not band numbers"):
        CaptionRasterParams(raster="r.tif", model="m.mscap", output="o.gpkg", bands="r,g,b")
    assert CaptionRasterParams(raster="r", model="m", output="o.gpkg",
                               bands="3,2,1").bands == BandMapping((3, 2, 1))


# --------------------------------------------------------------------------------------------
# An existing output, a cancel, a crash
# --------------------------------------------------------------------------------------------
def test_existing_output_is_refused_replaced_or_resumed(tiny_model_path, tmp_path):
    out = tmp_path / "grid.gpkg"
    box = BoundingBox(*BOX_4326, crs="EPSG:4326")
    first = caption_raster(_params(tiny_model_path, RGB_BYTE, out, area=box))
    count = first.tiles_total

    with pytest.raises(GridWriteError, match="already holds captions.*--resume.*--overwrite"):
        caption_raster(_params(tiny_model_path, RGB_BYTE, out, area=box))

    with pytest.raises(CaptioningError) as caught:
        caption_raster(_params(tiny_model_path, RGB_BYTE, out, area=box, tile_size=32,
                               resume=True))
    assert "tile size (px): [64, 64] in the file, [32, 32] now" in str(caught.value)
    assert "--overwrite" in str(caught.value)

    other_model = tmp_path / "other.mscap"
    save_model(load_model(tiny_model_path), other_model, half=True)
    with pytest.raises(CaptioningError, match="captioned by another model"):
        # levels=1: the copy lost the training resolution that keeps "auto" at one level here.
        caption_raster(_params(other_model, RGB_BYTE, out, area=box, resume=True, levels=1))

    again = caption_raster(_params(tiny_model_path, RGB_BYTE, out, area=box, resume=True))
    assert again.skipped_existing == count and again.processed == 0 and again.device == ""
    assert len(_features(out)) == count

    replaced = caption_raster(_params(tiny_model_path, RGB_BYTE, out, area=box, tile_size=128,
                                      overwrite=True))
    rows = _features(out)
    assert len(rows) == replaced.tiles_total < count
    grid = _metadata(out, "MAPSCRIBE_GRID")
    assert grid["tile_size"] == [128, 128]


def test_a_second_layer_goes_into_the_same_geopackage_and_other_files_are_kept(
        tiny_model_path, tmp_path):
    out = tmp_path / "grid.gpkg"
    box = BoundingBox(*BOX_4326, crs="EPSG:4326")
    caption_raster(_params(tiny_model_path, RGB_BYTE, out, area=box, tile_size=128))
    caption_raster(_params(tiny_model_path, RGB_BYTE, out, area=box, tile_size=128,
                           layer="second"))
    dataset = ogr.Open(str(out))
    names = sorted(dataset.GetLayer(i).GetName() for i in range(dataset.GetLayerCount()))
    dataset = None
    assert names == ["captions", "second"]
    # Replacing one layer keeps the other.
    caption_raster(_params(tiny_model_path, RGB_BYTE, out, area=box, tile_size=128,
                           layer="second", overwrite=True))
    assert ogr.Open(str(out)).GetLayerCount() == 2
    # A GeoPackage holding a raster (no vector layer) gets the layer beside it, even with
    # overwrite, and the raster stays.
    from osgeo import gdal

    raster_gpkg = tmp_path / "raster.gpkg"
    gdal.Translate(str(raster_gpkg), str(RGB_BYTE), format="GPKG")
    plan = plan_output(raster_gpkg, overwrite=True)
    assert plan.action == "add" and plan.other_layers == ("raster",)
    with pytest.raises(CaptioningError, match="is the raster being captioned"):
        caption_raster(_params(tiny_model_path, raster_gpkg, raster_gpkg, area=box,
                               tile_size=128, overwrite=True))
    caption_raster(_params(tiny_model_path, RGB_BYTE, raster_gpkg, area=box, tile_size=128,
                           overwrite=True))
    assert plan_output(raster_gpkg, overwrite=True).action == "replace"
    caption_raster(_params(tiny_model_path, RGB_BYTE, raster_gpkg, area=box, tile_size=128,
                           overwrite=True))
    kept = gdal.Open(str(raster_gpkg))
    assert (kept.RasterXSize, kept.RasterYSize) == (791, 718)
    kept = None

    not_ours = tmp_path / "notes.gpkg"
    not_ours.write_text("not a geopackage")
    with pytest.raises(GridWriteError, match="not a GeoPackage.*--overwrite"):
        plan_output(not_ours)
    assert not_ours.read_text() == "not a geopackage"


def test_cancel_half_way_keeps_committed_batches_and_resume_finishes_the_same_tiles(
        tiny_model_path, tmp_path):
    out = tmp_path / "grid.gpkg"
    box = BoundingBox(*BOX_4326, crs="EPSG:4326")
    expected = [t.tile_id for t in _grid(RGB_BYTE, box, 64).tiles]
    assert len(expected) == 9
    asked = []

    def cancel_after_two_batches():
        asked.append(1)
        return len(asked) >= 3  # asked once before starting, then after each batch

    first = caption_raster(_params(tiny_model_path, RGB_BYTE, out, area=box, batch_size=2),
                           cancelled=cancel_after_two_batches)
    assert first.stopped == "cancelled" and first.processed == 4
    assert first.remaining == len(expected) - 4
    assert sorted(r["tile_id"] for r in _features(out)) == expected[:4]

    second = caption_raster(_params(tiny_model_path, RGB_BYTE, out, area=box, batch_size=2,
                                    resume=True))
    assert second.stopped == "completed" and second.skipped_existing == 4
    assert second.processed == len(expected) - 4 and second.remaining == 0
    ids = [r["tile_id"] for r in _features(out)]
    assert len(ids) == len(set(ids)) and sorted(ids) == expected
    run = _metadata(out, "MAPSCRIBE_RUN")
    assert len(run["resumed"]) == 1


CRASHING_RUN = textwrap.dedent("""
    import os, sys
    from mapscribe.model.jobs.caption import CaptionRasterParams, caption_raster
    from mapscribe.model.geo.areas import BoundingBox
    raster, model, out = sys.argv[1:4]
    batches = []
    def crash_after_two_batches():
        batches.append(1)
        if len(batches) == 3:
            os._exit(3)  # no cleanup at all, as in a crash or a kill
        return False
    caption_raster(CaptionRasterParams(
        raster=raster, model=model, output=out, area=BoundingBox(-78.0, 24.0, -77.5, 24.5,
        "EPSG:4326"), tile_size=64, tile_size_unit="pixels", batch_size=2, beam_size=1,
        max_length=12, device="cpu"), cancelled=crash_after_two_batches)
""")


def test_a_crash_keeps_every_committed_tile_and_resume_finishes(tiny_model_path, tmp_path):
    out = tmp_path / "crashed.gpkg"
    box = BoundingBox(*BOX_4326, crs="EPSG:4326")
    process = subprocess.run([sys.executable, "-c", CRASHING_RUN, str(RGB_BYTE),
                              str(tiny_model_path), str(out)], capture_output=True, text=True,
                             timeout=120, env=dict(os.environ, MAPSCRIBE_THREADS="1"))
    assert process.returncode == 3, process.stderr
    expected = [t.tile_id for t in _grid(RGB_BYTE, box, 64).tiles]
    assert sorted(r["tile_id"] for r in _features(out)) == expected[:4]

    result = caption_raster(_params(tiny_model_path, RGB_BYTE, out, area=box, resume=True))
    assert result.skipped_existing == 4 and result.remaining == 0
    assert sorted(r["tile_id"] for r in _features(out)) == expected
    with sqlite3.connect(out) as db:
        assert db.execute("SELECT count(*) FROM rtree_captions_geom").fetchone()[0] == len(
            expected)


def test_a_tile_cannot_be_written_twice_and_a_failed_batch_leaves_nothing(tmp_path):
    grid = _grid(RGB_BYTE, WholeRaster(), 256)
    srs = osr.SpatialReference()
    srs.ImportFromEPSG(32618)
    plan = plan_output(tmp_path / "g.gpkg")
    assert plan == OutputPlan((tmp_path / "g.gpkg").resolve(), "captions", "create")
    with open_grid_layer(plan, source_crs_wkt=srs.ExportToWkt(), output_crs=None,
                         grid={"signature": grid.grid_signature}, run={}, model_label="m",
                         description="test") as writer:
        writer.write([TileRecord(grid.tiles[0], "captioned", "a road", -1.0)])
        with pytest.raises(GridWriteError, match="cannot write tile 0"):
            writer.write([TileRecord(grid.tiles[1], "nodata"),
                          TileRecord(grid.tiles[0], "captioned", "again", -1.0)])
        assert writer.tile_ids() == {0}
