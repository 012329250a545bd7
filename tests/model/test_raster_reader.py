"""Reading tiles: bands, masks, nodata, the one stretch per raster, and the read-ahead thread."""

from __future__ import annotations

import logging
import time

import numpy as np
import pytest
import rasterio
from rasterio.enums import ColorInterp
from rasterio.windows import Window

from mapscribe.model.geo import read_plan as raster_reader
from mapscribe.model.geo.areas import WholeRaster
from mapscribe.model.geo.errors import RasterReadError, TileReadError
from mapscribe.model.geo.raster_info import RasterInfo
from mapscribe.model.geo.read_plan import BandMapping, ReadParams, prepare_reading
from mapscribe.model.geo.reader import TileReader, read_tile
from mapscribe.model.geo.tiling import TileGridParams, TileWindow, plan_tiles
from rasters import NAIP, RGB_BYTE, write_raster


def _grid(path, tile_pixels, overlap=0.0):
    return plan_tiles(RasterInfo.from_path(path), WholeRaster(),
                      TileGridParams(tile_size=tile_pixels, tile_size_unit="pixels",
                                     overlap=overlap))


def _read_all(path, tiles, params):
    with TileReader(path, tiles, params) as reader:
        batches = list(reader)
    tiles_out = [t for b in batches for t in b.tiles]
    pixels = np.concatenate([b.pixels for b in batches])
    valid = np.concatenate([b.valid_fraction for b in batches])
    nodata = np.concatenate([b.is_nodata for b in batches])
    return reader, batches, tiles_out, pixels, valid, nodata


def _tile(col_off, row_off, size, width, height, tile_id=0):
    window = Window(col_off, row_off, size, size)
    return TileWindow(row=0, col=0, tile_id=tile_id, window=window, bounds=(0, 0, 1, 1),
                      is_edge=col_off + size > width or row_off + size > height)


# --- real rasters, 8 bit --------------------------------------------------------------------
def test_8bit_tiles_at_native_size_are_the_raster_values_with_nodata_zeroed():
    grid = _grid(RGB_BYTE, 128)
    params = ReadParams(output_size=128, batch_size=5)
    reader, batches, tiles, pixels, valid, nodata = _read_all(RGB_BYTE, grid.tiles, params)
    assert reader.plan.passthrough and reader.stretch is None
    assert [t.tile_id for t in tiles] == [t.tile_id for t in grid.tiles]
    assert pixels.shape == (len(grid.tiles), 3, 128, 128) and pixels.dtype == np.uint8
    assert [len(b.tiles) for b in batches] == [5] * 8 + [2]  # 7 × 6 tiles in batches of 5
    with rasterio.open(RGB_BYTE) as dataset:
        for tile, tile_pixels, fraction in zip(tiles, pixels, valid):
            expected = dataset.read(window=tile.window, boundless=True, fill_value=0)
            assert np.array_equal(tile_pixels, expected)
            inside = dataset.read_masks(window=tile.window, boundless=True).any(axis=0)
            assert fraction == pytest.approx(inside.mean())
    # The Landsat scene is a tilted rectangle in a nodata frame: its corner tiles are mostly
    # nodata and flagged, its middle tiles are not.
    by_place = {(t.row, t.col): (f, n) for t, f, n in zip(tiles, valid, nodata)}
    assert by_place[(0, 0)][1] and by_place[(5, 5)][1]
    assert not by_place[(2, 2)][1] and by_place[(2, 2)][0] > 0.99
    assert np.array_equal(nodata, valid < 0.5)


def test_nodata_threshold_is_configurable():
    grid = _grid(RGB_BYTE, 128)
    strict = _read_all(RGB_BYTE, grid.tiles, ReadParams(output_size=32, max_invalid_fraction=0.0))
    lenient = _read_all(RGB_BYTE, grid.tiles, ReadParams(output_size=32, max_invalid_fraction=0.95))
    assert np.array_equal(strict[5], strict[4] < 1.0)
    assert np.array_equal(lenient[5], lenient[4] < 0.05)
    assert strict[5].sum() > lenient[5].sum() > 0


