"""The caption pyramid (geo.pyramid): levels planned over the detail grid, their windows and
ids, and real runs of caption_raster that write, cancel and resume every level.

Runs use the tiny session model, beam 1 and 64-px tiles of RGB.byte.tif (a 12 × 13 grid).
"""

from __future__ import annotations

import sqlite3

import numpy as np
import pytest
import rasterio
from osgeo import ogr
from rasterio.transform import from_origin

from mapscribe.model.geo.areas import PolygonArea, WholeRaster
from mapscribe.model.geo.errors import TilingError
from mapscribe.model.geo.pyramid import (
    LEVELS_AUTO,
    MAX_COARSENING,
    PyramidLayout,
    choose_levels,
    level_counts,
    parse_levels,
    with_levels,
)
from mapscribe.model.geo.raster_info import RasterInfo
from mapscribe.model.geo.read_plan import ReadParams, prepare_reading
from mapscribe.model.geo.reader import read_tile
from mapscribe.model.geo.tiling import TileGridParams, grid_signature, plan_tiles
from mapscribe.model.jobs.caption import caption_raster
from mapscribe.model.jobs.caption_params import CaptioningError, CaptionRasterParams
from mapscribe.model.output.geopackage import read_caption_layer_info
from rasters import RGB_BYTE, write_raster


def _grid(path, tile=64, area=None, overlap=0):
    return plan_tiles(RasterInfo.from_path(path), area or WholeRaster(),
                      TileGridParams(tile_size=tile, tile_size_unit="pixels", overlap=overlap,
                                     overlap_unit="pixels"))


def _contains(outer, inner):
    return (outer[0] <= inner[0] + 1e-6 and outer[1] <= inner[1] + 1e-6
            and outer[2] >= inner[2] - 1e-6 and outer[3] >= inner[3] - 1e-6)


