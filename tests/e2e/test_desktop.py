"""The plugin in the real QGIS desktop under Xvfb, installed from the `make package` zip.

The zip is unpacked into a throw-away QGIS profile, exactly where QGIS's "Install from ZIP"
puts it, and enabled in that profile's QGIS3.ini. QGIS then starts with the venv's bin first on
PATH (so its Python sees the venv) and runs startup.py, which clicks the toolbar button,
uses the Raster menu entry, reloads the plugin twice through qgis.utils, screenshots the window
and writes what it saw to a JSON file. This test reads that file and asserts.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from desktop import install_plugin, require, run_desktop

STARTUP = Path(__file__).with_name("startup.py")
QGIS_TIMEOUT_S = 120

pytestmark = [pytest.mark.desktop, pytest.mark.timeout(QGIS_TIMEOUT_S + 60)]


def test_plugin_in_the_real_desktop(tmp_path, artifacts_dir):
    require("xvfb-run")
    require("qgis")
    profiles = install_plugin(tmp_path)
    run = run_desktop(STARTUP, tmp_path=tmp_path, artifacts_dir=artifacts_dir, name="desktop",
                      profiles=profiles, timeout_s=QGIS_TIMEOUT_S)
    checks, context = run.checks, run.context

    installed = profiles / "profiles" / "default" / "python" / "plugins" / "mapscribe"
    for key in ("plugin_file", "plugin_file_after_reload"):
        assert Path(checks[key]).parent == installed, (
            f"QGIS ran {checks[key]}, not the copy installed from the zip" + context)
    assert checks["error_bar_items"] == [], "errors in QGIS's message bar" + context

    at_start = checks["at_start"]
    assert at_start["active"], "mapscribe is not in qgis.utils.active_plugins" + context
    assert at_start["provider"], "no Processing provider 'mapscribe'" + context
    assert (at_start["actions"], at_start["toolbars"], at_start["docks"]) == (1, 1, 1), (
        "expected one action, one toolbar and one dock" + context)
    assert at_start["toolbars_shown"] == 1, "the MapScribe toolbar is not shown" + context
    assert at_start["raster_menu_entries"] == ["mapscribeAction", "mapscribeTrainAction"], \
        "Raster > MapScribe" + context
    assert at_start["docks_visible"] == 0, "the dock must start closed" + context
    assert checks["after_click"]["docks_visible"] == 1, (
        "the toolbar button did not open the dock" + context)
    assert checks["action_checked_after_click"], (
        "the action is not checked with the dock open" + context)
    assert checks["after_second_click"]["docks_visible"] == 0, (
        "a second click did not close it" + context)
    assert checks["after_menu"]["docks_visible"] == 1, (
        "the Raster-menu entry did not open it" + context)

    assert checks["unloaded"] == [True, True], "qgis.utils.unloadPlugin failed" + context
    nothing = {"actions": 0, "actions_titled_MapScribe": 0, "toolbars": 0, "toolbars_shown": 0,
               "docks": 0, "docks_visible": 0, "menus_titled_MapScribe": 0,
               "raster_menu_entries": [], "provider": False, "active": False,
               "module_loaded": False}
    assert checks["after_unload"] == [nothing, nothing], "unload left something behind" + context
    assert checks["loaded"] == [[True, True], [True, True]], (
        "loadPlugin/startPlugin failed" + context)
    # After each reload exactly what there was at start: one of each, nothing doubled.
    assert checks["after_reload"] == [at_start, at_start], (
        "a reload differs from the first load" + context)
    assert checks["final"]["docks_visible"] == 1, (
        "the reloaded plugin's dock does not open" + context)

    assert run.python_problems(mapscribe_warnings=True) == [], (
        "Python errors/warnings in QGIS's message log" + context)
    run.assert_screenshots("desktop-dock-open.png")