def test_naip_reads_bands_1_2_3_of_4_and_decimates_from_its_overview():
    naip = RasterInfo.from_path(NAIP)
    grid = plan_tiles(naip, WholeRaster(), TileGridParams(tile_size=200, tile_size_unit="pixels"))
    middle = next(t for t in grid.tiles if not t.is_edge and t.row == 1 and t.col == 1)
    native = ReadParams(output_size=200)
    plan = prepare_reading(NAIP, native)
    assert plan.read_bands == (1, 2, 3) and plan.passthrough
    halved = ReadParams(output_size=100, resampling="nearest")
    with rasterio.open(NAIP) as dataset:
        pixels, fraction = read_tile(dataset, middle, plan, native)
        assert np.array_equal(pixels, dataset.read([1, 2, 3], window=middle.window))
        assert fraction == 1.0
        small, _ = read_tile(dataset, middle, plan, halved)
    # The NAIP file has a 2× overview: GDAL answers a 2× decimated read from it, pixel for pixel
    # (a nearest read of the full resolution would take other pixels: full[1, 1] for [0, 0]).
    w = middle.window
    with rasterio.open(NAIP, overview_level=0) as overview:
        from_overview = overview.read([1, 2, 3], window=Window(w.col_off // 2, w.row_off // 2,
                                                               100, 100))
    assert np.array_equal(small, from_overview)


def test_band_out_of_range_names_the_raster_and_its_band_count():
    with pytest.raises(RasterReadError, match=r"band 5 does not exist in .*RGB\.byte\.tif: it "
                                              r"has 3 bands"):
        prepare_reading(RGB_BYTE, ReadParams(bands=BandMapping((1, 2, 5))))
    with pytest.raises(RasterReadError, match="three band numbers"):
        BandMapping((1, 2))
    with pytest.raises(RasterReadError, match="not band numbers"):
        BandMapping.parse("red,green,blue")
    assert BandMapping.parse("4, 3, 2").bands == (4, 3, 2)


def test_chosen_bands_go_to_r_g_b_in_the_order_given():
    params = ReadParams(output_size=64, bands=BandMapping.parse("3,2,1"))
    grid = _grid(RGB_BYTE, 64)
    tile = next(t for t in grid.tiles if not t.is_edge and t.row == 5 and t.col == 5)
    with rasterio.open(RGB_BYTE) as dataset:
        pixels, _ = read_tile(dataset, tile, prepare_reading(RGB_BYTE, params), params)
        expected = dataset.read([3, 2, 1], window=tile.window)
    assert np.array_equal(pixels, expected)


# --- generated edge cases -------------------------------------------------------------------
def test_single_band_is_replicated_to_gray_with_a_warning(tmp_path, caplog):
    data = np.arange(64 * 64, dtype=np.uint32).reshape(64, 64) % 251
    path = write_raster(tmp_path / "gray.tif", data.astype(np.uint8))
    with caplog.at_level(logging.WARNING, logger="mapscribe.model.geo"):
        plan = prepare_reading(path, ReadParams(output_size=64))
    assert plan.gray and plan.read_bands == (1,)
    assert any("gray" in note for note in plan.notes)
    assert any("gray" in record.getMessage() and "gray.tif" in record.getMessage()
               for record in caplog.records)
    *_, pixels, valid, _ = _read_all(path, _grid(path, 64).tiles, ReadParams(output_size=64))
    assert np.array_equal(pixels[0, 0], data) and np.array_equal(pixels[0, 1], data)
    assert np.array_equal(pixels[0, 2], data) and valid[0] == 1.0


def test_rgba_alpha_masks_pixels_and_is_not_a_colour(tmp_path):
    rgba = np.full((4, 100, 100), 200, dtype=np.uint8)
    rgba[0], rgba[1], rgba[2] = 10, 20, 30
    rgba[3] = 255
    rgba[3, :70] = 0  # the top 70 rows are transparent
    path = write_raster(tmp_path / "rgba.tif", rgba, colorinterp=[
        ColorInterp.red, ColorInterp.green, ColorInterp.blue, ColorInterp.alpha])
    plan = prepare_reading(path, ReadParams(output_size=100))
    assert plan.read_bands == (1, 2, 3) and plan.alpha_band == 4
    *_, pixels, valid, nodata = _read_all(path, _grid(path, 100).tiles,
                                          ReadParams(output_size=100))
    assert valid[0] == pytest.approx(0.3) and nodata[0]
    assert (pixels[0, :, :70] == 0).all()
    assert (pixels[0, 0, 70:] == 10).all() and (pixels[0, 2, 70:] == 30).all()


