"""Run inside the real QGIS desktop by tests/e2e/test_desktop_caption.py (``qgis --code``).

As a user would: load RGB.byte.tif (UTM 18N) with the project and the canvas in Web Mercator,
zoom to the middle of it, open the MapScribe dock with its toolbar button, choose the model and
a tile size, click Run, wait for the task, then move through the captions panel with the arrow
keys. qgis_steps.py runs the steps, writes what they saw to the JSON result and exits QGIS.
"""

import os
import sys

# QGIS runs this file with exec(), without __file__: the test names this folder.
sys.path.insert(0, os.environ["MAPSCRIBE_E2E_DIR"])

from qgis.core import (
    QgsCoordinateReferenceSystem,
    QgsCoordinateTransform,
    QgsProject,
    QgsRectangle,
)
from qgis.PyQt.QtCore import Qt
from qgis.PyQt.QtTest import QTest
from qgis.PyQt.QtWidgets import QApplication
from qgis.utils import iface

from dock_steps import canvas_idle as _canvas_idle
from dock_steps import captions_layer, click_toolbar_button, mapscribe_layers
from dock_steps import dock as _dock
from dock_steps import run_over as _run_over
from qgis_steps import SHOTS, Wait, checks, run_steps

RASTER = os.environ["MAPSCRIBE_E2E_RASTER"]
MODEL = os.environ["MAPSCRIBE_E2E_MODEL"]
OUTPUT = os.environ["MAPSCRIBE_E2E_OUTPUT"]
TILE_PIXELS = 128
state = {}


def _rect(rect):
    return [rect.xMinimum(), rect.yMinimum(), rect.xMaximum(), rect.yMaximum()]


def step_load_raster():
    layer = iface.addRasterLayer(RASTER, "RGB.byte")
    state["raster"] = layer
    checks["raster_valid"] = layer.isValid()
    checks["raster_crs"] = layer.crs().authid()


def step_web_mercator_middle():
    """After the layer is in: QGIS gives a new project the first layer's CRS and zooms to it,
    so the project's CRS and the view are set here, a tick later."""
    project = QgsProject.instance()
    web_mercator = QgsCoordinateReferenceSystem("EPSG:3857")
    project.setCrs(web_mercator)
    canvas = iface.mapCanvas()
    layer = state["raster"]
    # The middle of the raster, as the canvas (Web Mercator) sees it.
    to_canvas = QgsCoordinateTransform(layer.crs(), web_mercator, project)
    middle = QgsRectangle(layer.extent())
    middle.scale(0.45)
    canvas.setExtent(to_canvas.transformBoundingBox(middle))
    canvas.refresh()


def step_open_dock():
    click_toolbar_button()


def step_configure():
    dock = _dock()
    layer = state["raster"]
    checks["dock_visible"] = dock.isVisible()
    checks["engine_ready"] = dock.engine_ready
    dock.form.raster_combo.setLayer(layer)
    dock.select_model(MODEL)
    checks["model_info"] = dock.form.model_info.text()
    dock.form.area_combo.setCurrentIndex(dock.form.area_combo.findData("extent"))
    state["tile_size"] = TILE_PIXELS * layer.rasterUnitsPerPixelX()
    dock.form.tile_size.setValue(state["tile_size"])
    dock.form.batch_size.setValue(4)
    dock.form.beam.setValue(2)
    dock.form.device_combo.setCurrentIndex(dock.form.device_combo.findData("cpu"))
    dock.set_output_path(OUTPUT)
    devices = dock.form.device_combo
    checks["devices"] = [devices.itemText(i) for i in range(devices.count())]
    checks["tile_info"] = dock.form.tile_info.text()
    checks["canvas_extent"] = _rect(iface.mapCanvas().extent())
    checks["canvas_crs"] = iface.mapCanvas().mapSettings().destinationCrs().authid()
    checks["raster_extent"] = _rect(layer.extent())


def step_screenshot_dock():
    _dock().grab().save(str(SHOTS / "desktop-caption-dock.png"))


def step_click_run():
    dock = _dock()
    QTest.mouseClick(dock.form.run_button, Qt.LeftButton)  # the user's click
    checks["running_after_click"] = dock.is_running()
    checks["status_after_click"] = dock.form.status.text()
    checks["canvas_crs_at_run"] = iface.mapCanvas().mapSettings().destinationCrs().authid()
    checks["canvas_extent_at_run"] = _rect(iface.mapCanvas().extent())


def _described():
    panel = _dock().captions_panel
    return panel.describer.task is None and panel.description is not None


