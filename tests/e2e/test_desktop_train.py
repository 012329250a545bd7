"""Training in the real QGIS desktop under Xvfb.

QGIS starts with the venv's bin first on PATH (its Python then sees the venv, where
`pip install -e .` makes `mapscribe` importable) and runs a startup script written by this
test. The script opens the training dialog through ``open_train_dialog(iface)``, picks the
8-image UCM sample, runs the data check, sets 2 epochs and a small decoder, presses Train,
waits for the task, screenshots the dialog, presses "Use this model in the MapScribe dock" and
writes what it saw to a JSON file, which this test reads and asserts.
"""

from __future__ import annotations

import json
import os
import signal
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
PRELOAD = Path(__file__).with_name("preload.py")
SAMPLE = REPO / "tests" / "data" / "ucm-sample"
QGIS_TIMEOUT_S = 240

pytestmark = [pytest.mark.desktop, pytest.mark.timeout(QGIS_TIMEOUT_S + 60)]

STARTUP = r'''
import json, os, sys, traceback
from pathlib import Path

import qgis.utils
from qgis.core import QgsApplication
from qgis.PyQt.QtCore import QTimer
from qgis.utils import iface

RESULT = Path(os.environ["MAPSCRIBE_E2E_RESULT"])
SHOTS = Path(os.environ["MAPSCRIBE_E2E_SHOTS"])
DATASET = os.environ["MAPSCRIBE_E2E_DATASET"]
MODEL = os.environ["MAPSCRIBE_E2E_MODEL"]
captured = getattr(qgis.utils, "mapscribe_e2e_captured", {"messages": [], "stack_dialogs": []})
result = {"checks": {}, "errors": [], "finished": False, "steps": [],
          "messages": captured["messages"], "stack_dialogs": captured["stack_dialogs"]}
state = {}


def finish(code):
    if state.get("done"):
        return
    state["done"] = True
    RESULT.write_text(json.dumps(result, indent=2))
    QgsApplication.exit(code)


def guarded(step):
    def run():
        result["steps"].append(step.__name__)
        try:
            step()
        except Exception:
            result["errors"].append(f"{step.__name__}: {traceback.format_exc()}")
            finish(1)
    return run


def wait_then(condition, step, timeout_ms, what):
    started = {"t": 0}
    def poll():
        if condition():
            guarded(step)()
        elif started["t"] > timeout_ms:
            result["errors"].append(f"timed out waiting for {what}")
            finish(2)
        else:
            started["t"] += 200
            QTimer.singleShot(200, poll)
    QTimer.singleShot(200, poll)


def open_dialog():
    from mapscribe.plugin.train_dialog import open_train_dialog
    state["ready"] = []
    state["dialog"] = dialog = open_train_dialog(iface, on_model_ready=state["ready"].append)
    result["checks"]["torch_from"] = sys.modules["torch"].__file__
    result["checks"]["backbones"] = [dialog.backbone_combo.itemData(i)
                                     for i in range(dialog.backbone_combo.count())]
    dialog.dataset_widget.setFilePath(DATASET)
    wait_then(lambda: not dialog.is_checking(), run_check_again, 60000, "the first data check")


def run_check_again():
    dialog = state["dialog"]
    dialog.check_button.click()  # the "Check data" button, pressed
    result["checks"]["checking_after_click"] = dialog.is_checking()
    wait_then(lambda: not dialog.is_checking(), set_parameters, 60000, "the data check")


def set_parameters():
    dialog = state["dialog"]
    result["checks"]["summary"] = dialog.summary_view.toPlainText()
    dialog.backbone_combo.setCurrentIndex(dialog.backbone_combo.findData("efficientnet_lite0"))
    dialog.epochs_spin.setValue(2)
    dialog.lr_edit.setText("0.005")
    dialog.batch_spin.setValue(4)
    dialog.advanced_box.setCollapsed(False)
    dialog.embed_spin.setValue(16)
    dialog.hidden_spin.setValue(32)
    dialog.attention_spin.setValue(16)
    dialog.dropout_spin.setValue(0.1)
    dialog.min_count_spin.setValue(1)
    dialog.output_widget.setFilePath(MODEL)
    result["checks"]["train_enabled"] = dialog.train_button.isEnabled()
    dialog.train_button.click()
    result["checks"]["training_after_click"] = dialog.is_training()
    state["progress_seen"] = []
    watch_progress()
    wait_then(lambda: not dialog.is_training(), trained, 180000, "the training task")


def watch_progress():
    dialog = state["dialog"]
    if dialog.is_training():
        state["progress_seen"].append(dialog.progress_bar.value())
        QTimer.singleShot(250, watch_progress)


def trained():
    dialog = state["dialog"]
    chart = dialog.chart
    result["checks"].update({
        "outcome": dialog.last_outcome,
        "status": dialog.status_label.text(),
        "epochs": [[p.epoch, p.train_loss, p.val_loss, p.bleu4, p.cider_d]
                   for p in chart.epochs()],
        "table_rows": chart.table.rowCount(),
        "chart_text": chart.as_text(),
        "progress": dialog.progress_bar.value(),
        "progress_seen": state["progress_seen"],
        "model_exists": Path(MODEL).is_file(),
        "use_button_visible": dialog.use_button.isVisible(),
    })
    dialog.grab().save(str(SHOTS / "desktop-train-dialog.png"))
    iface.mainWindow().grab().save(str(SHOTS / "desktop-train-window.png"))
    dialog.use_button.click()
    result["checks"]["model_ready"] = state["ready"]
    dialog.close()
    result["finished"] = True
    QTimer.singleShot(300, lambda: finish(0))


def watchdog():
    result["errors"].append("watchdog: QGIS still running")
    finish(3)


SHOTS.mkdir(parents=True, exist_ok=True)
iface.mainWindow().resize(1600, 1000)
QTimer.singleShot(int(os.environ["MAPSCRIBE_E2E_WATCHDOG_MS"]), watchdog)
QTimer.singleShot(1000, guarded(open_dialog))
'''


