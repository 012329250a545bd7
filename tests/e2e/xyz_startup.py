"""Run inside the real QGIS desktop by tests/e2e/test_desktop_xyz.py (``qgis --code``).

The headline flow on a web basemap: an XYZ layer (the tests' tile server on loopback, tiles of
a UCM mosaic) added as QGIS users add one, the canvas on it in Web Mercator, the MapScribe dock
opened with its toolbar button, the visible extent captioned with one click on Run.
"""

import os
import sys

# QGIS runs this file with exec(), without __file__: the test names this folder.
sys.path.insert(0, os.environ["MAPSCRIBE_E2E_DIR"])

from qgis.core import QgsProject, QgsRasterLayer, QgsRectangle
from qgis.PyQt.QtCore import Qt
from qgis.PyQt.QtTest import QTest
from qgis.utils import iface

from dock_steps import canvas_idle as _canvas_idle
from dock_steps import captions_layer, click_toolbar_button, mapscribe_layers
from dock_steps import dock as _dock
from dock_steps import run_over as _run_over
from qgis_steps import SHOTS, Wait, checks, run_steps

URL = os.environ["MAPSCRIBE_E2E_XYZ"]
EXTENT = [float(value) for value in os.environ["MAPSCRIBE_E2E_EXTENT"].split(",")]
MODEL = os.environ["MAPSCRIBE_E2E_MODEL"]
OUTPUT = os.environ["MAPSCRIBE_E2E_OUTPUT"]
state = {}


def step_add_xyz_layer():
    uri = f"type=xyz&url={URL}&zmin=17&zmax=19"
    layer = QgsRasterLayer(uri, "UCM mosaic (XYZ)", "wms")
    layer.setAttribution("UC Merced Land Use images, USGS")
    QgsProject.instance().addMapLayer(layer)
    state["layer"] = layer
    checks["layer_valid"] = layer.isValid()
    checks["layer_provider"] = layer.providerType()


def step_view_the_mosaic():
    canvas = iface.mapCanvas()
    checks["canvas_crs"] = canvas.mapSettings().destinationCrs().authid()
    canvas.setExtent(QgsRectangle(*EXTENT))
    canvas.refresh()


def step_open_dock():
    click_toolbar_button()


def step_configure():
    dock = _dock()
    dock.form.raster_combo.setLayer(state["layer"])
    dock.select_model(MODEL)
    dock.form.area_combo.setCurrentIndex(dock.form.area_combo.findData("extent"))
    dock.form.device_combo.setCurrentIndex(dock.form.device_combo.findData("cpu"))
    dock.set_output_path(OUTPUT)
    checks["run_enabled"] = dock.form.run_button.isEnabled()
    checks["raster_info"] = dock.form.raster_info.text()


def step_screenshot_dock():
    _dock().grab().save(str(SHOTS / "desktop-xyz-dock.png"))


def step_click_run():
    QTest.mouseClick(_dock().form.run_button, Qt.LeftButton)
    checks["running_after_click"] = _dock().is_running()


def step_results():
    dock = _dock()
    task = dock.last_task
    checks["status"] = dock.form.status.text()
    checks["task_error"] = task.error
    if task.result is None:
        return
    result = task.result
    checks["result"] = {"stopped": result.stopped, "tiles": result.tiles_total,
                        "captioned": result.captioned, "nodata": result.nodata,
                        "failed": result.failed,
                        "notes": list(result.notes), "network": dict(result.network)}
    layers = mapscribe_layers()
    checks["group_layers"] = [layer.name() for layer in layers]
    captions = captions_layer(layers)
    if captions is not None:
        checks["captions"] = [feature["caption"] or None for feature in captions.getFeatures()]
        # The caption pyramid's levels, as the layer holds them: {level: tiles}.
        levels = {}
        for feature in captions.getFeatures():
            levels[int(feature["level"])] = levels.get(int(feature["level"]), 0) + 1
        checks["level_tiles"] = [levels[level] for level in sorted(levels)]


def step_map_screenshot():
    iface.mainWindow().grab().save(str(SHOTS / "desktop-xyz-captioned.png"))
    checks["raster_info_after"] = _dock().form.raster_info.text()


run_steps([
    step_add_xyz_layer, step_view_the_mosaic, step_open_dock,
    Wait(lambda: _dock().engine_ready, 60_000, "the dock's engine check"),
    step_configure, step_screenshot_dock, step_click_run,
    Wait(_run_over, 150_000, "the captioning task"),
    step_results,
    Wait(_canvas_idle, 30_000, "the canvas to be drawn"),
    Wait(lambda: not _dock()._estimate_timer.isActive(), 10_000, "the dock to follow the view"),
    step_map_screenshot,
])