def test_two_band_gray_alpha_reads_gray_masked_by_alpha(tmp_path):
    data = np.stack([np.full((50, 50), 90, np.uint8), np.full((50, 50), 255, np.uint8)])
    data[1, :, :10] = 0
    path = write_raster(tmp_path / "gray_alpha.tif", data,
                        colorinterp=[ColorInterp.gray, ColorInterp.alpha])
    *_, pixels, valid, _ = _read_all(path, _grid(path, 50).tiles, ReadParams(output_size=50))
    assert valid[0] == pytest.approx(0.8)
    assert (pixels[0][:, :, 10:] == 90).all() and (pixels[0][:, :, :10] == 0).all()


def test_internal_mask_marks_pixels_invalid(tmp_path):
    path = tmp_path / "masked.tif"
    with rasterio.Env(GDAL_TIFF_INTERNAL_MASK=True):
        write_raster(path, np.full((3, 64, 64), 120, np.uint8))
        with rasterio.open(path, "r+") as dataset:
            mask = np.full((64, 64), 255, np.uint8)
            mask[:, :16] = 0
            dataset.write_mask(mask)
    assert RasterInfo.from_path(path).has_internal_mask
    assert not (tmp_path / "masked.tif.msk").exists()
    *_, pixels, valid, nodata = _read_all(path, _grid(path, 64).tiles, ReadParams(output_size=64))
    assert valid[0] == 0.75 and not nodata[0]
    assert (pixels[0][:, :, :16] == 0).all() and (pixels[0][:, :, 16:] == 120).all()


def test_16bit_is_stretched_once_per_raster_not_per_tile(tmp_path):
    rng = np.random.default_rng(1)
    data = np.zeros((3, 128, 256), dtype=np.uint16)
    data[:, :, :128] = rng.integers(100, 200, size=(3, 128, 128))  # a dark west half
    data[:, :, 128:] = rng.integers(10_000, 20_000, size=(3, 128, 128))  # a bright east half
    data[:, :8, :] = 0  # a nodata strip, left out of the stretch
    path = write_raster(tmp_path / "uint16.tif", data, nodata=0)
    params = ReadParams(output_size=128, batch_size=1, stretch_percentiles=(2, 98))
    reader, batches, tiles, pixels, valid, _ = _read_all(path, _grid(path, 128).tiles, params)
    stretch = reader.stretch
    assert len(batches) == 2 and all(batch.stretch is stretch for batch in batches)
    # The stretch is the raster's own percentiles over its valid pixels (a small raster is
    # sampled whole).
    for index in range(3):
        values = data[index][data[index] > 0]
        assert stretch.low[index] == pytest.approx(np.percentile(values, 2))
        assert stretch.high[index] == pytest.approx(np.percentile(values, 98))
    assert stretch.sample.startswith("full read") and stretch.sample_pixels == 120 * 256
    # A per-tile stretch would spread the dark half over 0..255; the raster's keeps it dark.
    west, east = pixels[0], pixels[1]
    assert west.max() <= 2 and east[:, 8:].mean() > 100
    expected_east = np.clip(np.rint((data[:, :, 128:].astype(np.float32)
                                     - np.array(stretch.low, np.float32)[:, None, None])
                                    * (255 / (np.array(stretch.high, np.float32)
                                              - np.array(stretch.low, np.float32))[:, None, None]),
                                    ), 0, 255)
    assert np.array_equal(east[:, 8:], expected_east[:, 8:].astype(np.uint8))
    assert (east[:, :8] == 0).all() and valid[1] == pytest.approx(120 / 128)
    assert stretch.to_dict()["percentiles"] == [2, 98]


