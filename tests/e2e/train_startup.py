"""Run inside the real QGIS desktop by tests/e2e/test_desktop_train.py (``qgis --code``).

Opens the training dialog through ``open_train_dialog(iface)``, waits for its engine (loaded
off the main thread), picks the 8-image UCM sample, presses "Check data", sets 2 epochs and a
small decoder, presses Train, watches the progress bar while the task runs, screenshots the
dialog and presses "Use this model in the MapScribe dock". qgis_steps.py runs the steps, writes
what they saw to the JSON result and exits QGIS.
"""

import os
import sys

# QGIS runs this file with exec(), without __file__: the test names this folder.
sys.path.insert(0, os.environ["MAPSCRIBE_E2E_DIR"])

from pathlib import Path

from qgis.utils import iface

from qgis_steps import SHOTS, Wait, checks, repeat_while, run_steps

DATASET = os.environ["MAPSCRIBE_E2E_DATASET"]
MODEL = os.environ["MAPSCRIBE_E2E_MODEL"]
state = {}


def open_dialog():
    from mapscribe.plugin.training.dialog import open_train_dialog
    state["ready"] = []
    # The dialog opens at once; the engine (torch) loads on a worker thread for its lists.
    state["dialog"] = open_train_dialog(iface, on_model_ready=state["ready"].append)
    checks["engine_ready_at_open"] = state["dialog"].engine_ready


def _engine_ready():
    return state["dialog"].engine_ready


def choose_dataset():
    dialog = state["dialog"]
    checks["torch_from"] = sys.modules["torch"].__file__
    checks["backbones"] = [dialog.form.backbone_combo.itemData(i)
                           for i in range(dialog.form.backbone_combo.count())]
    dialog.form.dataset_widget.setFilePath(DATASET)  # starts the first data check


def _not_checking():
    return not state["dialog"].is_checking()


def run_check_again():
    dialog = state["dialog"]
    dialog.form.check_button.click()  # the "Check data" button, pressed
    checks["checking_after_click"] = dialog.is_checking()


def set_parameters_and_train():
    dialog = state["dialog"]
    checks["summary"] = dialog.form.summary_view.toPlainText()
    dialog.form.backbone_combo.setCurrentIndex(dialog.form.backbone_combo.findData("efficientnet_lite0"))
    dialog.form.epochs_spin.setValue(2)
    dialog.form.lr_edit.setText("0.005")
    dialog.form.batch_spin.setValue(4)
    dialog.form.advanced_box.setCollapsed(False)
    dialog.form.embed_spin.setValue(16)
    dialog.form.hidden_spin.setValue(32)
    dialog.form.attention_spin.setValue(16)
    dialog.form.dropout_spin.setValue(0.1)
    dialog.form.min_count_spin.setValue(1)
    dialog.form.output_widget.setFilePath(MODEL)
    checks["train_enabled"] = dialog.form.train_button.isEnabled()
    dialog.form.train_button.click()
    checks["training_after_click"] = dialog.is_training()
    state["progress_seen"] = []

    def record_progress():
        state["progress_seen"].append(dialog.form.progress_bar.value())

    repeat_while(dialog.is_training, record_progress, every_ms=250)


def trained():
    dialog = state["dialog"]
    chart = dialog.form.chart
    checks.update({
        "outcome": dialog.last_outcome,
        "status": dialog.form.status_label.text(),
        "epochs": [[p.epoch, p.train_loss, p.val_loss, p.bleu4, p.cider_d]
                   for p in chart.epochs()],
        "table_rows": chart.table.rowCount(),
        "chart_text": chart.as_text(),
        "progress": dialog.form.progress_bar.value(),
        "progress_seen": state["progress_seen"],
        "model_exists": Path(MODEL).is_file(),
        "use_button_visible": dialog.form.use_button.isVisible(),
    })
    dialog.grab().save(str(SHOTS / "desktop-train-dialog.png"))
    iface.mainWindow().grab().save(str(SHOTS / "desktop-train-window.png"))
    dialog.form.use_button.click()
    checks["model_ready"] = state["ready"]
    dialog.close()


run_steps([
    open_dialog, Wait(_engine_ready, 60_000, "the engine's backbone and device lists"),
    choose_dataset, Wait(_not_checking, 60_000, "the first data check"),
    run_check_again, Wait(_not_checking, 60_000, "the data check"),
    set_parameters_and_train,
    Wait(lambda: not state["dialog"].is_training(), 180_000, "the training task"),
    trained,
])
