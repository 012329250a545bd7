"""The training dialog against pytest-qgis's QGIS: accessible widgets, the data check (real
engine, real folders), parameters gathered into TrainCaptionerParams, and a real training of the
8-image UCM sample that is cancelled after its first epoch and then resumed to the end.
"""

from __future__ import annotations

import re
import time
from pathlib import Path

import pytest
from pytest_qgis.utils import process_events
from qgis.PyQt import sip
from qgis.PyQt.QtCore import Qt
from qgis.PyQt.QtWidgets import QAbstractButton, QLabel, QPushButton, QWidget

from mapscribe.model import TrainCaptionerParams, checkpoint_path_for
from mapscribe.model.nn.backbones import BACKBONES
from mapscribe.plugin.training import dialog as train_dialog
from mapscribe.plugin.training.dialog import open_train_dialog
from mapscribe.plugin.training.live_chart import EpochPoint
from mapscribe.plugin.ui import ParameterError

REPO = Path(__file__).resolve().parents[2]
SAMPLE = REPO / "tests" / "data" / "ucm-sample"


def _wait(condition, seconds: float, what: str) -> None:
    deadline = time.monotonic() + seconds
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        process_events()
        time.sleep(0.02)


@pytest.fixture
def dialog(qgis_iface):
    ready = []
    opened = open_train_dialog(qgis_iface, on_model_ready=ready.append)
    opened.models_ready = ready
    _wait(lambda: opened.engine_ready, 60, "the engine's backbone and device lists")
    yield opened
    if opened.is_training():
        opened.cancel_training()
        _wait(lambda: not opened.is_training(), 120, "the cancelled training to end")
    _wait(lambda: not opened.is_checking(), 60, "the data check to end")
    if not sip.isdeleted(opened):
        opened.close()
    process_events()


def _checked(dialog, folder: Path) -> None:
    dialog.form.dataset_widget.setFilePath(str(folder))  # starts the data check
    _wait(lambda: not dialog.is_checking(), 60, "the data check")


def test_widgets_are_accessible_and_lists_come_from_the_engine(dialog):
    assert not dialog.isModal() and dialog.isVisible()
    assert train_dialog._OPEN_DIALOGS == [dialog]
    backbones = dialog.form.backbone_combo
    names = [backbones.itemData(i) for i in range(backbones.count())]
    assert names == ["auto", *BACKBONES]
    assert dialog.form.device_combo.itemData(0) == "auto"
    assert dialog.form.device_combo.itemData(dialog.form.device_combo.count() - 1) == "cpu"
    dialog.form.advanced_box.setCollapsed(False)
    unnamed = [w.objectName() or repr(w) for w in dialog.findChildren(QWidget)
               if w.focusPolicy() != Qt.NoFocus and w.isVisibleTo(dialog)
               and not w.accessibleName()
               and w.parent() is not None and "qt_" not in w.objectName()]
    assert unnamed == [], f"widgets without an accessible name: {unnamed}"
    # The advanced section has arcgis.learn's names, and starts collapsed on a new dialog.
    form = dialog.form
    assert [form.embed_spin.accessibleName(), form.hidden_spin.accessibleName(),
            form.attention_spin.accessibleName(), form.teacher_spin.accessibleName(),
            form.dropout_spin.accessibleName(), form.embedding_widget.accessibleName()] == [
        "embed_size", "hidden_size", "attention_size", "teacher_forcing", "dropout",
        "pretrained_emb"]
    # Every Alt+letter shortcut leads to one field only.
    mnemonics = [re.search(r"&(\w)", w.text()).group(1).lower()
                 for w in dialog.findChildren((QLabel, QAbstractButton))
                 if "&" in w.text() and w.isVisibleTo(dialog)]
    assert len(mnemonics) > 15 and len(set(mnemonics)) == len(mnemonics), sorted(mnemonics)
    # A second call raises the same dialog instead of opening another.
    assert open_train_dialog(dialog.iface) is dialog
    # Nothing to train before a dataset is checked.
    assert not dialog.form.train_button.isEnabled() and dialog.form.resume_button.isHidden()


def test_tab_order_follows_the_form(dialog):
    dialog.form.advanced_box.setCollapsed(False)
    dialog.form.dataset_widget.lineEdit().setFocus()
    process_events()
    seen = []
    for _ in range(8):
        seen.append(dialog.focusWidget())
        dialog.focusNextChild()
        process_events()
    form = dialog.form
    assert seen[:7] == [form.dataset_widget.lineEdit(), form.check_button, form.summary_view,
                        form.backbone_combo, form.epochs_spin, form.lr_edit, form.batch_spin]


