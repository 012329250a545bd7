"""MapScribePlugin: what QGIS loads. It adds the MapScribe action, toolbar, Raster-menu entry,
dock and Processing provider, and takes every one of them away again in :meth:`unload`.

Start-up cost matters (QGIS imports every enabled plugin before showing its window), so this
module imports Qt and QGIS only; torch and the engine are imported when a job starts.
"""

from __future__ import annotations

import logging
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Optional

from qgis.core import QgsApplication
from qgis.PyQt.QtCore import Qt
from qgis.PyQt.QtGui import QIcon
from qgis.PyQt.QtWidgets import QAction

from .deps.managed import ensure_managed_path
from .tasks import MessageLogHandler
from .ui import tr

if TYPE_CHECKING:
    from .dock import MapScribeDock
    from .processing.provider import MapScribeProvider

LOGGER = logging.getLogger(__name__)

MENU_NAME = "MapScribe"  # the submenu of the Raster menu
ACTION_OBJECT_NAME = "mapscribeAction"
TRAIN_ACTION_OBJECT_NAME = "mapscribeTrainAction"
TOOLBAR_OBJECT_NAME = "MapScribeToolbar"
# plugin/plugin.py -> the plugin root, whatever the folder is called on disk.
ICON_PATH = Path(__file__).resolve().parents[1] / "resources" / "icon.svg"


def _use_managed_packages() -> None:
    """Put the folder where the dependency panel installs torch on sys.path (deps/managed.py),
    before anything imports torch."""
    try:
        ensure_managed_path()
    except Exception:
        LOGGER.exception("MapScribe's package folder could not be added to sys.path")


class MapScribePlugin:
    """The QGIS plugin object (created by ``classFactory(iface)``).

    QGIS calls :meth:`initProcessing` alone when only Processing is wanted (``qgis_process``,
    where ``iface`` is None), and :meth:`initGui` in the desktop. :meth:`unload` undoes both.
    """

    def __init__(self, iface) -> None:
        self.iface = iface
        self.provider: Optional["MapScribeProvider"] = None
        self.action: QAction | None = None
        self.toolbar = None
        self.dock: Optional["MapScribeDock"] = None
        self.train_action: QAction | None = None
        self.log_handler: MessageLogHandler | None = None

    # --- Processing -----------------------------------------------------------------------------
    def initProcessing(self) -> None:
        """Register the Processing provider, once however often this is called."""
        if self.provider is not None:
            return
        _use_managed_packages()
        # Imported here, not at the top: importing the plugin (QGIS does at start-up for every
        # enabled plugin) stays free of the engine and numpy until the plugin is set up.
        from .processing.provider import MapScribeProvider

        provider = MapScribeProvider()
        # addProvider takes ownership; on failure (an id already registered, e.g. by an instance
        # that was never unloaded) QGIS has already deleted the object, so keep no reference.
        if QgsApplication.processingRegistry().addProvider(provider):
            self.provider = provider
        else:
            LOGGER.warning("The MapScribe Processing provider could not be registered "
                           "(is another copy of the plugin loaded?)")

    # --- Desktop --------------------------------------------------------------------------------
    def initGui(self) -> None:
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
        # The engine's log records (warnings about the model's resolution, resumed runs…) go to
        # the "MapScribe" tab of QGIS's log panel.
        self.log_handler = MessageLogHandler(logging.INFO)
        self.log_handler.setFormatter(logging.Formatter("%(name)s: %(message)s"))
        engine_log = logging.getLogger("mapscribe")
        engine_log.addHandler(self.log_handler)
        if engine_log.level == logging.NOTSET:  # else Python's default drops INFO records
            engine_log.setLevel(logging.INFO)
            self.log_handler.set_logger_level = True

        from .dock import MapScribeDock

        self.dock = MapScribeDock(self.iface, main_window)
        self.iface.addDockWidget(Qt.DockWidgetArea.RightDockWidgetArea, self.dock)
        # Closed until asked for; QGIS restores a dock the user left open (by object name)
        # after plugins are loaded, so this does not override the user's choice.
        self.dock.hide()

        self.action = QAction(QIcon(str(ICON_PATH)), tr("MapScribe"), main_window)
        self.action.setObjectName(ACTION_OBJECT_NAME)
        self.action.setCheckable(True)
        self.action.setToolTip(tr("Show or hide the MapScribe captions panel"))
        self.action.setStatusTip(tr("Describe imagery in words: caption a raster tile by tile"))
        self.action.setWhatsThis(self.action.statusTip())
        # QGIS keeps the action checked exactly when the dock is open, also when the user closes
        # the dock with its own button, and raises the dock if it is tabbed behind another.
        self.dock.setToggleVisibilityAction(self.action)

        self.toolbar = self.iface.addToolBar(tr("MapScribe"))
        self.toolbar.setObjectName(TOOLBAR_OBJECT_NAME)
        self.toolbar.addAction(self.action)

        self.iface.addPluginToRasterMenu(MENU_NAME, self.action)

        # "Train captioner…": the dialog itself is built (and its module imported) when asked.
        self.train_action = QAction(tr("Train captioner…"), main_window)
        self.train_action.setObjectName(TRAIN_ACTION_OBJECT_NAME)
        self.train_action.setStatusTip(tr("Train an image captioner on an RSICD-format folder "
                                          "and use it in the MapScribe dock"))
        self.train_action.triggered.connect(self.dock.open_train_dialog)
        self.iface.addPluginToRasterMenu(MENU_NAME, self.train_action)

    def _raster_submenu(self):
        """The Raster-menu submenu holding our action, or None."""
        for entry in self.iface.rasterMenu().actions():
            if entry.menu() is not None and self.action in entry.menu().actions():
                return entry.menu()
        return None

    def unload(self) -> None:
        """Remove everything initGui and initProcessing added; safe after a partial init.

        A captioning run still going is cancelled first, and waited for (bounded) to the end of
        its batch, so that no task calls back into the widgets removed here."""
        if self.dock is not None:
            self.dock.shutdown()
        # Training dialogs exist only once one was opened (the module is then imported).
        train_dialog = sys.modules.get(f"{__package__}.training.dialog")
        if train_dialog is not None:
            train_dialog.close_all_train_dialogs()
        if self.action is not None:
            submenu = self._raster_submenu()
            if self.train_action is not None:
                self.iface.removePluginRasterMenu(MENU_NAME, self.train_action)
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
        if self.train_action is not None:
            self.train_action.deleteLater()
            self.train_action = None
        if self.log_handler is not None:
            engine_log = logging.getLogger("mapscribe")
            engine_log.removeHandler(self.log_handler)
            if getattr(self.log_handler, "set_logger_level", False):
                engine_log.setLevel(logging.NOTSET)
            self.log_handler = None
        if self.provider is not None:
            # removeProvider deletes the C++ object; the Python reference must go too.
            QgsApplication.processingRegistry().removeProvider(self.provider)
            self.provider = None