# -- geometry ---------------------------------------------------------------------------------
def test_levels_cover_the_detail_grid_two_by_two_up_to_one_tile():
    grid = _grid(RGB_BYTE)                      # 12 rows × 13 cols of 64 px
    assert (grid.rows, grid.cols) == (12, 13)
    pyramid = with_levels(grid, 5)
    layout = pyramid.tiles.layout
    assert isinstance(layout, PyramidLayout)
    assert layout.shapes == ((1, 1), (2, 2), (3, 4), (6, 7), (12, 13))
    assert level_counts(pyramid) == [1, 4, 12, 42, 156]
    tiles = list(pyramid.tiles)
    ids = [tile.tile_id for tile in tiles]
    assert len(set(ids)) == len(ids) == 215
    # Reading order: the coarsest first; the detail tiles keep the ids of a one-level grid.
    assert [tile.level for tile in tiles] == sorted(tile.level for tile in tiles)
    detail = [tile for tile in tiles if tile.level == 4]
    assert [(t.tile_id, t.window) for t in detail] == [(t.tile_id, t.window) for t in grid.tiles]
    by_id = {tile.tile_id: tile for tile in tiles}
    for tile in tiles:
        if tile.level == 0:
            assert tile.parent_id is None
            continue
        parent = by_id[tile.parent_id]
        assert parent.level == tile.level - 1
        assert (parent.row, parent.col) == (tile.row // 2, tile.col // 2)
        assert _contains(parent.bounds, tile.bounds)
    # A coarse window is its children's union, square, 2^k detail tiles a side.
    top = by_id[layout.tile_id(0, 0, 0)]
    first = grid.tiles[0].window
    assert (top.window.col_off, top.window.row_off) == (first.col_off, first.row_off)
    assert (top.window.width, top.window.height) == (16 * 64, 16 * 64)
    assert top.is_edge  # 16 tiles of 64 px reach past the 791 × 718 raster


def test_overlapping_tiles_give_windows_that_are_the_union_of_their_children():
    grid = _grid(RGB_BYTE, tile=64, overlap=16)   # step 48
    layout = with_levels(grid, 3).tiles.layout
    assert layout.window_size(1) == (48 + 64, 48 + 64)
    assert layout.window_size(0) == (3 * 48 + 64, 3 * 48 + 64)
    children = [layout.tile(layout.tile_id(1, r, c)) for r in (0, 1) for c in (0, 1)]
    parent = layout.tile(layout.tile_id(0, 0, 0))
    assert parent.bounds[0] == min(child.bounds[0] for child in children)
    assert parent.bounds[3] == max(child.bounds[3] for child in children)


def test_one_level_leaves_the_grid_and_its_signature_as_before():
    grid = _grid(RGB_BYTE)
    assert with_levels(grid, 1) is grid
    pyramid = with_levels(grid, 3)
    assert pyramid.grid_signature == grid_signature(pyramid) != grid.grid_signature


def test_a_polygon_area_keeps_the_coarse_tiles_over_its_tiles(tmp_path):
    grid = _grid(RGB_BYTE)
    left, bottom, right, top = grid.tiles[0].bounds
    ring = ogr.CreateGeometryFromWkt(  # inside tile (0, 0) and tile (5, 6) only
        f"MULTIPOLYGON((({left + 10} {top - 10},{left + 20} {top - 10},{left + 20} {top - 20},"
        f"{left + 10} {top - 10})))")
    far = grid.tiles[5 * 13 + 6].bounds
    ring2 = ogr.CreateGeometryFromWkt(
        f"POLYGON(({far[0] + 10} {far[3] - 10},{far[0] + 20} {far[3] - 10},"
        f"{far[0] + 20} {far[3] - 20},{far[0] + 10} {far[3] - 10}))")
    area = PolygonArea(geometries=(ring.ExportToWkt(), ring2.ExportToWkt()),
                       crs=RasterInfo.from_path(RGB_BYTE).crs_wkt, source="two specks")
    small = _grid(RGB_BYTE, area=area)        # the polygons' envelope: 6 rows × 7 cols
    kept = [divmod(tile_id, small.cols) for tile_id in small.tiles.tile_ids()]
    assert (small.rows, small.cols, kept) == (6, 7, [(0, 0), (5, 6)])
    tiles = list(with_levels(small, 3).tiles)
    assert [(t.level, t.row, t.col) for t in tiles] == [
        (0, 0, 0), (0, 1, 1), (1, 0, 0), (1, 2, 3), (2, 0, 0), (2, 5, 6)]
    by_id = {tile.tile_id: tile for tile in tiles}
    assert all(tile.parent_id in by_id for tile in tiles if tile.level)


def test_coarse_tiles_show_the_whole_of_their_children(tmp_path):
    """Level 0 of a 2 × 2 grid is one tile: its pixels are the four quadrants, shrunk."""
    data = np.zeros((3, 128, 128), np.uint8)
    data[0, :64, :64] = 200   # red north-west
    data[1, :64, 64:] = 200   # green north-east
    data[2, 64:, :64] = 200   # blue south-west
    data[:, 64:, 64:] = 90    # grey south-east
    path = write_raster(tmp_path / "quads.tif", data, transform=from_origin(0, 128, 1, 1))
    pyramid = with_levels(_grid(path), 2)
    top = pyramid.tiles[0]
    assert top.level == 0 and top.window.width == 128
    params = ReadParams(output_size=32)
    with rasterio.open(path) as dataset:
        pixels, valid = read_tile(dataset, top, prepare_reading(path, params), params)
    assert valid == 1.0
    assert pixels[:, 8, 8].tolist() == [200, 0, 0]
    assert pixels[:, 8, 24].tolist() == [0, 200, 0]
    assert pixels[:, 24, 8].tolist() == [0, 0, 200]
    assert pixels[:, 24, 24].tolist() == [90, 90, 90]


# -- how many levels ----------------------------------------------------------------------------
def test_auto_stops_where_the_model_would_see_the_ground_too_coarse():
    grid = _grid(RGB_BYTE)  # 64 px of 300 m: the tiny model (0.3 m, 224 px) sees it 286× coarser
    assert choose_levels(grid, LEVELS_AUTO, 224, 0.3).levels == 1
    # A model trained at 100 m sees the detail tiles at 64 × 300 / 224 = 86 m: 8× is 686 m.
    plan = choose_levels(grid, LEVELS_AUTO, 224, 100.0)
    assert plan.levels == 4  # 86, 171, 343, 686 m per model pixel; 1,371 would be > 8×
    assert f"more than {MAX_COARSENING:g}× coarser" in plan.reason and plan.notes == ()
    assert plan.reason.startswith("up to tiles of about 154 km")
    # No training resolution in the model: up to one tile over the whole area.
    assert choose_levels(grid, LEVELS_AUTO, 224, None).levels == 5
    assert choose_levels(grid, LEVELS_AUTO, 224, None).reason == ""


def test_a_number_of_levels_is_kept_within_one_tile_and_said_when_unreadable():
    grid = _grid(RGB_BYTE)
    plan = choose_levels(grid, 9, 224, None)
    assert plan.levels == 5
    assert any("rather than the 9 asked for" in note and "one tile covers the whole area" in note
               for note in plan.notes)
    plan = choose_levels(grid, 3, 224, 100.0)
    assert plan.levels == 3 and plan.notes == ()
    plan = choose_levels(grid, 2, 224, 0.3)
    assert plan.levels == 2
    assert any("likely unreliable" in note for note in plan.notes)


@pytest.mark.parametrize("value, expected", [("auto", "auto"), (" AUTO ", "auto"), (None, "auto"),
                                             ("3", 3), (1, 1)])
def test_levels_are_parsed(value, expected):
    assert parse_levels(value) == expected


@pytest.mark.parametrize("value", ["0", "-2", "many", "2.5"])
def test_bad_levels_are_refused_with_what_to_give(value):
    with pytest.raises(TilingError, match="--levels|at least 1"):
        parse_levels(value)
    with pytest.raises(CaptioningError, match="levels"):
        CaptionRasterParams(raster=RGB_BYTE, model="m.mscap", output="o.gpkg", levels=value)


# -- real runs ------------------------------------------------------------------------------------
def _params(model, out, **overrides):
    values = dict(raster=RGB_BYTE, model=model, output=out, tile_size=64,
                  tile_size_unit="pixels", batch_size=8, beam_size=1, max_length=12,
                  device="cpu", runtime="torch", levels=3)
    values.update(overrides)
    return CaptionRasterParams(**values)


def _rows(path):
    with sqlite3.connect(path) as db:
        return db.execute("SELECT tile_id, level, parent_id, row, col, status, caption FROM "
                          "captions ORDER BY tile_id").fetchall()


def _check_pyramid(path, counts):
    rows = _rows(path)
    assert [sum(1 for row in rows if row[1] == level) for level in range(len(counts))] == counts
    assert len({row[0] for row in rows}) == len(rows)
    by_id = {row[0]: row for row in rows}
    for _tile_id, level, parent, row, col, *_ in rows:
        if level == 0:
            assert parent is None
        else:
            assert by_id[parent][1:2] == (level - 1,)
            assert by_id[parent][3:5] == (row // 2, col // 2)
    dataset = ogr.Open(str(path))
    layer = dataset.GetLayerByName("captions")
    envelopes = {f.GetField("tile_id"): f.GetGeometryRef().GetEnvelope() for f in layer}
    dataset = None
    for tile_id, _level, parent, *_ in rows:
        if parent is not None:
            outer, inner = envelopes[parent], envelopes[tile_id]
            assert outer[0] <= inner[0] + 1e-6 and outer[1] >= inner[1] - 1e-6
    return rows


def test_a_run_captions_every_level_into_one_layer(tiny_model_path, tmp_path):
    out = tmp_path / "grid.gpkg"
    result = caption_raster(_params(tiny_model_path, out))
    assert result.level_tiles == [12, 42, 156]
    assert result.tiles_total == 210 and result.processed == 210
    rows = _check_pyramid(out, [12, 42, 156])
    # The coarse levels are captioned too (not all nodata): RGB.byte is half nodata.
    assert any(row[6] for row in rows if row[1] == 0)
    info = read_caption_layer_info(out, "captions")
    assert info.grid["levels"] == 3 and info.grid["level_tiles"] == [12, 42, 156]
    assert info.run["tiling"]["levels"] == 3


def test_cancel_and_resume_finish_every_level_without_a_tile_twice(tiny_model_path, tmp_path):
    out = tmp_path / "grid.gpkg"
    batches = []

    def cancel_after_two_batches():  # asked once before the model loads, then after each batch
        batches.append(1)
        return len(batches) >= 3

    first = caption_raster(_params(tiny_model_path, out), cancelled=cancel_after_two_batches)
    assert first.stopped == "cancelled" and first.processed == 16
    # Coarsest first: what a cancelled run kept is the overview.
    assert {row[1] for row in _rows(out)} == {0, 1}
    resumed = caption_raster(_params(tiny_model_path, out, resume=True))
    assert resumed.stopped == "completed"
    assert resumed.skipped_existing == 16 and resumed.processed == 210 - 16
    _check_pyramid(out, [12, 42, 156])


def test_resume_with_other_levels_says_which_levels_the_file_holds(tiny_model_path, tmp_path):
    out = tmp_path / "grid.gpkg"
    caption_raster(_params(tiny_model_path, out), cancelled=lambda: True)
    with pytest.raises(CaptioningError, match=r"levels \(--levels\): 3 in the file, 2 now"):
        caption_raster(_params(tiny_model_path, out, levels=2, resume=True))
    with pytest.raises(CaptioningError, match=r"levels \(--levels\): 3 in the file, 1 now"):
        caption_raster(_params(tiny_model_path, out, levels=1, resume=True))
