"""The training dialog: dataset folder → data check → parameters → output model → Train.

It only gathers parameters (request.py) and shows what the engine reports: the data check runs
the engine's ``read_caption_folder`` and ``summarise`` in a :class:`~.data_check.DataCheckTask`,
and training runs ``train_captioner`` in a :class:`~.task.TrainCaptionerTask`. Each epoch's
loss and metrics go into a live chart (with a table of the same numbers). Cancel leaves the
engine's checkpoint, and the dialog offers Resume whenever the chosen output's checkpoint
exists. On success it offers to use the new model in the MapScribe dock.

Opening the dialog never freezes QGIS: an :class:`~..engine_gate.EngineGate` loads the engine
(torch) on a worker thread for the backbone and device lists, or shows the dependency panel
when the runtime packages are missing.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Callable, List, Optional

from qgis.core import Qgis, QgsApplication
from qgis.gui import QgsCollapsibleGroupBox
from qgis.PyQt.QtCore import Qt
from qgis.PyQt.QtWidgets import QDialog, QMessageBox, QPushButton, QVBoxLayout, QWidget

from ...model import CANCELLED, COMPLETED, MODEL_SUFFIX, summarise
from ..deps.packages import TRAINING
from ..deps.panel import DependencyPanel
from ..engine_gate import EngineFacts, EngineGate
from ..ui import LOG_PLACE, ParameterError, log_message, tr
from .data_check import DataCheckTask, summary_text
from .form import TrainingForm
from .live_chart import EpochPoint
from .request import checkpoint_for, train_params
from .task import TrainCaptionerTask

_OPEN_DIALOGS: List["TrainDialog"] = []
# How long unload waits for the engine's loading to end (milliseconds).
SHUTDOWN_WAIT_MS = 20_000


class TrainDialog(QDialog):
    """Non-modal. ``on_model_ready(model_path)`` is offered after a successful run."""

    def __init__(self, iface, parent: Optional[QWidget] = None,
                 on_model_ready: Optional[Callable[[str], None]] = None) -> None:
        super().__init__(parent)
        self.iface = iface
        self.on_model_ready = on_model_ready
        self.setObjectName("MapScribeTrainDialog")
        self.setWindowTitle(tr("MapScribe: train a captioner"))
        self.setAccessibleName(tr("Train a MapScribe captioner"))
        self.setAccessibleDescription(tr(
            "Choose a caption dataset folder, check it, set the training parameters and an "
            "output model file, then train. Progress and each epoch's numbers are shown below."))
        self.setModal(False)
        self.check_task: Optional[DataCheckTask] = None
        self.train_task: Optional[TrainCaptionerTask] = None
        self.caption_folder = None
        self.summary = None
        self.checked_folder: Optional[str] = None
        self.model_path: Optional[str] = None
        self.last_outcome: Optional[str] = None
        self.dependency_panel: Optional[DependencyPanel] = None
        self.engine_ready = False
        self.form = TrainingForm(self)
        QVBoxLayout(self).addWidget(self.form)
        self.resize(1240, 820)
        self.gate = EngineGate(self, TRAINING)
        self._connect()
        self.gate.open()
        self._update_buttons()

    def _connect(self) -> None:
        form = self.form
        form.dataset_widget.fileChanged.connect(self._dataset_changed)
        form.check_button.clicked.connect(self.check_data)
        form.min_count_spin.valueChanged.connect(self._min_count_changed)
        form.output_widget.fileChanged.connect(lambda _path: self._update_buttons())
        form.train_button.clicked.connect(lambda: self.start_training(resume=False))
        form.resume_button.clicked.connect(lambda: self.start_training(resume=True))
        form.cancel_button.clicked.connect(self.cancel_training)
        form.use_button.clicked.connect(self.use_model)
        form.close_button.clicked.connect(self.close)
        self.gate.missing.connect(self._show_dependency_panel)
        self.gate.loading.connect(
            lambda: form.status_label.setText(tr("Loading the training engine…")))
        self.gate.ready.connect(self._engine_loaded)
        self.gate.failed.connect(self._engine_failed)

    # --- the engine, the dependencies -----------------------------------------------------------
    def _engine_loaded(self, facts: EngineFacts) -> None:
        self.form.set_choices(facts.backbones, facts.devices)
        self.engine_ready = True
        if self.dependency_panel is not None:
            self.dependency_panel.hide()
        if self.train_task is None:
            self.form.status_label.setText(tr("Not started."))
        self._update_buttons()

    def _engine_failed(self, error: str) -> None:
        self.form.status_label.setText(error)  # the gate has logged it

    def _show_dependency_panel(self, _missing: List[str]) -> None:
        if self.dependency_panel is None:
            self.dependency_panel = DependencyPanel(self, TRAINING)
            self.dependency_panel.installed.connect(self.gate.load)
            self.form.body_layout.insertWidget(0, self.dependency_panel)
        self.dependency_panel.show()

    # --- data check -----------------------------------------------------------------------------
    def dataset_folder(self) -> str:
        return self.form.dataset_folder()

    def output_path(self) -> str:
        return self.form.output_path()

    def _dataset_changed(self, path: str) -> None:
        self.caption_folder = self.summary = self.checked_folder = None
        self.form.summary_view.clear()
        path = path.strip()
        if path and not self.output_path():
            folder = Path(path)
            self.form.output_widget.setFilePath(str(folder.parent / f"{folder.name}{MODEL_SUFFIX}"))
        if path and Path(path).is_dir():
            self.check_data()
        self._update_buttons()

    def check_data(self) -> None:
        """Run the data check on the chosen folder (in the background)."""
        folder = self.dataset_folder()
        if not folder:
            self._show_problem(tr("Choose a dataset folder first."),
                               self.form.dataset_widget)
            return
        if self.check_task is not None:
            return
        self.form.summary_view.setPlainText(tr("Checking {folder} …").format(folder=folder))
        self.check_task = DataCheckTask(folder, self.form.val_split_spin.value(),
                                        self.form.min_count_spin.value())
        self.check_task.ended.connect(self._data_checked)
        QgsApplication.taskManager().addTask(self.check_task)
        self._update_buttons()

    def is_checking(self) -> bool:
        return self.check_task is not None

    def _data_checked(self) -> None:
        task, self.check_task = self.check_task, None
        if task is None:
            return
        if task.folder != self.dataset_folder():
            self._update_buttons()
            return  # the user chose another folder meanwhile
        view = self.form.summary_view
        if task.error:
            self.caption_folder = self.summary = self.checked_folder = None
            view.setPlainText(tr("This folder cannot be used for training:\n{error}").format(
                error=task.error))
        else:
            self.caption_folder, self.summary = task.caption_folder, task.summary
            self.checked_folder = task.folder
            view.setPlainText(summary_text(self.summary, self.caption_folder))
        view.setAccessibleDescription(view.toPlainText()[:2000])
        self._update_buttons()

    def _min_count_changed(self, value: int) -> None:
        # The vocabulary size depends on it: recount (no need to read the images again).
        if self.caption_folder is not None:
            self.summary = summarise(self.caption_folder, value)
            self.form.summary_view.setPlainText(summary_text(self.summary, self.caption_folder))

    # --- training -------------------------------------------------------------------------------
    def gather_params(self, resume: bool = False, overwrite: bool = False):
        """The dialog's values as the engine's TrainCaptionerParams; ParameterError names the
        field."""
        return train_params(self.form.values(), resume=resume, overwrite=overwrite)

    def is_training(self) -> bool:
        return self.train_task is not None

    def start_training(self, resume: bool = False) -> Optional[TrainCaptionerTask]:
        """Start (or resume) training; returns the task, or None when a parameter is wrong."""
        if self.train_task is not None or not self.engine_ready:
            return None
        form, out = self.form, self.output_path()
        overwrite = False
        if not resume and out and Path(out).exists():
            answer = QMessageBox.question(
                self, tr("Replace the model file?"),
                tr("{path} already exists. Replace it?").format(path=out),
                QMessageBox.StandardButton.Yes | QMessageBox.StandardButton.No,
                QMessageBox.StandardButton.No)
            if answer != QMessageBox.StandardButton.Yes:
                return None
            overwrite = True
        try:
            params = self.gather_params(resume=resume, overwrite=overwrite)
        except ParameterError as error:
            self._show_problem(str(error), form.field_widget(error.field))
            return None
        if not resume:
            form.chart.clear()
        self.model_path = None
        self.last_outcome = None
        form.use_button.hide()
        form.progress_bar.setValue(0)
        form.status_label.setText(
            tr("Resuming from {path} …").format(path=params.resume) if resume
            else tr("Starting: reading the images …"))
        task = self.train_task = TrainCaptionerTask(params)
        task.progressChanged.connect(lambda value: form.progress_bar.setValue(int(round(value))))
        task.status.connect(form.status_label.setText)
        task.epoch_finished.connect(self._epoch_finished)
        task.ended.connect(self._training_ended)
        QgsApplication.taskManager().addTask(task)
        self._update_buttons()
        form.cancel_button.setFocus(Qt.FocusReason.OtherFocusReason)
        return task

    def cancel_training(self) -> None:
        if self.train_task is not None:
            self.train_task.cancel()
            self.form.status_label.setText(tr("Cancelling after the current batch …"))

    def _epoch_finished(self, point: EpochPoint) -> None:
        self.form.chart.add_epoch(point)

    def _training_ended(self, outcome: str) -> None:
        task, self.train_task = self.train_task, None
        self.last_outcome = outcome
        if task is None:
            return
        if outcome == COMPLETED:
            self._trained(task.result)
        elif outcome == CANCELLED:
            self._cancelled(task)
        else:
            message = tr("Training failed: {error}").format(error=task.error)
            self.form.status_label.setText(message)
            log_message(f"{task.error}\n\n{task.details or ''}", Qgis.MessageLevel.Critical)
            self._push_message(tr("{message} (details in {log})").format(message=message,
                                                                        log=LOG_PLACE),
                               Qgis.MessageLevel.Critical)
        self._update_buttons()
        if not self.isVisible():
            self._release()

    def _trained(self, result) -> None:
        self.model_path = result.model_path
        self.form.progress_bar.setValue(100)
        metrics = "; ".join(
            f"{split}: BLEU-4 {scores.get('BLEU-4', float('nan')):.3f}, "
            f"CIDEr-D {scores.get('CIDEr-D', float('nan')):.3f}"
            for split, scores in (result.metrics or {}).items() if isinstance(scores, dict))
        message = tr("Model written to {path} (best epoch {epoch}, {stopped}).").format(
            path=result.model_path, epoch=result.fit.best_epoch,
            stopped=result.stopped.replace("_", " "))
        if metrics:
            message += " " + metrics
        self.form.status_label.setText(message)
        log_message(message, Qgis.MessageLevel.Success)
        if self.on_model_ready is not None:
            self.form.use_button.show()
            self.form.use_button.setFocus(Qt.FocusReason.OtherFocusReason)
        if not self.isVisible():
            self._offer_model_in_message_bar(message)

    def _cancelled(self, task: TrainCaptionerTask) -> None:
        result = task.result
        checkpoint = Path(task.params.checkpoint_path)
        if result is not None and result.model_path:
            # Cancelled while scoring: the engine wrote the model before scoring it.
            self.model_path = result.model_path
            message = tr("Training cancelled while scoring the model: {path} is written, "
                         "without the scores not computed yet.").format(path=result.model_path)
            if self.on_model_ready is not None:
                self.form.use_button.show()
        elif checkpoint.is_file():
            message = tr("Training cancelled after {count} epoch(s). The checkpoint {path} keeps "
                         "them: press Resume to continue.").format(
                             count=len(self.form.chart.epochs()), path=checkpoint)
        else:
            message = tr("Training cancelled before the first epoch began; there is nothing "
                         "to resume.")
        self.form.status_label.setText(message)
        if not self.isVisible():
            self._push_message(message, Qgis.MessageLevel.Info)

    def use_model(self) -> None:
        if self.model_path and self.on_model_ready is not None:
            self.on_model_ready(self.model_path)

    # --- state, messages ------------------------------------------------------------------------
    def _update_buttons(self) -> None:
        form, busy = self.form, self.train_task is not None
        data_ok = (self.checked_folder is not None and self.checked_folder == self.dataset_folder()
                   and self.check_task is None)
        out = self.output_path()
        checkpoint = checkpoint_for(out) if out else None
        has_checkpoint = bool(checkpoint and checkpoint.is_file())
        form.train_button.setEnabled(self.engine_ready and data_ok and bool(out) and not busy)
        form.resume_button.setVisible(has_checkpoint)
        form.resume_button.setEnabled(self.engine_ready and has_checkpoint and not busy
                                      and self.check_task is None)
        form.cancel_button.setEnabled(busy)
        form.check_button.setEnabled(self.check_task is None and not busy)
        if has_checkpoint:
            saved = time.strftime("%Y-%m-%d %H:%M", time.localtime(checkpoint.stat().st_mtime))
            form.resume_label.setText(tr("An interrupted training of this model file can be "
                                         "resumed: checkpoint {path} (saved {saved}).").format(
                                             path=checkpoint, saved=saved))
            form.resume_label.setAccessibleDescription(form.resume_label.text())
        form.resume_label.setVisible(has_checkpoint and not busy)

    def _show_problem(self, message: str, widget: Optional[QWidget] = None) -> None:
        self.form.status_label.setText(message)
        self.form.status_label.setAccessibleDescription(message)
        if isinstance(widget, QgsCollapsibleGroupBox):
            widget.setCollapsed(False)
        if widget is not None:
            widget.setFocus(Qt.FocusReason.OtherFocusReason)

    def _push_message(self, message: str, level) -> None:
        bar = self.iface.messageBar() if self.iface is not None else None
        if bar is not None:
            bar.pushMessage(tr("MapScribe"), message, level=level)

    def _offer_model_in_message_bar(self, message: str) -> None:
        """The dialog was closed during training: say it is done where the user looks, with
        the offer to use the model."""
        bar = self.iface.messageBar() if self.iface is not None else None
        if bar is None:
            return
        if self.on_model_ready is None or not hasattr(bar, "createMessage"):
            bar.pushMessage(tr("MapScribe"), message, level=Qgis.MessageLevel.Success)
            return
        item = bar.createMessage(tr("MapScribe"), message)
        button = QPushButton(tr("Use this model in the MapScribe dock"), item)
        button.setAccessibleName(button.text())
        path, callback = self.model_path, self.on_model_ready
        button.clicked.connect(lambda: callback(path))
        item.layout().addWidget(button)
        bar.pushWidget(item, Qgis.MessageLevel.Success)

    # --- life cycle -----------------------------------------------------------------------------
    def _release(self) -> None:
        if self in _OPEN_DIALOGS:
            _OPEN_DIALOGS.remove(self)
        self.gate.shutdown()
        self.deleteLater()

    def done(self, result: int) -> None:  # close(), Escape, the Close button
        super().done(result)
        if self.check_task is not None:
            self.check_task.cancel()
        # A running training goes on (QGIS's task manager shows it and can cancel it); the
        # dialog stays alive until it ends, then tells the message bar.
        if self.train_task is None:
            self._release()

    def shutdown(self) -> None:
        """Cancel what runs and close (plugin unload)."""
        self.gate.shutdown(SHUTDOWN_WAIT_MS)
        if self.train_task is not None:
            self.train_task.cancel()
        if self.check_task is not None:
            self.check_task.cancel()
        self.hide()


def open_train_dialog(iface, parent: Optional[QWidget] = None,
                      on_model_ready: Optional[Callable[[str], None]] = None) -> QDialog:
    """Show the training dialog (non-modal) and return it. It keeps itself alive while shown
    and while its training runs. An already open one is raised instead of opening a second."""
    for dialog in _OPEN_DIALOGS:
        # Also one closed while its training goes on: show it again rather than start another.
        if dialog.isVisible() or dialog.is_training():
            if on_model_ready is not None:
                dialog.on_model_ready = on_model_ready
            dialog.show()
            dialog.raise_()
            dialog.activateWindow()
            return dialog
    if parent is None and iface is not None:
        parent = iface.mainWindow()
    dialog = TrainDialog(iface, parent, on_model_ready)
    _OPEN_DIALOGS.append(dialog)
    dialog.show()
    dialog.raise_()
    dialog.form.dataset_widget.lineEdit().setFocus(Qt.FocusReason.OtherFocusReason)
    return dialog


def close_all_train_dialogs() -> None:
    """For the plugin's unload(): cancel running trainings and close every training dialog."""
    for dialog in list(_OPEN_DIALOGS):
        dialog.shutdown()
        if dialog.train_task is None:
            dialog._release()
