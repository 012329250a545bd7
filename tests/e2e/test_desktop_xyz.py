"""Captioning a web basemap from the dock in the real QGIS desktop under Xvfb: an XYZ layer
served on loopback by the tests' tile server (tiles of the UCM mosaic, tests/conftest.py),
the visible extent captioned with one click. xyz_startup.py (run by QGIS with ``--code``)
writes down what it saw; desktop-xyz-dock.png and desktop-xyz-captioned.png are left in the
artifacts folder for people to look at."""

from __future__ import annotations

import os
import re
from pathlib import Path

import pytest
import rasterio

from desktop import REPO, install_plugin, require, run_desktop

STARTUP = Path(__file__).with_name("xyz_startup.py")
DEFAULT_MODEL = REPO / "resources" / "default.mscap"
QGIS_TIMEOUT_S = 240

pytestmark = [pytest.mark.desktop, pytest.mark.timeout(QGIS_TIMEOUT_S + 120)]


def test_the_dock_captions_what_an_xyz_basemap_shows(tmp_path, artifacts_dir, ucm_mosaic,
                                                    tile_server, request):
    require("xvfb-run")
    require("qgis")
    model = os.environ.get("MAPSCRIBE_E2E_MODEL") or (
        DEFAULT_MODEL if DEFAULT_MODEL.exists() else request.getfixturevalue("tiny_model_path"))
    with rasterio.open(ucm_mosaic["tif"]) as dataset:
        extent = ",".join(f"{value:.3f}" for value in dataset.bounds)
    profiles = install_plugin(tmp_path)
    output = tmp_path / "out" / "xyz-captions.gpkg"
    run = run_desktop(
        STARTUP, tmp_path=tmp_path, artifacts_dir=artifacts_dir, name="desktop-xyz",
        profiles=profiles, timeout_s=QGIS_TIMEOUT_S,
        variables={"MAPSCRIBE_E2E_XYZ": tile_server.url + "/xyz/{z}/{x}/{y}.png",
                   "MAPSCRIBE_E2E_EXTENT": extent, "MAPSCRIBE_E2E_MODEL": model,
                   "MAPSCRIBE_E2E_OUTPUT": output})
    checks, context = run.checks, run.context

    assert checks["layer_valid"] and checks["layer_provider"] == "wms", context
    assert checks["canvas_crs"] == "EPSG:3857", context
    # The dock describes the service truthfully, not as "0 × 0 pixels", and credits it.
    assert "XYZ" in checks["raster_info"] and "0 × 0" not in checks["raster_info"], context
    assert "UC Merced Land Use images, USGS" in checks["raster_info"], context
    assert checks["run_enabled"] and checks["running_after_click"], context

    assert checks["task_error"] is None, context
    job = checks["result"]
    assert job["stopped"] == "completed" and job["tiles"] >= 4, context
    # The mosaic's edge tiles reach past its imagery (the server answers 404 there): nodata.
    assert job["captioned"] >= 4 and job["failed"] == 0, context
    assert job["captioned"] + job["nodata"] == job["tiles"], context
    assert job["network"]["requests"] >= 1 and tile_server.total >= 1, context
    assert any("XYZ zoom" in note for note in job["notes"]), context
    assert checks["group_layers"], context
    captions = checks["captions"]
    assert len(captions) == job["tiles"], context
    # The dock captions the caption pyramid too (levels auto): the area's 3 × 3 tiles at zoom
    # 18 under 2 × 2 and one tile for the whole.
    assert checks["level_tiles"] == [1, 4, 9], context
    written = [caption for caption in captions if caption]
    assert len(written) == job["captioned"] and all(len(c.split()) >= 2 for c in written)
    assert run.python_problems() == [], "Python errors/warnings in QGIS's message log" + context
    run.assert_screenshots("desktop-xyz-dock.png", "desktop-xyz-captioned.png")
    # After Run the map fits the captioned area: the dock says the resolution there (about
    # 0.5 m per pixel at 1:1,800), not the world view's.
    shown = re.search(r"shows about ([0-9.e+]+) m per pixel", checks["raster_info_after"])
    assert shown and float(shown.group(1)) < 10, checks["raster_info_after"]