def test_float32_with_nan_masks_nan_and_flags_mostly_nan_tiles(tmp_path):
    data = np.linspace(-1.0, 1.0, 3 * 64 * 128, dtype=np.float32).reshape(3, 64, 128)
    data[:, :, 64:] = np.nan  # the east tile is all NaN
    data[:, :16, :64] = np.nan  # a quarter of the west tile is NaN
    path = write_raster(tmp_path / "float.tif", data)  # no nodata declared: NaN alone
    params = ReadParams(output_size=64)
    reader, _, _, pixels, valid, nodata = _read_all(path, _grid(path, 64).tiles, params)
    assert np.isfinite(reader.stretch.low).all() and np.isfinite(reader.stretch.high).all()
    assert valid.tolist() == [0.75, 0.0] and nodata.tolist() == [False, True]
    assert (pixels[0][:, :16] == 0).all() and (pixels[1] == 0).all()
    assert pixels[0][:, 16:].max() == 255  # the stretch's high end is reached


def test_edge_tiles_are_read_boundless_with_fill_and_counted_invalid(tmp_path):
    # No nodata declared and every pixel 200: only the part past the raster may be invalid.
    path = write_raster(tmp_path / "plain.tif", np.full((3, 100, 150), 200, np.uint8))
    grid = _grid(path, 80)
    assert (grid.cols, grid.rows) == (2, 2)
    *_, tiles, pixels, valid, nodata = _read_all(path, grid.tiles, ReadParams(output_size=80))
    by_place = {(t.row, t.col): (t, p, v, n) for t, p, v, n in zip(tiles, pixels, valid, nodata)}
    tile, p, v, n = by_place[(0, 1)]  # cols 80..160 of 150: 70 inside, 10 outside
    assert tile.is_edge and v == pytest.approx(70 / 80) and not n
    assert (p[:, :, :70] == 200).all() and (p[:, :, 70:] == 0).all()
    tile, p, v, n = by_place[(1, 1)]  # rows 80..160 of 100 and cols 80..160 of 150
    assert v == pytest.approx(20 * 70 / 80 ** 2) and n
    assert (p[:, :20, :70] == 200).all() and p[:, 20:].max() == 0
    assert not by_place[(0, 0)][0].is_edge and by_place[(0, 0)][2] == 1.0


def test_stretch_of_a_large_raster_without_overviews_uses_a_window_sample(tmp_path, monkeypatch):
    rng = np.random.default_rng(2)
    data = rng.integers(0, 4000, size=(3, 600, 600)).astype(np.uint16)
    path = write_raster(tmp_path / "large.tif", data)
    # Make 600 × 600 count as large, instead of writing a 16-million-pixel file.
    monkeypatch.setattr(raster_reader, "STRETCH_FULL_DECIMATION_LIMIT", 100_000)
    stretch = prepare_reading(path, ReadParams()).stretch
    assert stretch.sample.startswith("64 windows of 128x128")
    # Windows are clipped at the raster's edges (and overlap on so small a raster).
    assert 0.9 * 64 * 128 * 128 < stretch.sample_pixels <= 64 * 128 * 128
    # Uniform values: a sample's 2nd/98th percentiles are within 2% of the whole raster's.
    assert stretch.low[0] == pytest.approx(np.percentile(data[0], 2), abs=80)
    assert stretch.high[0] == pytest.approx(np.percentile(data[0], 98), abs=80)


def test_overviews_are_used_for_the_stretch_and_for_decimated_tiles(tmp_path):
    # Overviews built from values near 1,000; then the full-resolution pixels are rewritten to
    # near 30,000. Whatever reads 1,000s came from an overview.
    rng = np.random.default_rng(3)
    low = rng.integers(900, 1100, size=(3, 2048, 2048)).astype(np.uint16)
    path = write_raster(tmp_path / "ovr.tif", low, tiled=True, compress="deflate",
                        overviews=[2, 4, 8])
    with rasterio.open(path, "r+") as dataset:
        dataset.write(low + 29_000)
    stretch = prepare_reading(path, ReadParams()).stretch
    assert "decimated read 1024x1024" in stretch.sample and "overviews" in stretch.sample
    assert 850 < stretch.low[0] < stretch.high[0] < 1150
    params = ReadParams(output_size=64, resampling="nearest")
    plan = prepare_reading(path, params)
    with rasterio.open(path) as dataset:
        decimated, _ = read_tile(dataset, _tile(0, 0, 1024, 2048, 2048), plan, params)
        native, _ = read_tile(dataset, _tile(0, 0, 64, 2048, 2048), plan, params)
    assert 0 < decimated.mean() < 255  # overview values, inside the stretch
    assert (native == 255).all()  # full-resolution values, far above it


