"""Tiling: areas in any CRS → pixel-aligned tile grids over real and generated rasters."""

from __future__ import annotations

import json
import math
import shutil

import numpy as np
import pytest
from affine import Affine
from osgeo import ogr, osr
from rasterio.windows import Window
from rasterio.windows import bounds as window_bounds

from mapscribe.model.geo.areas import BoundingBox, PolygonArea, WholeRaster
from mapscribe.model.geo.errors import TilingError
from mapscribe.model.geo.raster_info import RasterInfo
from mapscribe.model.geo.tiling import TileGridParams, plan_tiles
from mapscribe.model.geo.vector import read_polygon_file
from rasters import NAIP, RGB_BYTE, write_raster


@pytest.fixture(scope="module")
def landsat() -> RasterInfo:
    return RasterInfo.from_path(RGB_BYTE)


def _coverage(grid, width, height):
    """How many tiles cover each raster pixel (pixels past the raster are dropped)."""
    count = np.zeros((height, width), dtype=np.int32)
    for tile in grid.tiles:
        w = tile.window
        count[w.row_off:w.row_off + w.height, w.col_off:w.col_off + w.width] += 1
    return count


def _dense_envelope(bbox, source, target, points=1000):
    """The bbox's envelope in ``target``, from ``points`` points per edge, with OSR (not the
    rasterio path the code under test uses)."""
    src, dst = osr.SpatialReference(), osr.SpatialReference()
    src.SetFromUserInput(source)
    dst.SetFromUserInput(target)
    for srs in (src, dst):
        srs.SetAxisMappingStrategy(osr.OAMS_TRADITIONAL_GIS_ORDER)
    transform = osr.CoordinateTransformation(src, dst)
    minx, miny, maxx, maxy = bbox
    t = np.linspace(0, 1, points)
    xs = np.concatenate([minx + t * (maxx - minx), np.full(points, maxx),
                         maxx - t * (maxx - minx), np.full(points, minx)])
    ys = np.concatenate([np.full(points, miny), miny + t * (maxy - miny),
                         np.full(points, maxy), maxy - t * (maxy - miny)])
    out = np.array(transform.TransformPoints(list(zip(xs.tolist(), ys.tolist()))))
    return out[:, 0].min(), out[:, 1].min(), out[:, 0].max(), out[:, 1].max()


def _expected_pixel_span(envelope, info):
    """Whole pixels of ``info`` touched by ``envelope`` clipped to the raster."""
    t = info.transform
    left, bottom, right, top = info.bounds
    minx, miny = max(envelope[0], left), max(envelope[1], bottom)
    maxx, maxy = min(envelope[2], right), min(envelope[3], top)
    c0, c1 = (minx - t.c) / t.a, (maxx - t.c) / t.a
    r0, r1 = (maxy - t.f) / t.e, (miny - t.f) / t.e
    return math.floor(c0), math.floor(r0), math.ceil(c1), math.ceil(r1)


def _assert_exact_cover(grid, span):
    """Tile (0, 0) starts on the span's first pixel, the tiles cover the span without a gap,
    and every row and column of tiles is needed (its start lies inside the span)."""
    col0, row0, col1, row1 = span
    assert grid.origin == (col0, row0)
    first = grid.tiles[0].window
    assert (first.col_off, first.row_off) == (col0, row0)
    cover = np.zeros((row1 - row0, col1 - col0), dtype=bool)
    for tile in grid.tiles:
        w = tile.window
        cover[max(0, w.row_off - row0):w.row_off + w.height - row0,
              max(0, w.col_off - col0):w.col_off + w.width - col0] = True
    assert cover.all()
    last = grid.tiles[-1].window
    assert col0 <= last.col_off < col1 and row0 <= last.row_off < row1
    assert last.col_off + last.width >= col1 and last.row_off + last.height >= row1