def step_results():
    dock = _dock()
    task = dock.last_task
    checks["status"] = dock.form.status.text()
    checks["task_error"] = task.error
    checks["progress_updates"] = len(task.progress_updates)
    checks["progress_bar"] = dock.form.progress.value()
    if task.result is None:
        return
    checks["result"] = {"stopped": task.result.stopped, "tiles": task.result.tiles_total,
                        "captioned": task.result.captioned, "nodata": task.result.nodata}
    layers = mapscribe_layers()
    checks["group_layers"] = [layer.name() for layer in layers]
    checks["captions_layers"] = sum(layer.fields().indexOf("tile_id") >= 0 for layer in layers)
    layer = captions_layer(layers)
    if layer is None:
        return
    state["captions"] = layer
    features = list(layer.getFeatures())
    checks["features"] = [{"tile_id": f["tile_id"], "status": f["status"],
                           "caption": f["caption"] if f["caption"] else None}
                          for f in features]
    checks["layer_crs"] = layer.crs().authid()
    checks["layer_extent"] = _rect(layer.extent())
    checks["labels_enabled"] = layer.labelsEnabled()
    checks["map_tip"] = layer.mapTipTemplate()
    # What the canvas showed at Run, in the layer's (raster's) CRS, computed by QGIS.
    canvas = iface.mapCanvas()
    to_layer = QgsCoordinateTransform(canvas.mapSettings().destinationCrs(), layer.crs(),
                                      QgsProject.instance())
    shown = to_layer.transformBoundingBox(QgsRectangle(*checks["canvas_extent"]))
    checks["shown_in_layer_crs"] = _rect(shown.intersect(state["raster"].extent()))
    checks["tile_size"] = state["tile_size"]


def _tile_rows(panel):
    """The rows under the tree's last heading (the tiles), as the view shows them."""
    proxy = panel.tree.proxy
    group = proxy.index(proxy.rowCount() - 1, 0)
    return [proxy.index(row, 0, group) for row in range(proxy.rowCount(group))]


def step_open_captions():
    dock = _dock()
    dock.tabs.setCurrentWidget(dock.captions_panel)
    panel = dock.captions_panel
    rows = _tile_rows(panel)
    checks["panel_rows"] = len(rows)
    checks["panel_first_items"] = [row.data() for row in rows[:3]]
    iface.mainWindow().activateWindow()
    panel.tree.setFocus(Qt.TabFocusReason)
    panel.tree.setCurrentIndex(rows[0])
    checks["center_before_keys"] = [iface.mapCanvas().center().x(), iface.mapCanvas().center().y()]


def _press(key):
    def step():
        panel = _dock().captions_panel
        QTest.keyClick(panel.tree, key)
    step.__name__ = f"press_{int(key)}"
    return step


def step_after_keys():
    panel = _dock().captions_panel
    canvas = iface.mapCanvas()
    entry = panel.current_entry()
    to_canvas = QgsCoordinateTransform(panel.layer.crs(), canvas.mapSettings().destinationCrs(),
                                       QgsProject.instance())
    centre = to_canvas.transform(entry.geometry.centroid().asPoint())
    checks["current_row"] = panel.tree.currentIndex().row()
    checks["current_text"] = entry.text()
    checks["tile_centre_in_canvas_crs"] = [centre.x(), centre.y()]
    checks["canvas_center"] = [canvas.center().x(), canvas.center().y()]
    checks["details"] = panel.details.text()
    # Copy caption, by keyboard: Tab from the list to the button, then Space.
    QApplication.clipboard().clear()
    QTest.keyClick(panel.copy_button, Qt.Key_Space)
    checks["clipboard"] = QApplication.clipboard().text()
    # Zoom in on the current tile until its caption label is drawn.
    labeling = panel.layer.labeling().settings()
    checks["label_max_scale"] = labeling.minimumScale
    canvas.zoomScale(labeling.minimumScale * 0.7)
    canvas.refresh()


def step_map_screenshot():
    iface.mainWindow().grab().save(str(SHOTS / "desktop-captioned-map.png"))
    _dock().grab().save(str(SHOTS / "desktop-captions-panel.png"))
    iface.mapCanvas().grab().save(str(SHOTS / "desktop-captioned-canvas.png"))
    checks["scale_for_screenshot"] = iface.mapCanvas().scale()


def _after_flashes():
    """The canvas is drawn and the tile flashes (a few hundred ms each) are over."""
    state.setdefault("idle_polls", 0)
    state["idle_polls"] = state["idle_polls"] + 1 if _canvas_idle() else 0
    return state["idle_polls"] >= 10  # 2 s of an idle canvas


run_steps([
    step_load_raster, step_web_mercator_middle, step_open_dock,
    Wait(lambda: _dock().engine_ready, 60_000, "the dock's engine check"),
    step_configure, step_screenshot_dock, step_click_run,
    Wait(_run_over, 120_000, "the captioning task"),
    # After a finished run the Captions tab describes the area and adds its regions layer.
    Wait(_described, 60_000, "the description of the captioned area"),
    step_results, step_open_captions,
    _press(Qt.Key_Down), _press(Qt.Key_Down), _press(Qt.Key_Down), step_after_keys,
    Wait(_after_flashes, 30_000, "the canvas to be drawn and the tile flashes to end"),
    step_map_screenshot,
])
