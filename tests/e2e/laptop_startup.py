"""Run inside the real QGIS desktop by tests/e2e/test_desktop_laptop.py (``qgis --code``) on a
1366 × 768 screen, a common laptop's.

Load a raster, open the MapScribe dock with its toolbar button (docked on the right, as it
opens), let it load its engine, and look: is Run (and Cancel) on screen without scrolling, and
what does the dock say before Run? The main window's screenshot is kept.
"""

import os
import sys

# QGIS runs this file with exec(), without __file__: the test names this folder.
sys.path.insert(0, os.environ["MAPSCRIBE_E2E_DIR"])

from qgis.PyQt.QtCore import QPoint, QRect
from qgis.PyQt.QtWidgets import QApplication
from qgis.utils import iface

from dock_steps import click_toolbar_button
from dock_steps import dock as _dock
from qgis_steps import SHOTS, Wait, checks, run_steps

RASTER = os.environ["MAPSCRIBE_E2E_RASTER"]
state = {}


def step_load_and_open():
    window = iface.mainWindow()
    window.move(0, 0)  # Xvfb has no window manager to place it
    window.showMaximized()
    state["raster"] = iface.addRasterLayer(RASTER, "RGB.byte")
    click_toolbar_button()


def _on_screen(widget) -> dict:
    """Where ``widget`` is, and whether all of it is visible: not scrolled away, not clipped
    by its dock, inside the main window and the screen."""
    window = iface.mainWindow()
    top_left = widget.mapTo(window, QPoint(0, 0))
    rect = QRect(top_left, widget.size())
    visible = widget.visibleRegion().boundingRect()
    screen = QApplication.primaryScreen().geometry()
    return {"rect": [rect.x(), rect.y(), rect.width(), rect.height()],
            "shown": widget.isVisible(),
            "fully_visible": visible.size() == widget.size(),
            "inside_window": window.rect().contains(rect),
            "inside_screen": screen.contains(QRect(widget.mapToGlobal(QPoint(0, 0)),
                                                   widget.size()))}


def step_tile_size():
    # RGB.byte.tif has ~300 m pixels: the default model's 112 m tile would be under a pixel;
    # tiles of 128 of its pixels make a run the dock can plan.
    _dock().form.tile_size.setValue(128 * state["raster"].rasterUnitsPerPixelX())


def step_look():
    dock = _dock()
    window = iface.mainWindow()
    checks["screen"] = [QApplication.primaryScreen().geometry().width(),
                        QApplication.primaryScreen().geometry().height()]
    checks["window"] = [window.width(), window.height()]
    checks["dock_floating"] = dock.isFloating()
    checks["dock_size"] = [dock.width(), dock.height()]
    checks["run"] = _on_screen(dock.form.run_button)
    checks["cancel"] = _on_screen(dock.form.cancel_button)
    checks["status"] = _on_screen(dock.form.status)
    checks["run_in_scroll_area"] = dock.scroll.isAncestorOf(dock.form.run_button)
    checks["form_scrolls"] = dock.scroll.verticalScrollBar().maximum() > 0
    checks["form_width"] = [dock.form.width(), dock.scroll.viewport().width()]
    checks["model_info"] = dock.form.model_info.text()
    checks["estimate"] = dock.form.estimate.text()
    window.grab().save(str(SHOTS / "dock-1366x768.png"))
    dock.grab().save(str(SHOTS / "dock-1366x768-dock.png"))


run_steps([
    step_load_and_open,
    Wait(lambda: _dock() is not None and _dock().engine_ready, 60_000, "the dock's engine"),
    step_tile_size, step_look,
])