# --- real rasters ---------------------------------------------------------------------------
def test_raster_info_reads_the_header_of_the_real_rasters(landsat):
    assert landsat.crs == "EPSG:32618"
    assert (landsat.width, landsat.height, landsat.count) == (791, 718, 3)
    assert landsat.nodata == 0
    assert landsat.colorinterp == ("red", "green", "blue")
    assert landsat.bounds == pytest.approx((101985.0, 2611485.0, 339315.0, 2826915.0))
    naip = RasterInfo.from_path(NAIP)
    assert naip.crs == "EPSG:26914" and naip.count == 4
    assert naip.has_overviews and naip.overview_factors == (2,)
    assert naip.block_shapes[0] == (512, 512)


def test_whole_raster_is_covered_without_gaps_with_the_overlap_asked(landsat):
    grid = plan_tiles(landsat, WholeRaster(),
                      TileGridParams(tile_size=100, tile_size_unit="pixels", overlap=20))
    assert grid.tile_size == (100, 100) and grid.step == (80, 80) and grid.overlap == (20, 20)
    # 791 px: tiles start at 0, 80, ..., 720 (720 + 100 >= 791); 718 px: 0 ... 640.
    assert (grid.cols, grid.rows) == (10, 9)
    coverage = _coverage(grid, landsat.width, landsat.height)
    assert coverage.min() >= 1
    # Exactly 20 px strips where two tiles meet, 4 where four meet.
    assert coverage[0, 79] == 1 and coverage[0, 80] == 2 and coverage[0, 99] == 2
    assert coverage[0, 100] == 1 and coverage[85, 85] == 4
    by_place = {(t.row, t.col): t for t in grid.tiles}
    for (row, col), tile in by_place.items():
        assert float(tile.window.col_off).is_integer() and float(tile.window.row_off).is_integer()
        right = by_place.get((row, col + 1))
        if right is not None:
            assert tile.window.col_off + tile.window.width - right.window.col_off == 20
            assert tile.bounds[2] - right.bounds[0] == pytest.approx(20 * landsat.transform.a)
        assert tile.tile_id == row * grid.cols + col
        assert tile.is_edge == (tile.window.col_off + 100 > 791 or tile.window.row_off + 100 > 718)
        assert tile.bounds == pytest.approx(window_bounds(tile.window, landsat.transform))
    assert sum(t.is_edge for t in grid.tiles) == 10 + 9 - 1


@pytest.mark.parametrize("crs, bbox", [
    ("EPSG:4326", (-77.6, 23.9, -76.6, 25.0)),
    ("EPSG:3857", (-8_630_000.0, 2_760_000.0, -8_520_000.0, 2_860_000.0)),
])
def test_bounding_box_in_another_crs_gives_the_tiles_over_its_reprojected_envelope(
        landsat, crs, bbox):
    params = TileGridParams(tile_size=50, tile_size_unit="pixels", overlap=10)
    grid = plan_tiles(landsat, BoundingBox(*bbox, crs=crs), params)
    envelope = _dense_envelope(bbox, crs, "EPSG:32618")
    span = _expected_pixel_span(envelope, landsat)
    # The box is inside the raster on at least two sides, so clipping alone does not decide it.
    assert span[0] > 0 and span[1] > 0
    _assert_exact_cover(grid, span)
    assert grid.crs == "EPSG:32618"
    assert grid.area_bounds[0] == pytest.approx(envelope[0], abs=1.0)
    assert grid.area_bounds[3] == pytest.approx(min(envelope[3], landsat.bounds[3]), abs=1.0)


