"""MapScribePlugin: what QGIS loads. It adds the MapScribe action, toolbar, Raster-menu entry,
dock and Processing provider, and takes every one of them away again in :meth:`unload`.

Start-up cost matters (QGIS imports every enabled plugin before showing its window), so this
module imports Qt and QGIS only; torch and the engine are imported when a job starts.
"""

from __future__ import annotations

import logging
from pathlib import Path

from qgis.core import QgsApplication
from qgis.PyQt.QtCore import QCoreApplication, Qt
from qgis.PyQt.QtGui import QIcon
from qgis.PyQt.QtWidgets import QAction

from .dock import MapScribeDock
from .processing.provider import MapScribeProvider

LOGGER = logging.getLogger(__name__)

MENU_NAME = "MapScribe"  # the submenu of the Raster menu
ACTION_OBJECT_NAME = "mapscribeAction"
TOOLBAR_OBJECT_NAME = "MapScribeToolbar"
# plugin/plugin.py -> the plugin root, whatever the folder is called on disk.
ICON_PATH = Path(__file__).resolve().parents[1] / "resources" / "icon.svg"


def _tr(text: str) -> str:
    return QCoreApplication.translate("MapScribePlugin", text)


class MapScribePlugin:
    """The QGIS plugin object (created by ``classFactory(iface)``).

    QGIS calls :meth:`initProcessing` alone when only Processing is wanted (``qgis_process``,
    where ``iface`` is None), and :meth:`initGui` in the desktop. :meth:`unload` undoes both.
    """

    def __init__(self, iface) -> None:
        self.iface = iface
        self.provider: MapScribeProvider | None = None
        self.action: QAction | None = None
        self.toolbar = None
        self.dock: MapScribeDock | None = None

    # --- Processing -----------------------------------------------------------------------------
    def initProcessing(self) -> None:  # noqa: N802 (QGIS API name)
        """Register the Processing provider, once however often this is called."""
        if self.provider is not None:
            return
        provider = MapScribeProvider()
        # addProvider takes ownership; on failure (an id already registered, e.g. by an instance
        # that was never unloaded) QGIS has already deleted the object, so keep no reference.
        if QgsApplication.processingRegistry().addProvider(provider):
            self.provider = provider
        else:
            LOGGER.warning("The MapScribe Processing provider could not be registered "
                           "(is another copy of the plugin loaded?)")

    # --- Desktop --------------------------------------------------------------------------------
    def initGui(self) -> None:  # noqa: N802 (QGIS API name)
        """Add the action (toolbar button and Raster-menu entry) and the hidden dock."""
        try:
            self._add_gui()
        except Exception:
            # QGIS never calls unload() after a failed initGui(): take back what was added.
            self.unload()
            raise

    def _add_gui(self) -> None:
        # QGIS calls initProcessing only where there is no GUI; in the desktop it is ours to do.
        self.initProcessing()
        main_window = self.iface.mainWindow()

        self.dock = MapScribeDock(main_window)
        self.iface.addDockWidget(Qt.RightDockWidgetArea, self.dock)
        # Closed until asked for; QGIS restores a dock the user left open (by object name)
        # after plugins are loaded, so this does not override the user's choice.
        self.dock.hide()

        self.action = QAction(QIcon(str(ICON_PATH)), _tr("MapScribe"), main_window)
        self.action.setObjectName(ACTION_OBJECT_NAME)
        self.action.setCheckable(True)
        self.action.setToolTip(_tr("Show or hide the MapScribe captions panel"))
        self.action.setStatusTip(_tr("Describe imagery in words: caption a raster tile by tile"))
        self.action.setWhatsThis(self.action.statusTip())
        # QGIS keeps the action checked exactly when the dock is open, also when the user closes
        # the dock with its own button, and raises the dock if it is tabbed behind another.
        self.dock.setToggleVisibilityAction(self.action)

        self.toolbar = self.iface.addToolBar(_tr("MapScribe"))
        self.toolbar.setObjectName(TOOLBAR_OBJECT_NAME)
        self.toolbar.addAction(self.action)

        self.iface.addPluginToRasterMenu(MENU_NAME, self.action)

    def _raster_submenu(self):
        """The Raster-menu submenu holding our action, or None."""
        for entry in self.iface.rasterMenu().actions():
            if entry.menu() is not None and self.action in entry.menu().actions():
                return entry.menu()
        return None

    def unload(self) -> None:
        """Remove everything initGui and initProcessing added; safe after a partial init."""
        if self.action is not None:
            submenu = self._raster_submenu()
            self.iface.removePluginRasterMenu(MENU_NAME, self.action)
            # QGIS 3.22 takes an emptied plugin submenu out of the Raster menu but never deletes
            # the QMenu itself, so every reload would leave one more hidden "MapScribe" menu in
            # the main window. QGIS finds submenus only through the Raster menu's actions, so a
            # submenu that is no longer there is referenced by nothing and can go.
            if (submenu is not None and not submenu.actions()
                    and submenu.menuAction() not in self.iface.rasterMenu().actions()):
                submenu.deleteLater()
        if self.toolbar is not None:
            self.iface.mainWindow().removeToolBar(self.toolbar)
            self.toolbar.deleteLater()
            self.toolbar = None
        if self.dock is not None:
            self.iface.removeDockWidget(self.dock)
            self.dock.deleteLater()
            self.dock = None
        if self.action is not None:
            self.action.deleteLater()
            self.action = None
        if self.provider is not None:
            # removeProvider deletes the C++ object; the Python reference must go too.
            QgsApplication.processingRegistry().removeProvider(self.provider)
            self.provider = None
