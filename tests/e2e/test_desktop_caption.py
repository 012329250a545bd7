"""Captioning from the dock in the real QGIS desktop under Xvfb, plugin installed from the zip.

caption_startup.py (run by QGIS with ``--code``) loads RGB.byte.tif (UTM 18N) with the canvas
in Web Mercator, zooms to its middle, opens the dock with the toolbar button, chooses the model
(resources/default.mscap when it exists, else a tiny model trained here), clicks Run, waits for
the task, then walks the captions panel with the arrow keys. This test asserts on what it wrote
down: the layer in the "MapScribe" group with its tiles and captions, tiles where the canvas
showed, the canvas centred on the tile chosen by keyboard, and the screenshots
(desktop-caption-dock.png, desktop-captioned-map.png, desktop-captions-panel.png) left in the
artifacts folder for people to look at.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

from desktop import REPO, install_plugin, require, run_desktop

STARTUP = Path(__file__).with_name("caption_startup.py")
RGB_BYTE = REPO / "tests" / "data" / "RGB.byte.tif"
DEFAULT_MODEL = REPO / "resources" / "default.mscap"
QGIS_TIMEOUT_S = 180

pytestmark = [pytest.mark.desktop, pytest.mark.timeout(QGIS_TIMEOUT_S + 120)]


@pytest.fixture
def model_for_desktop(request) -> Path:
    """The bundled default model, or (before it exists) the tiny test model."""
    override = os.environ.get("MAPSCRIBE_E2E_MODEL")
    if override:
        return Path(override)
    if DEFAULT_MODEL.exists():
        return DEFAULT_MODEL
    return request.getfixturevalue("tiny_model_path")


def test_caption_the_visible_extent_from_the_dock(tmp_path, artifacts_dir, model_for_desktop):
    require("xvfb-run")
    require("qgis")
    profiles = install_plugin(tmp_path)
    raster = tmp_path / "RGB.byte.tif"  # QGIS writes statistics beside what it shows
    shutil.copyfile(RGB_BYTE, raster)
    output = tmp_path / "out" / "rgb-captions.gpkg"
    run = run_desktop(
        STARTUP, tmp_path=tmp_path, artifacts_dir=artifacts_dir, name="desktop-caption",
        profiles=profiles, timeout_s=QGIS_TIMEOUT_S,
        variables={"MAPSCRIBE_E2E_RASTER": raster, "MAPSCRIBE_E2E_MODEL": model_for_desktop,
                   "MAPSCRIBE_E2E_OUTPUT": output})
    checks, context = run.checks, run.context

    # The set-up: a UTM raster under a Web Mercator canvas; the dock opened by its button.
    assert checks["raster_valid"] and checks["raster_crs"] == "EPSG:32618", context
    assert checks["canvas_crs"] == checks["canvas_crs_at_run"] == "EPSG:3857", context
    # The view showed the middle of the raster, not all of it.
    assert checks["canvas_extent_at_run"] == checks["canvas_extent"], context
    assert checks["dock_visible"], "the toolbar button did not open the dock" + context
    assert " + LSTM, " in checks["model_info"], "model header not shown" + context
    assert any(label.startswith("CPU") for label in checks["devices"]), context
    assert checks["running_after_click"], "clicking Run started no task" + context

    # The run, its layer in the MapScribe group, every tile with its caption.
    assert checks["task_error"] is None, context
    job = checks["result"]
    # The middle of the raster: fewer tiles than the 42 of the whole of it.
    assert job["stopped"] == "completed" and 4 <= job["tiles"] < 42, context
    assert checks["progress_bar"] == 100 and checks["progress_updates"] >= 1, context
    assert checks["status"].startswith("Done:"), context
    # The captions layer, once, and the regions layer that describing the area added.
    assert checks["captions_layers"] == 1 and len(checks["group_layers"]) == 2, (
        "not one captions layer and its regions layer in the MapScribe group" + context)
    features = checks["features"]
    assert len(features) == job["tiles"], context
    captioned = [f for f in features if f["status"] != "nodata"]
    assert len(captioned) == job["captioned"] >= 1, context
    assert all(f["caption"] and len(f["caption"].split()) >= 2 for f in captioned), context
    assert checks["layer_crs"] == "EPSG:32618" and checks["labels_enabled"], context
    assert '"caption"' in checks["map_tip"], context

    # The tiles cover what the Web Mercator canvas showed, and no more than a tile beyond.
    left, bottom, right, top = checks["layer_extent"]
    shown_left, shown_bottom, shown_right, shown_top = checks["shown_in_layer_crs"]
    tile, pixel = checks["tile_size"], checks["tile_size"] / 128
    assert left <= shown_left + pixel and bottom <= shown_bottom + pixel, context
    assert right >= shown_right - pixel and top >= shown_top - pixel, context
    assert shown_left - left < tile and shown_bottom - bottom < tile, context
    assert right - shown_right < tile and top - shown_top < tile, context

    # The captions panel, walked by keyboard: three Down presses from the first tile.
    assert checks["panel_rows"] == len(features), context
    assert checks["panel_first_items"][0].startswith("Row 1, column 1"), context
    assert checks["current_row"] == 3, context
    centre, expected = checks["canvas_center"], checks["tile_centre_in_canvas_crs"]
    assert centre != checks["center_before_keys"], "the map did not move" + context
    assert centre == pytest.approx(expected, abs=1.0), "the map is not on the tile" + context
    # Copy caption put the current tile's caption (or, without one, what the list says).
    assert checks["clipboard"] and checks["current_text"].endswith(checks["clipboard"]), context

    assert run.python_problems() == [], "Python errors/warnings in QGIS's message log" + context
    run.assert_screenshots("desktop-caption-dock.png", "desktop-captioned-map.png",
                           "desktop-captions-panel.png")