def test_bounding_box_is_reprojected_densified_not_by_its_corners():
    # A box across UTM 18N's central meridian (75° W): its southern edge, a parallel, bows
    # about 0.5 km south of its corners there, so a corners-only reprojection cuts ~10 px off.
    crs = RasterInfo.from_path(RGB_BYTE).crs_wkt
    raster = RasterInfo(path="synthetic", crs="EPSG:32618", crs_wkt=crs,
                        transform=Affine(50.0, 0, 300_000.0, 0, -50.0, 4_700_000.0),
                        width=8000, height=6000, count=3, dtypes=("uint8",) * 3, nodata=None,
                        colorinterp=("red", "green", "blue"), overview_factors=(),
                        mask_flags=(("all_valid",),) * 3, block_shapes=((256, 256),) * 3)
    bbox = (-76.0, 40.0, -74.0, 41.0)
    grid = plan_tiles(raster, BoundingBox(*bbox, crs="EPSG:4326"),
                      TileGridParams(tile_size=64, tile_size_unit="pixels"))
    envelope = _dense_envelope(bbox, "EPSG:4326", "EPSG:32618")
    corners_only = _dense_envelope(bbox, "EPSG:4326", "EPSG:32618", points=2)
    assert corners_only[1] - envelope[1] > 400  # the case this test is about
    assert grid.area_bounds[1] == pytest.approx(envelope[1], abs=1.0)
    _assert_exact_cover(grid, _expected_pixel_span(envelope, raster))


def test_bounding_box_on_pixel_edges_in_the_raster_crs_gives_exactly_those_pixels(landsat):
    t = landsat.transform
    # Columns 100..300 and rows 50..250, given by their exact edges.
    box = BoundingBox(t.c + 100 * t.a, t.f + 250 * t.e, t.c + 300 * t.a, t.f + 50 * t.e,
                      crs="EPSG:32618")
    grid = plan_tiles(landsat, box, TileGridParams(tile_size=100, tile_size_unit="pixels"))
    assert [(w.col_off, w.row_off) for w in (tile.window for tile in grid.tiles)] == [
        (100, 50), (200, 50), (100, 150), (200, 150)]
    assert not any(tile.is_edge for tile in grid.tiles)


def test_area_reaching_past_the_raster_is_clipped_and_edge_tiles_are_flagged(landsat):
    # From the middle of the raster to 50 km past its right and bottom edges.
    left, bottom, right, top = landsat.bounds
    box = BoundingBox((left + right) / 2, bottom - 50_000, right + 50_000, (bottom + top) / 2,
                      crs="EPSG:32618")
    grid = plan_tiles(landsat, box, TileGridParams(tile_size=128, tile_size_unit="pixels"))
    assert grid.area_bounds[2] == pytest.approx(right)
    assert grid.area_bounds[1] == pytest.approx(bottom)
    last = grid.tiles[-1]
    assert last.is_edge
    assert last.window.col_off < 791 < last.window.col_off + 128
    assert last.window.row_off < 718 < last.window.row_off + 128


def test_tile_size_defaults_to_model_input_times_resolution_hint():
    naip = RasterInfo.from_path(NAIP)  # 5 m pixels
    hinted = plan_tiles(naip, WholeRaster(),
                        TileGridParams(model_input_size=224, ground_resolution_hint=2.5))
    assert hinted.tile_size == (112, 112)  # 224 × 2.5 m = 560 m = 112 px of 5 m
    assert hinted.tile_size_map == pytest.approx((560.0, 560.0))
    own = plan_tiles(naip, WholeRaster(), TileGridParams(model_input_size=224))
    assert own.tile_size == (224, 224)
    in_metres = plan_tiles(naip, WholeRaster(), TileGridParams(tile_size=1000))
    assert in_metres.tile_size == (200, 200)


def test_ground_resolution_hint_on_a_geographic_raster_uses_metres_per_degree(tmp_path):
    transform = Affine(1e-4, 0, 10.0, 0, -1e-4, 45.05)  # ~7.9 m × 11 m pixels at 45° N
    path = write_raster(tmp_path / "geographic.tif", np.ones((3, 1000, 1000), np.uint8),
                        crs="EPSG:4326", transform=transform)
    grid = plan_tiles(RasterInfo.from_path(path), WholeRaster(),
                      TileGridParams(model_input_size=100, ground_resolution_hint=1.0))
    latitude = math.radians(45.0)
    expected_x = round(100 / (111_320 * math.cos(latitude) * 1e-4))
    expected_y = round(100 / (110_574 * 1e-4))
    assert grid.tile_size == (expected_x, expected_y) == (13, 9)


