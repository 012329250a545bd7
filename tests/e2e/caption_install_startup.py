"""Run inside the real QGIS desktop by tests/e2e/test_deps_install.py (``qgis --code``), in a
QGIS whose Python has neither torch nor onnxruntime.

As a new user would: load a raster, zoom to its middle, open the MapScribe dock with its toolbar
button; the dock describes the default model and shows the dependency panel with *Caption*
chosen; click Install and time it; once installed (no restart), the dock lists ONNX Runtime's
devices; click Run and caption the visible extent with ONNX Runtime.

With MAPSCRIBE_E2E_RASTERIO_WHEEL=1 the test has installed onnxruntime and rasterio's PyPI wheel
(with its own GDAL) into the managed folder before QGIS started (as after a restart): the folder
goes first on sys.path at plugin load and its rasterio shadows Debian's; the dock needs no
installation and the run reads the raster through that wheel, next to QGIS's own GDAL.
"""

import os
import sys

# QGIS runs this file with exec(), without __file__: the test names this folder.
sys.path.insert(0, os.environ["MAPSCRIBE_E2E_DIR"])

import importlib.util
import time

import qgis.utils
from qgis.core import QgsCoordinateTransform, QgsProject, QgsRectangle
from qgis.PyQt.QtCore import Qt
from qgis.PyQt.QtTest import QTest
from qgis.utils import iface

from dock_steps import click_toolbar_button
from dock_steps import dock as _dock
from dock_steps import run_over as _run_over
from qgis_steps import SHOTS, Wait, checks, run_steps

RASTER = os.environ["MAPSCRIBE_E2E_RASTER"]
OUTPUT = os.environ["MAPSCRIBE_E2E_OUTPUT"]
RASTERIO_WHEEL = os.environ.get("MAPSCRIBE_E2E_RASTERIO_WHEEL") == "1"
state = {}


def step_before():
    checks["prefix"] = sys.prefix
    checks["torch_spec_at_start"] = importlib.util.find_spec("torch") is not None
    checks["onnxruntime_spec_at_start"] = importlib.util.find_spec("onnxruntime") is not None
    checks["plugin_active"] = "mapscribe" in qgis.utils.active_plugins
    import mapscribe
    checks["plugin_file"] = mapscribe.__file__


def step_open_dock():
    click_toolbar_button()


def step_panel():
    dock = _dock()
    panel = dock._dependency_panel
    checks["panel_shown"] = panel is not None and panel.isVisible()
    checks["model_info"] = dock.form.model_info.text()
    checks["rasterio_imported_before_install"] = "rasterio" in sys.modules
    if panel is None:
        return
    checks["missing_text"] = panel.missing_label.text()
    checks["caption_text"] = panel.caption_info.text()
    checks["choice"] = panel.selected_choice()
    checks["run_visible"] = dock.form.run_button.isVisible()
    # Every line readable: the scrolled form (the panel in it) is no wider than what shows.
    checks["form_width"] = [dock.form.width(), dock.scroll.viewport().width(),
                            dock.form.minimumSizeHint().width()]
    dock.grab().save(str(SHOTS / (state["prefix"] + "-panel.png")))
    state["started"] = time.monotonic()
    QTest.mouseClick(panel.install_button, Qt.LeftButton)  # the user's click
    checks["installing_after_click"] = panel.is_installing()
    # Once installed, the dock lets the panel go: read it as the installation ends (this slot
    # runs right after the panel's own).
    panel.task.ended.connect(lambda _ok: record_installation(panel))


def record_installation(panel):
    checks["install_wall_seconds"] = time.monotonic() - state["started"]
    checks["install_status"] = panel.status_label.text()
    error = panel.last_error
    checks["install_error"] = None if error is None else {
        "kind": error.kind, "message": error.message, "log": error.log[-4000:]}
    if panel.last_result is not None:
        checks["install_seconds"] = panel.last_result.seconds
        checks["installed"] = panel.last_result.installed
        checks["downloaded_mb"] = panel.last_result.downloaded_mb
    checks["log_tail"] = panel.log_view.toPlainText()[-3000:]
    state["installed"] = True


def step_load_raster():
    layer = iface.addRasterLayer(RASTER, "RGB.byte")
    state["raster"] = layer
    checks["raster_valid"] = layer.isValid()


def step_middle():
    project, canvas, layer = QgsProject.instance(), iface.mapCanvas(), state["raster"]
    to_canvas = QgsCoordinateTransform(layer.crs(), canvas.mapSettings().destinationCrs(),
                                       project)
    middle = QgsRectangle(layer.extent())
    middle.scale(0.5)
    canvas.setExtent(to_canvas.transformBoundingBox(middle))
    canvas.refresh()


def step_configure_and_run():
    dock = _dock()
    checks["runtime"] = dock.runtime
    checks["devices"] = [dock.form.device_combo.itemText(i)
                         for i in range(dock.form.device_combo.count())]
    dock.form.raster_combo.setLayer(state["raster"])
    dock.form.area_combo.setCurrentIndex(dock.form.area_combo.findData("extent"))
    dock.form.tile_size.setValue(128 * state["raster"].rasterUnitsPerPixelX())
    dock.set_output_path(OUTPUT)
    dock.refresh_tile_preview()
    checks["estimate"] = dock.form.estimate.text()
    iface.mainWindow().grab().save(str(SHOTS / (state["prefix"] + "-ready.png")))
    QTest.mouseClick(dock.form.run_button, Qt.LeftButton)
    checks["running_after_click"] = dock.is_running()


def step_results():
    dock = _dock()
    task = dock.last_task
    checks["status"] = dock.form.status.text()
    checks["task_error"] = task.error
    result = task.result
    if result is not None:
        checks["result"] = {"device": result.device, "tiles": result.tiles_total,
                            "captioned": result.captioned, "stopped": result.stopped,
                            "examples": [e.caption for e in result.examples][:3]}
    import onnxruntime
    checks["onnxruntime_file"] = onnxruntime.__file__
    checks["torch_imported"] = sys.modules.get("torch") is not None
    rasterio = sys.modules.get("rasterio")
    checks["rasterio_file"] = getattr(rasterio, "__file__", None)
    checks["rasterio_version"] = getattr(rasterio, "__version__", None)
    checks["rasterio_gdal"] = getattr(rasterio, "__gdal_version__", None)
    from osgeo import gdal
    checks["qgis_gdal"] = gdal.__version__
    from mapscribe.plugin.deps.managed import managed_folder
    checks["managed_folder"] = str(managed_folder())
    iface.mainWindow().grab().save(str(SHOTS / (state["prefix"] + "-captioned.png")))


state["prefix"] = "rasterio-wheel" if RASTERIO_WHEEL else "caption-install"
INSTALL = [
    Wait(lambda: _dock() is not None and _dock()._dependency_panel is not None, 30_000,
         "the dock's dependency panel"),
    step_panel,
    Wait(lambda: state.get("installed"), 240_000, "the installation"),
]
run_steps([
    step_before, step_open_dock, *([] if RASTERIO_WHEEL else INSTALL),
    Wait(lambda: _dock().engine_ready, 60_000, "the engine"),
    step_load_raster, step_middle, step_configure_and_run,
    Wait(_run_over, 180_000, "the captioning task"),
    step_results,
])
