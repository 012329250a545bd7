"""Captioning the imagery QGIS users look at, end to end with real parts on loopback: XYZ tiles
made by gdal2tiles behind a fault-injecting server, QGIS Server's WMS and WMTS, a
cloud-optimised GeoTIFF read with Range requests. No external network.

The mosaic (tests/conftest.py, ``ucm_mosaic``) is 16 UCM test images of 224 px at zoom 19's
0.30 m near the equator, so the file, its XYZ tiles and the images themselves show the model the
same pixels: the same words are expected from each.
"""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path
from typing import Dict

import pytest
import rasterio

from mapscribe.model.geo.areas import BoundingBox
from mapscribe.model.geo.http_fetch import NetworkParams
from mapscribe.model.geo.sources import ImageSource, SourceError
from mapscribe.model.jobs.caption import caption_raster
from mapscribe.model.jobs.caption_params import CaptionRasterParams
from mapscribe.model.output.exports import export_captions
from mapscribe.model.output.geopackage import check_intact, read_caption_layer_info

NETWORK = NetworkParams(cache=False, max_requests_per_second=0, timeout_s=1.0, retries=2,
                        backoff_s=0.02, connections=4)


def _bbox(mosaic) -> BoundingBox:
    with rasterio.open(mosaic["tif"]) as dataset:
        return BoundingBox(*dataset.bounds, crs="EPSG:3857")


def _xyz(server, **kwargs) -> ImageSource:
    return ImageSource.xyz(server.url + "/xyz/{z}/{x}/{y}.png", zmax=19,
                           attribution="UC Merced Land Use images, USGS", **kwargs)


def _run(model, raster, out, area=None, **kwargs):
    # One level: these tests count the detail tiles (the pyramid has its own tests).
    params = dict(raster=raster, model=model, output=out, network=NETWORK, beam_size=3,
                  levels=1)
    if area is not None:
        params["area"] = area
    params.update(kwargs)
    return caption_raster(CaptionRasterParams(**params))


def _rows(path: Path, layer: str = "captions") -> Dict[int, tuple]:
    with sqlite3.connect(path) as db:
        rows = db.execute(f'SELECT tile_id, status, caption, reason FROM "{layer}"').fetchall()
    return {row[0]: row[1:] for row in rows}


def _check_file(path: Path, planned: int) -> None:
    """Every planned tile once, and SQLite finds nothing wrong."""
    check_intact(path)
    with sqlite3.connect(path) as db:
        assert db.execute("PRAGMA integrity_check").fetchall() == [("ok",)]
        ids = [row[0] for row in db.execute('SELECT tile_id FROM "captions"')]
    assert len(ids) == len(set(ids)) == planned


# --- same pixels, same words -----------------------------------------------------------------
def test_a_mosaic_gives_the_same_words_as_a_file_as_xyz_tiles_and_as_images(
        tiny_model_path, ucm_mosaic, tile_server, tmp_path, cli):
    area = _bbox(ucm_mosaic)
    from_file = _run(tiny_model_path, ucm_mosaic["tif"], tmp_path / "file.gpkg", area)
    from_xyz = _run(tiny_model_path, _xyz(tile_server, headers={"X-Api-Key": "S3CRET"}),
                    tmp_path / "xyz.gpkg", area)
    assert from_file.tiles_total == from_xyz.tiles_total == 16
    assert from_xyz.tile_size_pixels == from_file.tile_size_pixels == (225, 225)
    file_rows, xyz_rows = _rows(tmp_path / "file.gpkg"), _rows(tmp_path / "xyz.gpkg")
    same = sum(file_rows[i][1] == xyz_rows[i][1] for i in file_rows)
    assert same >= 0.9 * 16, (same, file_rows, xyz_rows)
    assert from_xyz.failed == 0 and from_xyz.network["requests"] >= 16
    assert tile_server.headers_seen[-1]["X-Api-Key"] == "S3CRET"
    assert any("XYZ zoom 19" in note and "0.299 m per pixel" in note for note in from_xyz.notes)

    # What the layer records: the source and its credit, never the key.
    info = read_caption_layer_info(tmp_path / "xyz.gpkg", "captions")
    source = info.run["source"]
    assert source["kind"] == "xyz" and source["zoom"] == 19
    assert source["attribution"] == "UC Merced Land Use images, USGS"
    assert source["http_headers"] == ["X-Api-Key"]
    assert b"S3CRET" not in (tmp_path / "xyz.gpkg").read_bytes()
    assert "/{z}/{x}/{y}.png" in info.run["raster"]["path"]
    report = export_captions(tmp_path / "xyz.gpkg", "html", tmp_path / "xyz.html")
    html = Path(report.path).read_text(encoding="utf-8")
    assert "Imagery credit" in html and "UC Merced Land Use images, USGS" in html
    assert "XYZ http://127.0.0.1" in html and "S3CRET" not in html

    # One image per tile (224 px): exactly what `mapscribe predict` says of each image.
    exact = _run(tiny_model_path, ucm_mosaic["tif"], tmp_path / "exact.gpkg", area,
                 tile_size=224, tile_size_unit="pixels")
    assert exact.tiles_total == 16
    answer = cli("predict", str(tiny_model_path), *map(str, ucm_mosaic["images"]), "--json")
    assert answer.returncode == 0, answer.stderr
    predicted = [item["caption"] for item in json.loads(answer.stdout)]
    captions = _rows(tmp_path / "exact.gpkg")
    assert [captions[i][1] for i in range(16)] == predicted