# --- polygons -------------------------------------------------------------------------------
def _square(x0, y0, size):
    return [[x0, y0], [x0 + size, y0], [x0 + size, y0 + size], [x0, y0 + size], [x0, y0]]


def test_polygon_area_keeps_only_the_tiles_that_meet_a_polygon(landsat):
    t = landsat.transform
    def map_xy(col, row):  # pixel corner → map coordinates
        return t.c + col * t.a, t.f + row * t.e
    # Two squares of 30 × 30 px (map y grows north, so each spans the 30 rows above its
    # corner): pixels cols 120-150, rows 150-180 and cols 530-560, rows 460-490.
    a = map_xy(120, 180)
    b = map_xy(530, 490)
    size = 30 * t.a
    area = PolygonArea(({"type": "Polygon", "coordinates": [_square(*a, size)]},
                        {"type": "Feature", "properties": {},
                         "geometry": {"type": "Polygon", "coordinates": [_square(*b, size)]}}),
                       crs="EPSG:32618")
    grid = plan_tiles(landsat, area, TileGridParams(tile_size=100, tile_size_unit="pixels"))
    # The grid starts at the polygons' envelope (col 120, row 150), so its 100-px tiles are
    # counted from there: the squares fall in tile (0, 0) and tile (3, 4) (cols 520-620,
    # rows 450-550); the 4 × 5 - 2 others are skipped.
    assert grid.origin == (120, 150)
    assert [(tile.row, tile.col) for tile in grid.tiles] == [(0, 0), (3, 4)]
    assert grid.skipped == grid.rows * grid.cols - 2


def test_polygons_in_wgs84_and_from_a_file_are_reprojected_before_tiles_are_chosen(
        landsat, tmp_path):
    triangle = {"type": "Polygon",
                "coordinates": [[[-77.5, 24.0], [-76.5, 24.0], [-77.0, 25.0], [-77.5, 24.0]]]}
    params = TileGridParams(tile_size=40, tile_size_unit="pixels", overlap=5, overlap_unit="pixels")
    grid = plan_tiles(landsat, PolygonArea((triangle,), crs="EPSG:4326"), params)
    assert 0 < grid.skipped < grid.rows * grid.cols
    # Independently: the triangle's corners in UTM (OSR), joined by straight lines. The code
    # densifies the edges, which curve a little in UTM (well under 1 km here), so a tile must
    # be kept when it meets the triangle shrunk by 1 km, and skipped when it misses the
    # triangle grown by 1 km.
    src, dst = osr.SpatialReference(), osr.SpatialReference()
    src.ImportFromEPSG(4326)
    dst.ImportFromEPSG(32618)
    src.SetAxisMappingStrategy(osr.OAMS_TRADITIONAL_GIS_ORDER)
    dst.SetAxisMappingStrategy(osr.OAMS_TRADITIONAL_GIS_ORDER)
    corners = osr.CoordinateTransformation(src, dst).TransformPoints(
        [tuple(p) for p in triangle["coordinates"][0]])
    utm_triangle = ogr.CreateGeometryFromWkt(
        "POLYGON ((" + ", ".join(f"{x} {y}" for x, y, _ in corners) + "))")
    shrunk, grown = utm_triangle.Buffer(-1000), utm_triangle.Buffer(1000)

    kept = {(tile.row, tile.col) for tile in grid.tiles}
    checked_both_ways = 0
    for row in range(grid.rows):
        for col in range(grid.cols):
            col_off = grid.origin[0] + col * grid.step[0]
            row_off = grid.origin[1] + row * grid.step[1]
            left, bottom, right, top = window_bounds(Window(col_off, row_off, 40, 40),
                                                     landsat.transform)
            box = ogr.CreateGeometryFromWkt(
                f"POLYGON (({left} {bottom}, {right} {bottom}, {right} {top}, {left} {top}, "
                f"{left} {bottom}))")
            if box.Intersects(shrunk):
                assert (row, col) in kept, f"tile {(row, col)} meets the polygon but was skipped"
                checked_both_ways += 1
            if not box.Intersects(grown):
                assert (row, col) not in kept, f"tile {(row, col)} misses the polygon but was kept"
                checked_both_ways += 1
    assert checked_both_ways > 0.9 * grid.rows * grid.cols

    # The same polygon from a GeoJSON file read through OGR gives the same grid.
    path = tmp_path / "area.geojson"
    path.write_text(json.dumps({"type": "FeatureCollection", "features": [
        {"type": "Feature", "properties": {"name": "triangle"}, "geometry": triangle}]}))
    from_file = plan_tiles(landsat, read_polygon_file(path), params)
    assert [t.tile_id for t in from_file.tiles] == [t.tile_id for t in grid.tiles]
    assert from_file.grid_signature == grid.grid_signature


