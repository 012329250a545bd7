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

import json
import os
import shutil
import signal
import subprocess
import time
from pathlib import Path

import pytest

try:
    from .test_desktop import _install_plugin, _qgis_environment, _require
except ImportError:  # tests/e2e is not a package: pytest put this folder on sys.path
    from test_desktop import _install_plugin, _qgis_environment, _require

REPO = Path(__file__).resolve().parents[2]
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


def _run_qgis(command, env):
    """QGIS in its own process group, the whole group (Xvfb too) killed on time-out."""
    started = time.monotonic()
    process = subprocess.Popen(command, env=env, stdout=subprocess.PIPE,
                               stderr=subprocess.STDOUT, text=True, start_new_session=True)
    try:
        output, _ = process.communicate(timeout=QGIS_TIMEOUT_S)
        code = process.returncode
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        output, _ = process.communicate()
        code = None
    return code, output, time.monotonic() - started


def test_caption_the_visible_extent_from_the_dock(tmp_path, artifacts_dir, model_for_desktop):
    _require("xvfb-run")
    _require("qgis")
    profiles = _install_plugin(tmp_path)
    raster = tmp_path / "RGB.byte.tif"  # QGIS writes statistics beside what it shows
    shutil.copyfile(RGB_BYTE, raster)
    result_path = tmp_path / "result.json"
    output = tmp_path / "out" / "rgb-captions.gpkg"
    env = _qgis_environment(tmp_path, result_path, artifacts_dir)
    env.update({"MAPSCRIBE_E2E_RASTER": str(raster), "MAPSCRIBE_E2E_MODEL": str(model_for_desktop),
                "MAPSCRIBE_E2E_OUTPUT": str(output),
                "MAPSCRIBE_E2E_WATCHDOG_MS": str((QGIS_TIMEOUT_S - 20) * 1000)})
    command = ["xvfb-run", "-a", "-s", "-screen 0 1600x1000x24", "qgis", "--nologo",
               "--noversioncheck", "--profiles-path", str(profiles), "--code", str(STARTUP)]
    code, qgis_output, seconds = _run_qgis(command, env)
    (artifacts_dir / "desktop-caption-qgis-output.txt").write_text(qgis_output)

    recorded = result_path.read_text() if result_path.exists() else "(no result file)"
    context = (f"\nQGIS exit code {code} after {seconds:.0f} s"
               f"\n--- QGIS output (last 6000 characters) ---\n{qgis_output[-6000:]}"
               f"\n--- {result_path.name} ---\n{recorded[-10000:]}")
    assert result_path.exists(), "caption_startup.py wrote no result" + context
    result = json.loads(recorded)
    assert result["stack_dialogs"] == [], "QGIS reported Python errors (dialogs)" + context
    assert result["errors"] == [], f"caption_startup.py failed: {result['errors']}" + context
    assert result["finished"] and code == 0, "QGIS did not finish cleanly" + context
    checks = result["checks"]

    # The set-up: a UTM raster under a Web Mercator canvas; the dock opened by its button.
    assert checks["raster_valid"] and checks["raster_crs"] == "EPSG:32618", context
    assert checks["canvas_crs"] == checks["canvas_crs_at_run"] == "EPSG:3857", context
    # The view showed the middle of the raster, not all of it.
    assert checks["canvas_extent_at_run"] == checks["canvas_extent"], context
    assert checks["dock_visible"], "the toolbar button did not open the dock" + context
    assert checks["model_info"].startswith("Backbone "), "model header not shown" + context
    assert any(label.startswith("CPU") for label in checks["devices"]), context
    assert checks["running_after_click"], "clicking Run started no task" + context

    # The run, its layer in the MapScribe group, every tile with its caption.
    assert checks["task_error"] is None, context
    run = checks["result"]
    # The middle of the raster: fewer tiles than the 42 of the whole of it.
    assert run["stopped"] == "completed" and 4 <= run["tiles"] < 42, context
    assert checks["progress_bar"] == 100 and checks["progress_updates"] >= 1, context
    assert checks["status"].startswith("Done:"), context
    assert len(checks["group_layers"]) == 1, "no layer (or several) in the MapScribe group" + context
    features = checks["features"]
    assert len(features) == run["tiles"], context
    captioned = [f for f in features if f["status"] != "nodata"]
    assert len(captioned) == run["captioned"] >= 1, context
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

    python_problems = [m for m in result["messages"]
                       if m["tag"] in ("Python error", "Python warning")]
    assert python_problems == [], "Python errors/warnings in QGIS's message log" + context
    for shot in ("desktop-caption-dock.png", "desktop-captioned-map.png",
                 "desktop-captions-panel.png"):
        assert (artifacts_dir / shot).stat().st_size > 10_000, shot + context