def test_data_check_shows_counts_vocabulary_and_problems(dialog, tmp_path):
    _checked(dialog, SAMPLE)
    text = dialog.form.summary_view.toPlainText()
    assert "Format: RSICD" in text
    assert "  train: 6 / 30" in text and "  val: 1 / 5" in text and "  test: 1 / 5" in text
    assert "Problems: none" in text
    assert f"Vocabulary: {dialog.summary.vocabulary_words} words (minimum word count 5" in text
    assert dialog.output_path() == str(REPO / "tests" / "data" / "ucm-sample.mscap")
    dialog.form.output_widget.setFilePath(str(tmp_path / "model.mscap"))
    assert dialog.form.train_button.isEnabled()
    # The vocabulary is recounted when the minimum word count changes.
    dialog.form.advanced_box.setCollapsed(False)
    dialog.form.min_count_spin.setValue(1)
    assert f"Vocabulary: {dialog.summary.vocabulary_words} words (minimum word count 1" in \
        dialog.form.summary_view.toPlainText()

    # A folder with a broken entry: every problem is listed with its entry and file.
    broken = tmp_path / "broken"
    (broken / "images").mkdir(parents=True)
    (broken / "images" / "a.jpg").write_bytes((SAMPLE / "images" / "105.jpg").read_bytes())
    (broken / "annotations.json").write_text(
        '{"images": [{"filename": "a.jpg", "split": "train", "sentences": [{"raw": "a field"}]},'
        ' {"filename": "gone.jpg", "split": "train", "sentences": [{"raw": "a road"}]}]}')
    _checked(dialog, broken)
    text = dialog.form.summary_view.toPlainText()
    assert "Problems: 1 error(s)" in text and "images[1] 'gone.jpg'" in text

    # A folder that cannot be used at all: the engine's reason, and no Train.
    empty = tmp_path / "empty"
    empty.mkdir()
    _checked(dialog, empty)
    assert "cannot be used for training" in dialog.form.summary_view.toPlainText()
    assert "missing images/ and annotations.json" in dialog.form.summary_view.toPlainText()
    assert not dialog.form.train_button.isEnabled()


def test_parameters_are_gathered_into_train_job_params(dialog, tmp_path):
    dialog.form.dataset_widget.setFilePath(str(SAMPLE))
    dialog.form.output_widget.setFilePath(str(tmp_path / "out"))  # no suffix: .mscap is added
    dialog.form.backbone_combo.setCurrentIndex(dialog.form.backbone_combo.findData("efficientnet_lite0"))
    dialog.form.epochs_spin.setValue(3)
    dialog.form.lr_edit.setText("5e-3")
    dialog.form.batch_spin.setValue(4)
    dialog.form.embed_spin.setValue(16)
    dialog.form.hidden_spin.setValue(32)
    dialog.form.attention_spin.setValue(8)
    dialog.form.teacher_spin.setValue(0.75)
    dialog.form.dropout_spin.setValue(0.2)
    dialog.form.min_count_spin.setValue(1)
    dialog.form.val_split_spin.setValue(0.2)
    dialog.form.fine_tune_check.setChecked(True)
    params = dialog.gather_params()
    assert params == TrainCaptionerParams(
        dataset=str(SAMPLE), out=str(tmp_path / "out.mscap"), backbone="efficientnet_lite0",
        epochs=3, lr=5e-3, batch_size=4, val_split_pct=0.2, min_word_count=1,
        decoder_params={"embed_size": 16, "hidden_size": 32, "attention_size": 8,
                        "teacher_forcing": 0.75, "dropout": 0.2, "pretrained_emb": None},
        freeze_encoder=False, device="auto")
    assert params.checkpoint_path == str(checkpoint_path_for(tmp_path / "out.mscap"))
    for text in ("", "0"):  # the learning-rate finder decides
        dialog.form.lr_edit.setText(text)
        assert dialog.gather_params().lr is None

    dialog.form.lr_edit.setText("-1")
    with pytest.raises(ParameterError, match="Learning rate -1.0 is negative") as error:
        dialog.gather_params()
    assert error.value.field == "learning_rate"
    assert dialog.form.field_widget(error.value.field) is dialog.form.lr_edit
    dialog.form.lr_edit.clear()
    dialog.form.output_widget.setFilePath(str(tmp_path / "no-such-folder" / "m.mscap"))
    with pytest.raises(ParameterError, match="no-such-folder, does not exist"):
        dialog.gather_params()
    dialog.form.output_widget.setFilePath(str(tmp_path / "m.mscap"))
    dialog.form.embedding_widget.setFilePath(str(tmp_path / "vectors.vec"))
    with pytest.raises(ParameterError, match=r"pretrained_emb: .*vectors.vec is not a file"):
        dialog.gather_params()
    dialog.form.embedding_widget.setFilePath("")
    with pytest.raises(ParameterError, match="no checkpoint"):
        dialog.gather_params(resume=True)
    # A wrong parameter is shown in the dialog and moves the focus to its field.
    dialog.form.output_widget.setFilePath("")
    assert dialog.start_training() is None
    assert dialog.form.status_label.text() == "Choose the model file to write."


