"""Rasters, areas and tile parameters (points 7, 11 and 13 of issue 9): planning streams and has
a ceiling, tile sizes and overlaps are bounded and finite, self-intersecting polygons keep their
whole area, and file names that are not UTF-8 get a message."""

from __future__ import annotations

import os

import pytest

from locations import TEST_DATA
from mapscribe.model.geo.areas import PolygonArea
from mapscribe.model.geo.raster_info import RasterInfo
from mapscribe.model.geo.tiling import MAX_TILES, TileGridParams, plan_tiles

RGB_BYTE = TEST_DATA / "RGB.byte.tif"


def _vrt(path, size: int):
    """A few hundred bytes declaring a ``size`` × ``size`` px, 3-band raster (no pixels)."""
    bands = "".join(f'<VRTRasterBand dataType="Byte" band="{b}"/>' for b in (1, 2, 3))
    path.write_text(f'<VRTDataset rasterXSize="{size}" rasterYSize="{size}">'
                    "<SRS>EPSG:32618</SRS><GeoTransform>500000, 1, 0, 4000000, 0, -1"
                    f"</GeoTransform>{bands}</VRTDataset>")
    return path


# -- point 7: a ceiling on the tiles one run plans, and planning that streams ----------------------
def test_a_tiny_vrt_declaring_a_huge_raster_is_refused_quickly(tmp_path, run_limited):
    vrt = _vrt(tmp_path / "huge.vrt", 1_000_000)
    assert vrt.stat().st_size < 400
    result = run_limited(f"""
        import time
        from mapscribe.model.geo.areas import WholeRaster
        from mapscribe.model.geo.errors import TilingError
        from mapscribe.model.geo.raster_info import RasterInfo
        from mapscribe.model.geo.tiling import TileGridParams, plan_tiles
        raster = RasterInfo.from_path({str(vrt)!r})
        cap_here(200)
        started = time.monotonic()
        try:
            plan_tiles(raster, WholeRaster(), TileGridParams(tile_size=224,
                                                             tile_size_unit="pixels"))
        except TilingError as error:
            print("refused in", round(time.monotonic() - started, 1), "s:", error)
    """, limit_mb=4000, timeout=120)
    assert "refused in" in result.stdout, result.stdout + result.stderr
    assert f"more than the {MAX_TILES:,} one run plans" in result.stdout
    assert float(result.stdout.split("refused in ")[1].split(" ")[0]) < 5


def test_planning_a_large_grid_streams(tmp_path, run_limited):
    # 447 × 447 = 199,809 tiles: as objects, well over 100 MB; planned, a few kB.
    vrt = _vrt(tmp_path / "large.vrt", 100_000)
    result = run_limited(f"""
        from mapscribe.model.geo.areas import WholeRaster
        from mapscribe.model.geo.raster_info import RasterInfo
        from mapscribe.model.geo.tiling import TileGridParams, grid_placement, plan_tiles
        raster = RasterInfo.from_path({str(vrt)!r})
        cap_here(40)
        grid = plan_tiles(raster, WholeRaster(), TileGridParams(tile_size=224,
                                                                tile_size_unit="pixels"))
        last = grid.tiles[-1]
        count = sum(1 for _ in grid.tiles)
        placement = grid_placement(grid)
        print(len(grid), count, last.row, last.col, last.tile_id, last.is_edge,
              len(placement["tile_ids"]))
    """, limit_mb=4000, timeout=200)
    assert result.stdout.split() == ["199809", "199809", "446", "446", "199808", "True", "64"], (
        result.stdout + result.stderr)


def test_the_signature_of_a_grid_is_unchanged_by_streaming():
    """Layers written before planning streamed must still resume: same tile_ids digest."""
    import hashlib

    from mapscribe.model.geo.areas import WholeRaster
    from mapscribe.model.geo.tiling import grid_placement

    grid = plan_tiles(RasterInfo.from_path(RGB_BYTE), WholeRaster(),
                      TileGridParams(tile_size=64, tile_size_unit="pixels"))
    joined = ",".join(str(tile.tile_id) for tile in list(grid.tiles))
    assert grid_placement(grid)["tile_ids"] == hashlib.sha256(joined.encode()).hexdigest()