def test_polygon_area_errors_name_the_problem(landsat, tmp_path):
    params = TileGridParams(tile_size=50, tile_size_unit="pixels")
    with pytest.raises(TilingError, match="not a polygon"):
        plan_tiles(landsat, PolygonArea(("POINT (200000 2700000)",), crs="EPSG:32618"), params)
    with pytest.raises(TilingError, match="cannot be read"):
        plan_tiles(landsat, PolygonArea(("POLYGON ((1 2, 3",), crs="EPSG:32618"), params)
    far = {"type": "Polygon", "coordinates": [_square(10.0, 50.0, 1.0)]}  # Germany
    with pytest.raises(TilingError, match="does not overlap"):
        plan_tiles(landsat, PolygonArea((far,), crs="EPSG:4326"), params)
    missing = tmp_path / "nothing.gpkg"
    with pytest.raises(TilingError, match="cannot open polygons file .*nothing.gpkg"):
        read_polygon_file(missing)


# --- signature ------------------------------------------------------------------------------
def test_grid_signature_is_stable_and_changes_with_the_grid(landsat, tmp_path):
    params = TileGridParams(tile_size=64, tile_size_unit="pixels", overlap=10)
    first = plan_tiles(landsat, WholeRaster(), params)
    again = plan_tiles(RasterInfo.from_path(RGB_BYTE), WholeRaster(), params)
    moved = shutil.copy(RGB_BYTE, tmp_path / "moved.tif")
    elsewhere = plan_tiles(RasterInfo.from_path(moved), WholeRaster(), params)
    assert first.grid_signature == again.grid_signature == elsewhere.grid_signature
    assert first.grid_signature.startswith("grid-v1:")
    other_overlap = plan_tiles(landsat, WholeRaster(),
                               TileGridParams(tile_size=64, tile_size_unit="pixels", overlap=20))
    other_area = plan_tiles(landsat, BoundingBox(*landsat.bounds[:2], 250000, 2700000,
                                                 crs="EPSG:32618"), params)
    assert len({first.grid_signature, other_overlap.grid_signature,
                other_area.grid_signature}) == 3


# --- errors ---------------------------------------------------------------------------------
def test_raster_without_crs_is_refused_with_what_to_do(tmp_path):
    path = write_raster(tmp_path / "no_crs.tif", np.ones((3, 64, 64), np.uint8), crs=None)
    info = RasterInfo.from_path(path)
    assert info.crs is None
    with pytest.raises(TilingError, match=r"no_crs\.tif has no CRS.*-a_srs"):
        plan_tiles(info, WholeRaster(), TileGridParams(tile_size=16, tile_size_unit="pixels"))