def test_a_cloud_optimised_geotiff_is_read_over_http_with_range_requests(
        tiny_model_path, ucm_mosaic, tile_server, tmp_path):
    local = _run(tiny_model_path, ucm_mosaic["cog"], tmp_path / "local.gpkg")
    remote = _run(tiny_model_path, f"/vsicurl/{tile_server.url}/mosaic_cog.tif",
                  tmp_path / "remote.gpkg")
    assert tile_server.ranges > 0 and tile_server.total > 0
    assert all("MapScribe/" in agent for agent in tile_server.user_agents)
    assert ({i: row[1] for i, row in _rows(tmp_path / "local.gpkg").items()}
            == {i: row[1] for i, row in _rows(tmp_path / "remote.gpkg").items()})
    assert remote.captioned == local.captioned > 0


# --- faults ---------------------------------------------------------------------------------
def test_server_errors_and_timeouts_are_retried_and_what_cannot_be_fetched_fails_alone(
        tiny_model_path, ucm_mosaic, tile_server, tmp_path):
    area = _bbox(ucm_mosaic)
    tile_server.timeout_s = 2.0
    broken = None

    def faults(path, count):
        if "/19/" not in path:
            return None
        if path == broken:
            return 500                                 # never delivered
        return 500 if count == 1 else ("timeout" if count == 2 and path.endswith("1.png")
                                       else None)

    # The south-east service tile of the mosaic is the one that never comes.
    with rasterio.open(ucm_mosaic["tif"]) as dataset:
        x = int((dataset.bounds.right - 1 + 20037508.342789244) / (dataset.res[0] * 256))
        y = int((20037508.342789244 - dataset.bounds.bottom - 1) / (dataset.res[0] * 256))
    broken = f"/xyz/19/{x}/{y}.png"
    tile_server.fail(faults)
    out = tmp_path / "faults.gpkg"
    result = _run(tiny_model_path, _xyz(tile_server), out, area)
    assert result.stopped == "completed" and result.failed == 1  # the south-east model tile
    assert result.captioned == 15 and result.network["retries"] >= 16
    rows = _rows(out)
    failed = {i: row for i, row in rows.items() if row[0] == "failed"}
    assert list(failed) == [15] and "HTTP 500" in failed[15][2] and failed[15][1] is None
    _check_file(out, 16)

    tile_server.clear_faults()
    again = _run(tiny_model_path, _xyz(tile_server), out, area, resume=True)
    assert again.skipped_existing == 15 and again.captioned == 1 and again.failed == 0
    assert _rows(out)[15][0] == "captioned"
    _check_file(out, 16)


@pytest.mark.parametrize("limit", [3, 100])
def test_a_server_stopped_mid_run_then_back_lets_resume_finish_every_tile(
        tiny_model_path, ucm_mosaic, tile_server, tmp_path, limit):
    area = _bbox(ucm_mosaic)
    network = NetworkParams(cache=False, max_requests_per_second=0, timeout_s=1.0, retries=1,
                            backoff_s=0.02, connections=1, max_consecutive_failures=limit)
    out = tmp_path / "stopped.gpkg"

    def stop_after_the_first_batch(update):
        if update.done >= 1:
            tile_server.stop()

    params = CaptionRasterParams(raster=_xyz(tile_server), model=tiny_model_path, output=out,
                                 area=area, network=network, batch_size=1, queue_depth=1,
                                 levels=1)
    if limit == 3:  # the source is taken to be down: the run stops, keeping what it made
        with pytest.raises(SourceError, match="stopped delivering imagery: 3 tiles in a row"):
            caption_raster(params, stop_after_the_first_batch)
    else:  # every tile is tried; those without imagery are 'failed'
        result = caption_raster(params, stop_after_the_first_batch)
        assert result.failed > 0 and result.processed == 16
    kept = _rows(out)
    assert 1 <= sum(row[0] == "captioned" for row in kept.values()) < 16
    assert all("nothing answers" in row[2] for row in kept.values() if row[0] == "failed")
    check_intact(out)

    tile_server.start()  # the same port, serving again
    resumed = caption_raster(CaptionRasterParams(
        raster=_xyz(tile_server), model=tiny_model_path, output=out, area=area,
        network=NETWORK, resume=True, levels=1))
    assert resumed.failed == 0
    assert all(row[0] in ("captioned", "unfinished") for row in _rows(out).values())
    _check_file(out, 16)


