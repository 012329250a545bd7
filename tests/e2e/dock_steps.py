"""What the startup scripts run by QGIS (``qgis --code``) do with the MapScribe dock, written
once: find it, open it as a user does (a click on its toolbar button), know when a run is over,
know when the canvas is drawn."""

from qgis.core import QgsProject
from qgis.PyQt.QtWidgets import QDockWidget, QToolBar
from qgis.utils import iface


def dock():
    return iface.mainWindow().findChild(QDockWidget, "MapScribeDock")


def click_toolbar_button() -> None:
    toolbar = iface.mainWindow().findChild(QToolBar, "MapScribeToolbar")
    action = next(a for a in toolbar.actions() if a.objectName() == "mapscribeAction")
    toolbar.widgetForAction(action).click()  # a real click on the toolbar button


def run_over() -> bool:
    """The dock started a task and it has ended."""
    widget = dock()
    return widget.last_task is not None and not widget.is_running()


def canvas_idle() -> bool:
    return not iface.mapCanvas().isDrawing()


def mapscribe_layers() -> list:
    """The layers of the project's "MapScribe" group, in the group's order."""
    group = QgsProject.instance().layerTreeRoot().findGroup("MapScribe")
    return [node.layer() for node in group.findLayers()] if group else []


def captions_layer(layers: list):
    """The captions layer among ``layers``: the one with tile ids (a regions layer, which
    describing adds to the group after a run, has none), or None."""
    return next((layer for layer in layers if layer.fields().indexOf("tile_id") >= 0), None)