def test_rotated_geotransform_is_refused(tmp_path):
    angle = math.radians(10)
    rotated = Affine(10 * math.cos(angle), -10 * math.sin(angle), 500000,
                     -10 * math.sin(angle), -10 * math.cos(angle), 4000000)
    path = write_raster(tmp_path / "rotated.tif", np.ones((3, 64, 64), np.uint8),
                        transform=rotated)
    with pytest.raises(TilingError, match=r"rotated\.tif has a rotated or sheared.*gdalwarp"):
        plan_tiles(RasterInfo.from_path(path), WholeRaster(),
                   TileGridParams(tile_size=16, tile_size_unit="pixels"))


def test_area_outside_the_raster_is_refused_naming_both_extents(landsat):
    box = BoundingBox(2.2, 48.8, 2.4, 48.9, crs="EPSG:4326")  # Paris
    with pytest.raises(TilingError, match=r"does not overlap raster .*RGB\.byte\.tif"):
        plan_tiles(landsat, box, TileGridParams())
    # Latitude and longitude swapped: the commonest way to miss.
    swapped = BoundingBox(24.0, -77.5, 25.0, -76.5, crs="EPSG:4326")
    with pytest.raises(TilingError, match="longitude before latitude"):
        plan_tiles(landsat, swapped, TileGridParams())


@pytest.mark.parametrize("kwargs, message", [
    (dict(tile_size=0), "tile size must be positive"),
    (dict(tile_size=-5, tile_size_unit="pixels"), "tile size must be positive"),
    (dict(tile_size=10, tile_size_unit="pixels", overlap=10, overlap_unit="pixels"),
     "not less than the tile size"),
    (dict(tile_size=10, tile_size_unit="pixels", overlap=100), "below 100%"),
    (dict(tile_size=10, tile_size_unit="pixels", overlap=-1), "zero or positive"),
    (dict(tile_size=600), "at least 4 pixels"),  # 600 m on 300 m pixels: 2 px
    (dict(tile_size=3, tile_size_unit="pixels"), "at least 4 pixels"),
    (dict(tile_size_unit="feet"), "tile_size_unit 'feet'"),
    (dict(overlap=2.5, overlap_unit="pixels"), "whole number"),
])
def test_bad_tile_parameters_are_refused(landsat, kwargs, message):
    with pytest.raises(TilingError, match=message):
        plan_tiles(landsat, WholeRaster(), TileGridParams(**kwargs))


def test_unknown_crs_and_empty_box_are_refused(landsat):
    with pytest.raises(TilingError, match="unknown CRS 'EPSG:999999'"):
        plan_tiles(landsat, BoundingBox(0, 0, 1, 1, crs="EPSG:999999"), TileGridParams())
    with pytest.raises(TilingError, match="unknown CRS 'not a crs'"):
        plan_tiles(landsat, PolygonArea(("POLYGON ((0 0, 1 0, 1 1, 0 0))",), crs="not a crs"),
                   TileGridParams())
    with pytest.raises(TilingError, match="empty or inverted"):
        plan_tiles(landsat, BoundingBox(5, 0, 1, 1, crs="EPSG:32618"), TileGridParams())


def test_missing_raster_is_a_clear_error(tmp_path):
    with pytest.raises(TilingError, match=r"cannot open raster .*absent\.tif"):
        RasterInfo.from_path(tmp_path / "absent.tif")


def test_south_up_rasters_are_refused_with_advice(tmp_path):
    path = write_raster(tmp_path / "south_up.tif", np.zeros((3, 64, 64), np.uint8),
                        transform=Affine(10, 0, 500000, 0, 10, 4000000))
    params = TileGridParams(tile_size=16, tile_size_unit="pixels")
    with pytest.raises(TilingError, match="south-up .*gdalwarp"):
        plan_tiles(RasterInfo.from_path(path), WholeRaster(), params)
