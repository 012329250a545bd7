"""Run inside the real QGIS desktop by tests/e2e/test_desktop.py (``qgis --code startup.py``).

It drives the installed MapScribe plugin through QGIS's own interface and plugin machinery:
clicks the toolbar button, uses the Raster menu entry, unloads and reloads the plugin twice
through qgis.utils, records what QGIS holds after each (with what preload.py captured) and saves
screenshots. qgis_steps.py runs the steps, writes the JSON result and exits QGIS.
"""

import os
import sys

# QGIS runs this file with exec(), without __file__: the test names this folder.
sys.path.insert(0, os.environ["MAPSCRIBE_E2E_DIR"])

import qgis.utils
from qgis.core import QgsApplication
from qgis.PyQt.QtWidgets import QAction, QDockWidget, QMenu, QToolBar
from qgis.utils import iface

from qgis_steps import SHOTS, checks, run_steps

PLUGIN = "mapscribe"


def _text(action_or_menu_title):
    return action_or_menu_title.replace("&", "").strip()


def _inventory():
    """Every MapScribe thing QGIS's main window, menus and registries hold right now."""
    main = iface.mainWindow()
    titled = [a for a in main.findChildren(QAction) if _text(a.text()) == "MapScribe"]
    raster_submenus = [a.menu() for a in iface.rasterMenu().actions()
                       if a.menu() is not None and _text(a.menu().title()) == "MapScribe"]
    raster_entries = [a.objectName() for menu in raster_submenus for a in menu.actions()]
    toolbars = main.findChildren(QToolBar, "MapScribeToolbar")
    docks = main.findChildren(QDockWidget, "MapScribeDock")
    return {
        "actions": len(main.findChildren(QAction, "mapscribeAction")),
        "actions_titled_MapScribe": len(titled),
        "toolbars": len(toolbars),
        "toolbars_shown": sum(t.isVisible() for t in toolbars),
        "docks": len(docks),
        "docks_visible": sum(d.isVisible() for d in docks),
        "menus_titled_MapScribe": len([m for m in main.findChildren(QMenu)
                                       if _text(m.title()) == "MapScribe"]),
        "raster_menu_entries": raster_entries,
        "provider": QgsApplication.processingRegistry().providerById(PLUGIN) is not None,
        "active": PLUGIN in qgis.utils.active_plugins,
        "module_loaded": PLUGIN in sys.modules,
    }


def _error_bar_items():
    # Errors while QGIS loaded the plugin (before this script ran) end up in the message bar.
    return [item.text() if hasattr(item, "text") else str(item.property("Error"))
            for item in iface.messageBar().items() if item.property("Error")]


def _action():
    return iface.mainWindow().findChild(QAction, "mapscribeAction")


def _toolbar_button():
    toolbar = iface.mainWindow().findChild(QToolBar, "MapScribeToolbar")
    return toolbar.widgetForAction(_action())


def step_at_start():
    module = sys.modules.get(PLUGIN)
    checks["plugin_file"] = getattr(module, "__file__", None)
    checks["error_bar_items"] = _error_bar_items()
    checks["at_start"] = _inventory()


def step_click_toolbar_button():
    _toolbar_button().click()  # a real button click, as a user's


def step_dock_shown_screenshot():
    checks["after_click"] = _inventory()
    checks["action_checked_after_click"] = _action().isChecked()
    iface.mainWindow().grab().save(str(SHOTS / "desktop-dock-open.png"))


def step_click_again_hides():
    _toolbar_button().click()


def step_hidden_then_menu():
    checks["after_second_click"] = _inventory()
    # The Raster > MapScribe entry is the same action: trigger it the way the menu does.
    submenu = next(a.menu() for a in iface.rasterMenu().actions()
                   if a.menu() is not None and _text(a.menu().title()) == "MapScribe")
    next(a for a in submenu.actions() if a.objectName() == "mapscribeAction").trigger()


def step_after_menu():
    checks["after_menu"] = _inventory()


def _unload():
    checks.setdefault("unloaded", []).append(qgis.utils.unloadPlugin(PLUGIN))


def _leftovers():
    checks.setdefault("after_unload", []).append(_inventory())


def _load():
    checks.setdefault("loaded", []).append(
        [qgis.utils.loadPlugin(PLUGIN), qgis.utils.startPlugin(PLUGIN)])


def _after_load():
    checks.setdefault("after_reload", []).append(_inventory())


def step_reloaded_dock_opens():
    _toolbar_button().click()


def step_final():
    checks["final"] = _inventory()
    checks["plugin_file_after_reload"] = getattr(sys.modules.get(PLUGIN), "__file__", None)
    iface.mainWindow().grab().save(str(SHOTS / "desktop-after-reload.png"))


STEPS = [step_at_start, step_click_toolbar_button, step_dock_shown_screenshot,
         step_click_again_hides, step_hidden_then_menu, step_after_menu,
         _unload, _leftovers, _load, _after_load,  # reload 1
         _unload, _leftovers, _load, _after_load,  # reload 2
         step_reloaded_dock_opens, step_final]


run_steps(STEPS)
