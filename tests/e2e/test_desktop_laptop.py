"""The dock on a laptop's screen: 1366 × 768, the real QGIS desktop under Xvfb, the dock opened
by its toolbar button where QGIS puts it. Run and Cancel must be on screen without scrolling
(they are below the scrolled form), the model is described in one line, and the dock says how
many tiles Run will caption and about how long. The screenshot is kept as
test-artifacts/dock-1366x768.png.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from desktop import REPO, install_plugin, require, run_desktop

STARTUP = Path(__file__).with_name("laptop_startup.py")
RGB_BYTE = REPO / "tests" / "data" / "RGB.byte.tif"
QGIS_TIMEOUT_S = 120
LAPTOP = (1366, 768)

pytestmark = [pytest.mark.desktop, pytest.mark.timeout(QGIS_TIMEOUT_S + 120)]


def test_run_is_on_a_1366_by_768_screen_without_scrolling(tmp_path, artifacts_dir):
    require("xvfb-run")
    require("qgis")
    profiles = install_plugin(tmp_path)
    raster = tmp_path / "RGB.byte.tif"
    shutil.copyfile(RGB_BYTE, raster)
    run = run_desktop(STARTUP, tmp_path=tmp_path, artifacts_dir=artifacts_dir,
                      name="desktop-laptop", profiles=profiles, timeout_s=QGIS_TIMEOUT_S,
                      screen=LAPTOP, variables={"MAPSCRIBE_E2E_RASTER": raster})
    checks, context = run.checks, run.context
    assert checks["screen"] == list(LAPTOP), context
    assert checks["window"][0] <= LAPTOP[0] and checks["window"][1] <= LAPTOP[1], context
    assert not checks["dock_floating"], context
    for button in ("run", "cancel", "status"):
        seen = checks[button]
        assert seen["shown"] and seen["fully_visible"], (button, seen, context)
        assert seen["inside_window"] and seen["inside_screen"], (button, seen, context)
    assert not checks["run_in_scroll_area"], context
    assert checks["form_width"][0] <= checks["form_width"][1], context  # nothing cut off
    assert checks["model_info"] == ("EfficientNet-Lite0 + LSTM, 1114 words, trained on UCM + "
                                    "RSICD at ~0.5 m; RSICD test BLEU-4 0.45"), context
    assert checks["estimate"].startswith("Run will caption "), context
    assert " tiles with PyTorch on the CPU: about " in checks["estimate"], context
    assert run.python_problems() == [], "Python errors/warnings in QGIS's message log" + context
    run.assert_screenshots("dock-1366x768.png", "dock-1366x768-dock.png")
