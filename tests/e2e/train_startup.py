"""Run inside the real QGIS desktop by tests/e2e/test_desktop_train.py (``qgis --code``).

Opens the training dialog through ``open_train_dialog(iface)``, picks the 8-image UCM sample,
presses "Check data", sets 2 epochs and a small decoder, presses Train, watches the progress
bar while the task runs, screenshots the dialog and presses "Use this model in the MapScribe
dock". qgis_steps.py runs the steps, writes what they saw to the JSON result and exits QGIS.
"""

import os
import sys

# QGIS runs this file with exec(), without __file__: the test names this folder.
sys.path.insert(0, os.environ["MAPSCRIBE_E2E_DIR"])

from pathlib import Path  # noqa: E402

from qgis.utils import iface  # noqa: E402
from qgis_steps import SHOTS, Wait, checks, repeat_while, run_steps  # noqa: E402

DATASET = os.environ["MAPSCRIBE_E2E_DATASET"]
MODEL = os.environ["MAPSCRIBE_E2E_MODEL"]
state = {}


def open_dialog():
    from mapscribe.plugin.train_dialog import open_train_dialog
    state["ready"] = []
    state["dialog"] = dialog = open_train_dialog(iface, on_model_ready=state["ready"].append)
    checks["torch_from"] = sys.modules["torch"].__file__
    checks["backbones"] = [dialog.backbone_combo.itemData(i)
                           for i in range(dialog.backbone_combo.count())]
    dialog.dataset_widget.setFilePath(DATASET)  # starts the first data check


def _not_checking():
    return not state["dialog"].is_checking()


def run_check_again():
    dialog = state["dialog"]
    dialog.check_button.click()  # the "Check data" button, pressed
    checks["checking_after_click"] = dialog.is_checking()


def set_parameters_and_train():
    dialog = state["dialog"]
    checks["summary"] = dialog.summary_view.toPlainText()
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
    checks["train_enabled"] = dialog.train_button.isEnabled()
    dialog.train_button.click()
    checks["training_after_click"] = dialog.is_training()
    state["progress_seen"] = []

    def record_progress():
        state["progress_seen"].append(dialog.progress_bar.value())

    repeat_while(dialog.is_training, record_progress, every_ms=250)


def trained():
    dialog = state["dialog"]
    chart = dialog.chart
    checks.update({
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
    checks["model_ready"] = state["ready"]
    dialog.close()


run_steps([
    open_dialog, Wait(_not_checking, 60_000, "the first data check"),
    run_check_again, Wait(_not_checking, 60_000, "the data check"),
    set_parameters_and_train,
    Wait(lambda: not state["dialog"].is_training(), 180_000, "the training task"),
    trained,
])
