"""The plugin in the real QGIS desktop under Xvfb, installed from the `make package` zip.

The zip is unpacked into a throw-away QGIS profile, exactly where QGIS's "Install from ZIP"
puts it, and enabled in that profile's QGIS3.ini. QGIS then starts with the venv's bin first on
PATH (so its Python sees the venv) and runs startup.py, which clicks the toolbar button,
uses the Raster menu entry, reloads the plugin twice through qgis.utils, screenshots the window
and writes what it saw to a JSON file. This test reads that file and asserts.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
import zipfile
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
STARTUP = Path(__file__).with_name("startup.py")
PRELOAD = Path(__file__).with_name("preload.py")
QGIS_TIMEOUT_S = 120

pytestmark = [pytest.mark.desktop, pytest.mark.timeout(QGIS_TIMEOUT_S + 60)]


def _require(program: str) -> str:
    path = shutil.which(program)
    # Not a skip: CI must not pass without the desktop test. make setup installs both.
    assert path, f"{program} is not installed: run `make setup` (it installs qgis and xvfb)"
    return path


def _install_plugin(tmp_path: Path) -> Path:
    """Build the zip and install it into a fresh profile folder; return the profiles path."""
    built = subprocess.run(
        ["make", "--no-print-directory", "package", f"DIST_DIR={tmp_path / 'dist'}",
         f"PACKAGE_ROOT={tmp_path / 'build'}"],
        cwd=REPO, capture_output=True, text=True, timeout=120)
    assert built.returncode == 0, f"make package failed:\n{built.stdout}\n{built.stderr}"
    (package,) = (tmp_path / "dist").glob("mapscribe-*.zip")
    profiles = tmp_path / "profiles-root"
    default = profiles / "profiles" / "default"
    with zipfile.ZipFile(package) as archive:
        archive.extractall(default / "python" / "plugins")
    (default / "QGIS").mkdir(parents=True)
    (default / "QGIS" / "QGIS3.ini").write_text("[PythonPlugins]\nmapscribe=true\n")
    return profiles


def _qgis_environment(tmp_path: Path, result: Path, shots: Path) -> dict[str, str]:
    env = dict(os.environ)
    # pytest-qgis points QGIS at its own settings folder and forces offscreen Qt, under which the
    # desktop crashes; PYTHONPATH/QGIS_PLUGINPATH could load another copy of the plugin.
    for name in ("QT_QPA_PLATFORM", "QGIS_CUSTOM_CONFIG_PATH", "QGIS_OPTIONS_PATH",
                 "QGIS_PLUGINPATH", "PYTHONPATH", "DISPLAY"):
        env.pop(name, None)
    # The venv's bin first (not resolved: it must be the venv, not /usr/bin) so QGIS's Python
    # uses the venv and its packages.
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
    env["HOME"] = str(tmp_path / "home")
    env["PYQGIS_STARTUP"] = str(PRELOAD)  # runs before QGIS loads plugins
    env["MAPSCRIBE_E2E_RESULT"] = str(result)
    env["MAPSCRIBE_E2E_SHOTS"] = str(shots)
    env["MAPSCRIBE_E2E_WATCHDOG_MS"] = str((QGIS_TIMEOUT_S - 20) * 1000)
    return env


def _run_qgis(command: list[str], env: dict[str, str]) -> tuple[int | None, str, float]:
    """Run QGIS in its own process group, killing the whole group (Xvfb too) on time-out."""
    started = time.monotonic()
    process = subprocess.Popen(command, env=env, stdout=subprocess.PIPE,
                               stderr=subprocess.STDOUT, text=True, start_new_session=True)
    try:
        output, _ = process.communicate(timeout=QGIS_TIMEOUT_S)
        code = process.returncode
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        output, _ = process.communicate()
        code = None
    return code, output, time.monotonic() - started


def test_plugin_in_the_real_desktop(tmp_path, artifacts_dir):
    _require("xvfb-run")
    _require("qgis")
    profiles = _install_plugin(tmp_path)
    result_path = tmp_path / "result.json"
    env = _qgis_environment(tmp_path, result_path, artifacts_dir)
    command = ["xvfb-run", "-a", "-s", "-screen 0 1600x1000x24", "qgis", "--nologo",
               "--noversioncheck", "--profiles-path", str(profiles), "--code", str(STARTUP)]
    code, output, seconds = _run_qgis(command, env)
    (artifacts_dir / "desktop-qgis-output.txt").write_text(output)

    recorded = result_path.read_text() if result_path.exists() else "(no result file)"
    # What a reader of any failure needs: QGIS's own output and everything startup.py saw.
    context = (f"\nQGIS exit code {code} after {seconds:.0f} s "
               f"({'killed at the time-out' if code is None else 'exited'})"
               f"\n--- QGIS output (last 6000 characters) ---\n{output[-6000:]}"
               f"\n--- {result_path.name} ---\n{recorded[-8000:]}")

    assert result_path.exists(), "startup.py wrote no result" + context
    result = json.loads(recorded)
    assert result["stack_dialogs"] == [], "QGIS reported Python errors (dialogs)" + context
    assert result["errors"] == [], f"startup.py failed: {result['errors']}" + context
    assert result["finished"] and code == 0, "QGIS did not finish cleanly" + context
    checks = result["checks"]

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
    assert checks["after_click"]["docks_visible"] == 1, "the toolbar button did not open the dock" + context
    assert checks["action_checked_after_click"], "the action is not checked with the dock open" + context
    assert checks["after_second_click"]["docks_visible"] == 0, "a second click did not close it" + context
    assert checks["after_menu"]["docks_visible"] == 1, "the Raster-menu entry did not open it" + context

    assert checks["unloaded"] == [True, True], "qgis.utils.unloadPlugin failed" + context
    nothing = {"actions": 0, "actions_titled_MapScribe": 0, "toolbars": 0, "toolbars_shown": 0,
               "docks": 0, "docks_visible": 0, "menus_titled_MapScribe": 0,
               "raster_menu_entries": [], "provider": False, "active": False,
               "module_loaded": False}
    assert checks["after_unload"] == [nothing, nothing], "unload left something behind" + context
    assert checks["loaded"] == [[True, True], [True, True]], "loadPlugin/startPlugin failed" + context
    # After each reload exactly what there was at start: one of each, nothing doubled.
    assert checks["after_reload"] == [at_start, at_start], "a reload differs from the first load" + context
    assert checks["final"]["docks_visible"] == 1, "the reloaded plugin's dock does not open" + context

    python_problems = [m for m in result["messages"]
                       if m["tag"] in ("Python error", "Python warning")
                       or ("mapscribe" in m["text"].lower() and m["level"] >= 1)]
    assert python_problems == [], "Python errors/warnings in QGIS's message log" + context
    assert (artifacts_dir / "desktop-dock-open.png").stat().st_size > 10_000, context
