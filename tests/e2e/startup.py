"""Run inside the real QGIS desktop by tests/e2e/test_desktop.py (``qgis --code startup.py``).

It drives the installed MapScribe plugin through QGIS's own interface and plugin machinery,
records every check, with what preload.py captured, in a JSON file (MAPSCRIBE_E2E_RESULT),
saves screenshots (into MAPSCRIBE_E2E_SHOTS) and exits QGIS. It never asserts: a failed check is data for the test to report, and an
exception is caught and written down, so QGIS always exits and the test always has a file to
read. Steps run one QTimer tick apart so that QGIS's event loop really runs between them
(painting, and deleteLater() of what unload() removed).
"""

import json
import os
import sys
import traceback
from pathlib import Path

import qgis.utils
from qgis.core import QgsApplication
from qgis.PyQt.QtCore import QTimer
from qgis.PyQt.QtWidgets import QAction, QDockWidget, QMenu, QToolBar
from qgis.utils import iface

PLUGIN = "mapscribe"
RESULT_PATH = Path(os.environ["MAPSCRIBE_E2E_RESULT"])
SHOTS = Path(os.environ["MAPSCRIBE_E2E_SHOTS"])
STEP_MS = 300
WATCHDOG_MS = int(os.environ.get("MAPSCRIBE_E2E_WATCHDOG_MS", "90000"))

# preload.py (PYQGIS_STARTUP) has recorded the message log and any error dialog since before
# the plugins were loaded; without it a plugin-load error would have hung QGIS in a dialog.
_captured = getattr(qgis.utils, "mapscribe_e2e_captured", None)
result = {"steps": [], "checks": {}, "errors": [], "finished": False,
          "messages": _captured["messages"] if _captured else [],
          "stack_dialogs": _captured["stack_dialogs"] if _captured else []}
if _captured is None:
    result["errors"].append("preload.py did not run (PYQGIS_STARTUP): early errors not seen")


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
    result["checks"]["plugin_file"] = getattr(module, "__file__", None)
    result["checks"]["error_bar_items"] = _error_bar_items()
    result["checks"]["at_start"] = _inventory()


def step_click_toolbar_button():
    _toolbar_button().click()  # a real button click, as a user's


def step_dock_shown_screenshot():
    result["checks"]["after_click"] = _inventory()
    result["checks"]["action_checked_after_click"] = _action().isChecked()
    iface.mainWindow().grab().save(str(SHOTS / "desktop-dock-open.png"))


def step_click_again_hides():
    _toolbar_button().click()


def step_hidden_then_menu():
    result["checks"]["after_second_click"] = _inventory()
    # The Raster > MapScribe entry is the same action: trigger it the way the menu does.
    submenu = next(a.menu() for a in iface.rasterMenu().actions()
                   if a.menu() is not None and _text(a.menu().title()) == "MapScribe")
    next(a for a in submenu.actions() if a.objectName() == "mapscribeAction").trigger()


def step_after_menu():
    result["checks"]["after_menu"] = _inventory()


def _unload():
    result["checks"].setdefault("unloaded", []).append(qgis.utils.unloadPlugin(PLUGIN))


def _leftovers():
    result["checks"].setdefault("after_unload", []).append(_inventory())


def _load():
    result["checks"].setdefault("loaded", []).append(
        [qgis.utils.loadPlugin(PLUGIN), qgis.utils.startPlugin(PLUGIN)])


def _after_load():
    result["checks"].setdefault("after_reload", []).append(_inventory())


def step_reloaded_dock_opens():
    _toolbar_button().click()


def step_final():
    result["checks"]["final"] = _inventory()
    result["checks"]["plugin_file_after_reload"] = getattr(sys.modules.get(PLUGIN), "__file__", None)
    iface.mainWindow().grab().save(str(SHOTS / "desktop-after-reload.png"))


STEPS = [step_at_start, step_click_toolbar_button, step_dock_shown_screenshot,
         step_click_again_hides, step_hidden_then_menu, step_after_menu,
         _unload, _leftovers, _load, _after_load,  # reload 1
         _unload, _leftovers, _load, _after_load,  # reload 2
         step_reloaded_dock_opens, step_final]


_done = []


def _finish(code):
    if _done:  # the watchdog may fire while QGIS is already shutting down
        return
    _done.append(code)
    RESULT_PATH.write_text(json.dumps(result, indent=2))
    QgsApplication.exit(code)


def _run(index=0):
    if index == len(STEPS):
        result["finished"] = True
        _finish(0)
        return
    step = STEPS[index]
    result["steps"].append(step.__name__)
    try:
        step()
    except Exception:  # written down for the test to show, and QGIS still exits
        result["errors"].append(f"{step.__name__}: {traceback.format_exc()}")
        _finish(1)
        return
    QTimer.singleShot(STEP_MS, lambda: _run(index + 1))


def _watchdog():
    result["errors"].append(f"watchdog: still running after {WATCHDOG_MS} ms "
                            f"(last step {result['steps'][-1:]})")
    _finish(2)


SHOTS.mkdir(parents=True, exist_ok=True)
iface.mainWindow().resize(1600, 1000)
QTimer.singleShot(WATCHDOG_MS, _watchdog)
QTimer.singleShot(1000, _run)
