"""Training in the real QGIS desktop under Xvfb.

QGIS starts with the venv's bin first on PATH (its Python then sees the venv, where
`pip install -e .` makes `mapscribe` importable) and runs train_startup.py, which opens the
training dialog through ``open_train_dialog(iface)``, picks the 8-image UCM sample, runs the
data check, sets 2 epochs and a small decoder, presses Train, waits for the task, screenshots
the dialog, presses "Use this model in the MapScribe dock" and writes what it saw to a JSON
file, which this test reads and asserts.
"""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from desktop import REPO, require, run_desktop

STARTUP = Path(__file__).with_name("train_startup.py")
SAMPLE = REPO / "tests" / "data" / "ucm-sample"
QGIS_TIMEOUT_S = 240

pytestmark = [pytest.mark.desktop, pytest.mark.timeout(QGIS_TIMEOUT_S + 60)]


def test_train_in_the_real_desktop(tmp_path, artifacts_dir):
    require("xvfb-run")
    require("qgis")
    model = tmp_path / "desktop-model.mscap"
    # No plugin in the profile: the dialog comes from the venv's `mapscribe`.
    run = run_desktop(
        STARTUP, tmp_path=tmp_path, artifacts_dir=artifacts_dir, name="desktop-train",
        profiles=tmp_path / "profiles", timeout_s=QGIS_TIMEOUT_S,
        variables={"MAPSCRIBE_E2E_DATASET": SAMPLE, "MAPSCRIBE_E2E_MODEL": model})
    checks, context = run.checks, run.context

    assert checks["torch_from"].startswith(str(Path(sys.executable).parents[1])), context
    assert checks["backbones"][0] == "auto" and "efficientnet_lite0" in checks["backbones"]
    assert checks["checking_after_click"], "the Check data button did not start a check" + context
    assert "train: 6 / 30" in checks["summary"] and "Problems: none" in checks["summary"]
    assert checks["train_enabled"] and checks["training_after_click"], context
    assert checks["outcome"] == "completed", context
    epochs = checks["epochs"]
    assert [e[0] for e in epochs] == [1, 2], "the chart did not get 2 epochs" + context
    assert all(value is not None for epoch in epochs for value in epoch), context
    assert checks["table_rows"] == 2 and checks["chart_text"].count("\n") == 1
    assert checks["model_exists"] and model.is_file()
    assert checks["progress"] == 100 and any(0 < p < 100 for p in checks["progress_seen"]), (
        "the progress bar never showed progress between 0 and 100" + context)
    assert checks["status"].startswith(f"Model written to {model}"), context
    assert checks["use_button_visible"] and checks["model_ready"] == [str(model)], context
    assert run.python_problems() == [], context
    run.assert_screenshots("desktop-train-dialog.png")