def test_train_cancel_after_an_epoch_then_resume(dialog, qgis_iface, tmp_path):
    _checked(dialog, SAMPLE)
    out = tmp_path / "tiny.mscap"
    dialog.form.output_widget.setFilePath(str(out))
    dialog.form.backbone_combo.setCurrentIndex(dialog.form.backbone_combo.findData("efficientnet_lite0"))
    dialog.form.device_combo.setCurrentIndex(dialog.form.device_combo.findData("cpu"))
    dialog.form.epochs_spin.setValue(3)
    dialog.form.lr_edit.setText("0.005")
    dialog.form.batch_spin.setValue(4)
    dialog.form.embed_spin.setValue(16)
    dialog.form.hidden_spin.setValue(32)
    dialog.form.attention_spin.setValue(16)
    dialog.form.min_count_spin.setValue(1)

    task = dialog.start_training()
    assert task is not None and dialog.form.cancel_button.isEnabled()
    assert not dialog.form.train_button.isEnabled()
    # Cancel from inside the engine's epoch report (worker thread), so that it stops exactly
    # after epoch 1 whatever the machine's speed.
    task.epoch_finished.connect(lambda point: task.cancel(), Qt.DirectConnection)
    _wait(lambda: not dialog.is_training(), 300, "the training to stop")
    assert dialog.last_outcome == "cancelled", dialog.form.status_label.text()
    checkpoint = checkpoint_path_for(out)
    assert checkpoint.is_file() and not out.exists()
    assert [p.epoch for p in dialog.form.chart.epochs()] == [1]
    assert "cancelled after 1 epoch(s)" in dialog.form.status_label.text()
    assert dialog.form.resume_button.isVisible() and dialog.form.resume_button.isEnabled()
    assert dialog.form.resume_label.isVisible()
    assert str(checkpoint) in dialog.form.resume_label.text()
    assert dialog.form.use_button.isHidden()

    # Resume, then close the dialog: training goes on in QGIS's task manager, the dialog stays
    # alive until it ends and then offers the model in the message bar.
    bar = qgis_iface.messageBar()
    bar.clearWidgets()
    dialog.form.resume_button.click()
    assert dialog.is_training()
    seen = {}

    def snapshot(outcome):  # runs right after the dialog's own handler, before its deletion
        seen.update(outcome=outcome, points=dialog.form.chart.epochs(),
                    rows=dialog.form.chart.table.rowCount(), text=dialog.form.chart.as_text(),
                    progress=dialog.form.progress_bar.value(),
                    status=dialog.form.status_label.text())

    dialog.train_task.ended.connect(snapshot)
    dialog.form.close_button.click()
    assert dialog.isHidden() and dialog.is_training()
    assert open_train_dialog(qgis_iface) is dialog and dialog.isVisible()  # shown again
    dialog.close()
    _wait(lambda: dialog not in train_dialog._OPEN_DIALOGS, 300, "the resumed training")
    assert seen["outcome"] == "completed", seen.get("status")
    points = seen["points"]
    assert [p.epoch for p in points] == [1, 2, 3]  # epoch 1 replayed from the checkpoint
    assert all(p.train_loss is not None and p.val_loss is not None and p.cider_d is not None
               for p in points)
    assert seen["rows"] == 3
    assert seen["text"].splitlines()[0].startswith("Epoch 1: train loss ")
    assert out.is_file() and not checkpoint.exists()
    assert seen["progress"] == 100
    assert seen["status"].startswith(f"Model written to {out}")
    buttons = [b for item in bar.items() for b in item.findChildren(QPushButton)
               if b.text() == "Use this model in the MapScribe dock"]
    assert len(buttons) == 1, [item.text() for item in bar.items()]
    buttons[0].click()
    assert dialog.models_ready == [str(out)]
    bar.clearWidgets()


def test_epoch_points_and_progress_from_typed_engine_updates():
    """The task turns the engine's typed updates into chart points (an EpochEnded event, with
    the epoch's exact loss) and its progress bar into the job's own fraction; nothing is read
    from log text."""
    from mapscribe.model import EpochEnded, ProgressUpdate, Stage
    from mapscribe.plugin.training.task import TrainCaptionerTask

    task = TrainCaptionerTask(TrainCaptionerParams(dataset="d", out="o"))
    points, statuses = [], []
    task.epoch_finished.connect(points.append, Qt.DirectConnection)
    task.status.connect(statuses.append, Qt.DirectConnection)
    task._on_progress(ProgressUpdate(Stage.TRAINING, 30, 30, "captions", job_fraction=0.5,
                                     values={"epoch": 2, "epochs": 5, "loss": 4.2}))
    assert points == [] and task.progress() == pytest.approx(50)
    assert statuses[-1].startswith("epoch 2/5: 30 of 30 captions")
    assert "loss 4.200" in statuses[-1]
    event = EpochEnded(2, 4.12345, val_loss=4.0, bleu4=0.1, cider_d=0.2, epochs=5)
    task._on_progress(ProgressUpdate(Stage.TRAINING, 1, 1, message=event.describe(),
                                     job_fraction=0.52, event=event))
    assert points == [EpochPoint(2, 4.12345, 4.0, 0.1, 0.2)]
    assert statuses[-1] == event.describe()
    assert task.progress() == pytest.approx(52)
    # Never backwards (a later stage that restarts its own count).
    task._on_progress(ProgressUpdate(Stage.SCORING, 1, 10, "images", job_fraction=0.3))
    assert task.progress() == pytest.approx(52)