def _require(program: str) -> str:
    path = shutil.which(program)
    assert path, f"{program} is not installed: run `make setup` (it installs qgis and xvfb)"
    return path


def _run_qgis(command, env):
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


def test_train_in_the_real_desktop(tmp_path, artifacts_dir):
    _require("xvfb-run")
    _require("qgis")
    startup = tmp_path / "startup_train.py"
    startup.write_text(STARTUP)
    result_path, model = tmp_path / "result.json", tmp_path / "desktop-model.mscap"
    env = dict(os.environ)
    for name in ("QT_QPA_PLATFORM", "QGIS_CUSTOM_CONFIG_PATH", "QGIS_OPTIONS_PATH",
                 "QGIS_PLUGINPATH", "PYTHONPATH", "DISPLAY"):
        env.pop(name, None)
    env.update({
        "PATH": f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}",
        "HOME": str(tmp_path / "home"), "PYQGIS_STARTUP": str(PRELOAD),
        "MAPSCRIBE_E2E_RESULT": str(result_path), "MAPSCRIBE_E2E_SHOTS": str(artifacts_dir),
        "MAPSCRIBE_E2E_DATASET": str(SAMPLE), "MAPSCRIBE_E2E_MODEL": str(model),
        "MAPSCRIBE_E2E_WATCHDOG_MS": str((QGIS_TIMEOUT_S - 20) * 1000)})
    command = ["xvfb-run", "-a", "-s", "-screen 0 1600x1000x24", "qgis", "--nologo",
               "--noversioncheck", "--profiles-path", str(tmp_path / "profiles"),
               "--code", str(startup)]
    code, output, seconds = _run_qgis(command, env)
    (artifacts_dir / "desktop-train-qgis-output.txt").write_text(output)
    recorded = result_path.read_text() if result_path.exists() else "(no result file)"
    context = (f"\nQGIS exit code {code} after {seconds:.0f} s\n--- QGIS output ---\n"
               f"{output[-6000:]}\n--- result ---\n{recorded[-8000:]}")
    assert result_path.exists(), "the startup script wrote no result" + context
    result = json.loads(recorded)
    assert result["stack_dialogs"] == [], "QGIS reported Python errors" + context
    assert result["errors"] == [], context
    assert result["finished"] and code == 0, context
    checks = result["checks"]

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
    python_errors = [m for m in result["messages"] if m["tag"] in ("Python error",
                                                                  "Python warning")]
    assert python_errors == [], context
    assert (artifacts_dir / "desktop-train-dialog.png").stat().st_size > 10_000