def test_a_tile_far_larger_than_anything_is_refused(run_cli, tiny_model_path, tmp_path):
    result = run_cli("caption", RGB_BYTE, "--model", tiny_model_path, "--out",
                     tmp_path / "grid.gpkg", "--tile-size", "100000", "--tile-size-unit",
                     "pixels", timeout=120)
    assert result.returncode == 1 and "pixels a side MapScribe reads as one tile" in \
        result.stderr


# -- point 13: infinite or absurd numbers are messages ---------------------------------------------
@pytest.mark.parametrize("arguments, message", [
    (["--tile-size", "inf"], "finite"),
    (["--tile-size", "1e308"], "pixels a side"),
    (["--tile-size", "1e308", "--tile-size-unit", "pixels"], "pixels a side"),
    (["--overlap", "inf"], "overlap"),
    (["--overlap", "inf", "--overlap-unit", "pixels"], "finite"),
    (["--overlap", "nan"], "overlap"),
    (["--tile-size", "-0"], "positive"),
])
def test_infinite_tile_sizes_and_overlaps_are_messages(run_cli, tiny_model_path, tmp_path,
                                                       arguments, message):
    result = run_cli("caption", RGB_BYTE, "--model", tiny_model_path, "--out",
                     tmp_path / "grid.gpkg", *arguments, timeout=120)
    assert result.returncode == 1 and message in result.stderr


def test_names_that_are_not_utf8_are_messages(run_cli, tiny_model_path, tmp_path):
    folder = os.fsencode(tmp_path)
    raster = os.fsdecode(folder + b"/sc\xe8ne.tif")
    with open(raster, "wb") as stream:
        stream.write(RGB_BYTE.read_bytes())
    result = run_cli("caption", raster, "--model", tiny_model_path, "--out",
                     tmp_path / "grid.gpkg", timeout=120)
    assert result.returncode == 1 and "not valid UTF-8" in result.stderr
    out = os.fsdecode(folder + b"/gr\xefd.gpkg")
    result = run_cli("caption", RGB_BYTE, "--model", tiny_model_path, "--out", out,
                     timeout=120)
    assert result.returncode == 1 and "not valid UTF-8" in result.stderr
    long_name = tmp_path / ("x" * 300 + ".gpkg")
    result = run_cli("caption", RGB_BYTE, "--model", tiny_model_path, "--out", long_name,
                     timeout=120)
    assert result.returncode == 1 and "name too long" in result.stderr.lower()


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="needs FIFOs")
def test_a_pipe_as_raster_is_refused_without_blocking(run_cli, tiny_model_path, tmp_path):
    fifo = tmp_path / "scene.tif"
    os.mkfifo(fifo)
    result = run_cli("caption", fifo, "--model", tiny_model_path, "--out",
                     tmp_path / "grid.gpkg", timeout=120)
    assert result.returncode == 1 and "a pipe or a device" in result.stderr
    polygons = tmp_path / "fields.geojson"
    os.mkfifo(polygons)
    result = run_cli("caption", RGB_BYTE, "--model", tiny_model_path, "--out",
                     tmp_path / "grid.gpkg", "--polygons", polygons, timeout=120)
    assert result.returncode == 1 and "a pipe or a device" in result.stderr


# -- point 11: a self-intersecting polygon keeps its whole area ------------------------------------
def test_a_bow_tie_polygon_keeps_both_lobes():
    raster = RasterInfo.from_path(RGB_BYTE)
    left, bottom, right, top = raster.bounds
    # Corners crossed: the ring runs bottom-left → top-right → bottom-right → top-left.
    bow_tie = (f"POLYGON (({left} {bottom}, {right} {top}, {right} {bottom}, {left} {top}, "
               f"{left} {bottom}))")
    area = PolygonArea(geometries=(bow_tie,), crs=raster.crs_wkt, source="bow-tie")
    grid = plan_tiles(raster, area, TileGridParams(tile_size=64, tile_size_unit="pixels"))
    columns = {tile.col for tile in grid.tiles}
    assert 0 in columns and grid.cols - 1 in columns  # both lobes, west and east
    whole = plan_tiles(raster, PolygonArea(
        geometries=(f"POLYGON (({left} {bottom}, {right} {bottom}, {right} {top}, {left} "
                    f"{top}, {left} {bottom}))",), crs=raster.crs_wkt, source="box"),
        TileGridParams(tile_size=64, tile_size_unit="pixels"))
    # The two triangles cover half the raster; their tiles more than half of the grid's.
    assert len(grid.tiles) > len(whole.tiles) / 2