# --- one clear message each, and nothing written ---------------------------------------------
def test_a_wrong_host_a_refusal_no_imagery_and_no_image_are_each_said_before_anything(
        tiny_model_path, ucm_mosaic, tile_server, tmp_path):
    area = _bbox(ucm_mosaic)
    out = tmp_path / "never.gpkg"
    cases = [
        (ImageSource.xyz("http://127.0.0.1:1/{z}/{x}/{y}.png", zmax=19),
         r"cannot be read: .*nothing answers at 127\.0\.0\.1:1"),
        (ImageSource.xyz(tile_server.url + "/locked/{z}/{x}/{y}.png?key=K", zmax=19),
         r"refused access \(HTTP 403\)"),
        (ImageSource.xyz(tile_server.url + "/nothing/{z}/{x}/{y}.png", zmax=19),
         r"has no imagery at zoom 19 over the area: .*HTTP 404"),
        (ImageSource.xyz(tile_server.url + "/page/{z}/{x}/{y}.png", zmax=19),
         r"the answer is not an image: .*fault injected"),
    ]
    tile_server.fail(lambda path, n: 403 if path.startswith("/locked") else (
        200 if path.startswith("/page") else None))
    for source, message in cases:
        with pytest.raises(SourceError, match=message) as caught:
            _run(tiny_model_path, source, out, area)
        assert "key=K" not in str(caught.value)
        assert not out.exists()


# --- a real WMS and WMTS ---------------------------------------------------------------------
@pytest.mark.parametrize("kind", ["wms", "wmts"])
def test_qgis_server_wms_and_wmts_are_captioned_at_the_models_resolution(
        tiny_model_path, ucm_mosaic, qgis_server, tmp_path, kind):
    area = _bbox(ucm_mosaic)
    source = (ImageSource.wms(qgis_server.url, "ucm") if kind == "wms" else
              ImageSource.wmts(qgis_server.url + "?SERVICE=WMTS&REQUEST=GetCapabilities", "ucm"))
    result = _run(tiny_model_path, source, tmp_path / f"{kind}.gpkg", area)
    assert result.failed == 0 and result.captioned >= 12
    note = result.notes[0]
    if kind == "wms":
        # The power of two closest to 0.3 m: 0.25 m, asked for in 512 px GetMap blocks.
        assert "WMS GetMap at 0.25 map units per pixel" in note
    else:
        assert "WMTS tile matrix 19" in note and "0.299 m" in note
    info = read_caption_layer_info(tmp_path / f"{kind}.gpkg", "captions")
    assert info.run["source"]["kind"] == kind and info.run["source"]["title"]


def test_the_command_line_captions_xyz_and_wms_sources(tiny_model_path, ucm_mosaic,
                                                      tile_server, qgis_server, tmp_path, cli):
    box = _bbox(ucm_mosaic)
    bbox = [str(v) for v in (box.minx, box.miny, box.maxx, box.maxy)]
    answer = cli("caption", f"xyz:{tile_server.url}/xyz/{{z}}/{{x}}/{{y}}.png", "--model",
                 str(tiny_model_path), "--out", str(tmp_path / "xyz.gpkg"), "--bbox", *bbox,
                 "--bbox-crs", "EPSG:3857", "--zoom", "18", "--no-cache",
                 "--max-requests-per-second", "50", "--attribution", "USGS", "--no-describe")
    assert answer.returncode == 0, answer.stderr
    assert "XYZ zoom 18 (as asked)" in answer.stdout and "Imagery credit: USGS" in answer.stdout
    assert "requests" in answer.stdout and "from the cache" in answer.stdout
    answer = cli("caption", "--wms", qgis_server.url, "--layers", "ucm", "--model",
                 str(tiny_model_path), "--out", str(tmp_path / "wms.gpkg"), "--bbox", *bbox,
                 "--bbox-crs", "EPSG:3857", "--no-cache", "--no-describe")
    assert answer.returncode == 0, answer.stderr
    assert "WMS GetMap" in answer.stdout
    answer = cli("caption", "--wms", qgis_server.url, "--layers", "nosuch", "--model",
                 str(tiny_model_path), "--out", str(tmp_path / "no.gpkg"), "--bbox", *bbox,
                 "--bbox-crs", "EPSG:3857", "--no-cache")
    assert answer.returncode != 0 and "has no layer nosuch; it offers ucm" in answer.stderr