# --- the reader thread ----------------------------------------------------------------------
def test_reader_stops_when_the_consumer_leaves_early_and_stays_bounded():
    grid = _grid(RGB_BYTE, 16)  # 50 × 45 tiles
    params = ReadParams(output_size=16, batch_size=4, queue_depth=2)
    reader = TileReader(RGB_BYTE, grid.tiles, params)
    for _batch in reader:
        time.sleep(0.2)  # the thread fills the queue meanwhile, then waits
        break
    assert not reader.is_alive
    # At most: the batch consumed, the queue full, and the batch that was waiting to enter it.
    assert 4 <= reader.tiles_read <= (1 + 2 + 1) * 4 < len(grid.tiles)

    with TileReader(RGB_BYTE, grid.tiles, params) as second:
        iterator = iter(second)
        next(iterator)
    assert not second.is_alive
    with pytest.raises(RuntimeError, match="once"):
        next(iter(second))


def test_gdal_block_cache_is_bounded_while_reading_and_restored_after():
    from osgeo import gdal

    before = gdal.GetCacheMax()
    params = ReadParams(output_size=16, batch_size=2, gdal_cache_mb=32)
    seen = []
    with TileReader(RGB_BYTE, _grid(RGB_BYTE, 128).tiles, params) as reader:
        for _ in reader:
            seen.append(gdal.GetCacheMax())
    # 21 batches through a queue of 2: the thread is still reading when the first arrives (at the
    # end it may have finished and restored the cache before the last ones are consumed).
    assert seen[0] == 32 * 1024 * 1024 != before
    assert gdal.GetCacheMax() == before


def test_reader_error_reaches_the_consumer_naming_file_and_tile(tmp_path):
    data = np.random.default_rng(4).integers(0, 255, size=(3, 512, 512)).astype(np.uint8)
    path = write_raster(tmp_path / "broken.tif", data, tiled=True, compress="deflate")
    with rasterio.open(path) as dataset:
        offset = int(dataset.get_tag_item("BLOCK_OFFSET_1_1", "TIFF", bidx=1))
    with open(path, "r+b") as stream:  # garble the compressed bytes of the last 256-px block
        stream.seek(offset)
        stream.write(b"\xff" * 2000)
    grid = _grid(path, 256)
    # Nearest: other resamplings read a margin around the window, which would reach the broken
    # block from its neighbours too.
    params = ReadParams(output_size=32, batch_size=1, queue_depth=1, resampling="nearest")
    received = []
    with TileReader(path, grid.tiles, params) as reader:
        with pytest.raises(TileReadError, match=r"reading tile 3 \(row 1, col 1, .*broken\.tif "
                                                r"failed") as caught:
            for batch in reader:
                received.extend(t.tile_id for t in batch.tiles)
    assert received == [0, 1, 2]  # the good tiles before it arrived
    assert caught.value.tile.tile_id == 3 and caught.value.path == str(path)
    assert isinstance(caught.value.__cause__, rasterio.errors.RasterioIOError)
    assert not reader.is_alive


def test_reader_error_when_the_raster_vanishes_before_reading(tmp_path):
    path = write_raster(tmp_path / "gone.tif", np.ones((3, 64, 64), np.uint8))
    reader = TileReader(path, _grid(path, 32).tiles, ReadParams(output_size=32))
    path.unlink()
    with pytest.raises(TileReadError, match=r"opening .*gone\.tif for reading failed"):
        list(reader)
    assert not reader.is_alive


@pytest.mark.parametrize("kwargs, message", [
    (dict(output_size=0), "output_size"),
    (dict(resampling="blurry"), "resampling 'blurry'"),
    (dict(max_invalid_fraction=1.0), "max_invalid_fraction"),
    (dict(stretch_percentiles=(98, 2)), "stretch_percentiles"),
    (dict(batch_size=0), "batch_size"),
])
def test_bad_read_parameters_are_refused(kwargs, message):
    with pytest.raises(RasterReadError, match=message):
        ReadParams(**kwargs)
