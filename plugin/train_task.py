"""TrainCaptionerTask: the engine's ``train_captioner`` in a QgsTask.

``run()`` works in a worker thread and touches no widget, layer or project: it turns the
engine's progress updates into the task's progress (per batch), a status line and, after each
epoch, an :class:`~.live_chart.EpochPoint`, all sent to the main thread through Qt signals
(queued across threads). Cancel (the dialog's button or QGIS's task manager) makes
``isCanceled()`` true; the engine stops after the batch in hand and keeps its checkpoint, from
which training can resume.
"""

from __future__ import annotations

import logging
import re
import traceback
from typing import Optional

from qgis.core import QgsTask
from qgis.PyQt.QtCore import QCoreApplication, pyqtSignal

from .live_chart import EpochPoint

LOGGER = logging.getLogger(__name__)

COMPLETED, CANCELLED, FAILED = "completed", "cancelled", "failed"
# How the whole run maps onto the progress bar: encoding the images, the epochs, evaluation.
_ENCODING_END, _EPOCHS_END = 10.0, 90.0
_EPOCH_STAGE = re.compile(r"epoch (\d+)/(\d+)$")
_EPOCH_MESSAGE = re.compile(r"epoch (\d+), train loss ([0-9.eE+-]+|nan|inf)")


def _tr(text: str) -> str:
    return QCoreApplication.translate("MapScribeTrainTask", text)


def describe_update(update) -> str:
    """One status line for people from an engine ProgressUpdate."""
    from ..model.progress import format_duration

    parts = [f"{update.stage}: {update.done}/{update.total} {update.unit}"]
    if update.rate:
        parts.append(f"{update.rate:.1f} {update.unit}/s")
    if update.eta_s is not None:
        parts.append(_tr("{} left").format(format_duration(update.eta_s)))
    if "loss" in update.values:
        parts.append(f"loss {update.values['loss']:.3f}")
    return ", ".join(parts)


class TrainCaptionerTask(QgsTask):
    """Train a captioner from a TrainJobParams. After it ends (``ended`` signal, main thread):
    ``outcome`` is 'completed', 'cancelled' or 'failed'; ``result`` is the engine's
    TrainJobResult (completed, or cancelled between epochs); ``error`` a message for people and
    ``details`` the traceback."""

    epoch_finished = pyqtSignal(object)   # EpochPoint
    status = pyqtSignal(str)              # what is happening now, for a status line
    ended = pyqtSignal(str)               # outcome

    def __init__(self, params, description: Optional[str] = None) -> None:
        super().__init__(description or _tr("MapScribe: training a captioner"), QgsTask.CanCancel)
        self.params = params
        self.outcome: Optional[str] = None
        self.result = None
        self.error: Optional[str] = None
        self.details: Optional[str] = None
        self.epochs_seen = 0
        self._epoch: Optional[int] = None
        self._train_loss: Optional[float] = None
        self._progress = 0.0

    # --- worker thread --------------------------------------------------------------------------
    def run(self) -> bool:
        try:
            from ..model.progress import Cancelled
            from ..model.jobs.train import train_captioner
        except ImportError as error:
            self._fail(_tr("MapScribe's packages cannot be imported ({}); install them from the "
                           "MapScribe panel.").format(error))
            return False
        try:
            if self.params.resume:
                self._replay_checkpoint_history(self.params.resume)
            self.result = train_captioner(self.params, self._on_progress, self.isCanceled)
        except Cancelled:
            self.outcome = CANCELLED
            return False
        except (ValueError, FileExistsError, OSError) as error:
            # The engine's own errors name the file, field or value and say what to do.
            self._fail(str(error))
            return False
        except Exception as error:
            self._fail(_tr("Training failed: {}").format(error))
            return False
        if self.result.stopped == "cancelled" or self.isCanceled():
            self.outcome = CANCELLED
            return False
        self.outcome = COMPLETED
        return True

    def _fail(self, message: str) -> None:
        self.outcome = FAILED
        self.error = message
        self.details = traceback.format_exc()

    def _replay_checkpoint_history(self, checkpoint: str) -> None:
        """Show the epochs trained before the interruption, so the chart covers the whole run."""
        from ..model.training.checkpoints import load_checkpoint

        for record in load_checkpoint(checkpoint).get("history", []):
            self._emit_epoch(EpochPoint(int(record["epoch"]), record.get("train_loss"),
                                        record.get("val_loss"), record.get("bleu4"),
                                        record.get("cider_d")))

    def _on_progress(self, update) -> None:
        """The engine's progress callback (worker thread)."""
        stage = _EPOCH_STAGE.match(update.stage)
        if stage:
            epoch, epochs = int(stage.group(1)), int(stage.group(2))
            self._epoch = epoch
            if "loss" in update.values:
                self._train_loss = float(update.values["loss"])
            fraction = (epoch - 1 + update.fraction) / max(1, epochs)
            self._set_progress(_ENCODING_END + (_EPOCHS_END - _ENCODING_END) * fraction)
        elif update.stage == "epoch" and update.message:
            self._emit_epoch(self._epoch_point(update))
            return
        elif update.stage.startswith("encoding"):
            share = 0.8 if update.stage == "encoding" else 0.2
            start = 0.0 if update.stage == "encoding" else _ENCODING_END * 0.8
            self._set_progress(start + _ENCODING_END * share * update.fraction)
        elif update.stage == "captioning":  # decoding val/test for the final metrics
            self._set_progress(_EPOCHS_END + (100.0 - _EPOCHS_END) * update.fraction)
        if update.message:
            self.status.emit(update.message)
        elif update.total:
            self.status.emit(describe_update(update))

    def _epoch_point(self, update) -> EpochPoint:
        # The engine's end-of-epoch note carries the validation metrics as values and the epoch
        # and train loss in its message; the last batch update of the epoch has the exact loss.
        values = update.values
        epoch, train_loss = values.get("epoch", self._epoch), values.get("train_loss")
        match = _EPOCH_MESSAGE.match(update.message)
        if match:
            epoch = int(match.group(1)) if epoch is None else epoch
            if train_loss is None:
                train_loss = (self._train_loss if self._epoch == int(match.group(1))
                              and self._train_loss is not None else float(match.group(2)))
        return EpochPoint(int(epoch or 0), train_loss, values.get("val_loss"),
                          values.get("BLEU-4"), values.get("CIDEr-D"))

    def _emit_epoch(self, point: EpochPoint) -> None:
        self.epochs_seen += 1
        self.epoch_finished.emit(point)

    def _set_progress(self, value: float) -> None:
        # Never backwards: val and test decoding each restart their own count.
        self._progress = max(self._progress, min(100.0, value))
        self.setProgress(self._progress)

    # --- main thread ----------------------------------------------------------------------------
    def finished(self, result: bool) -> None:
        if self.outcome is None:  # cancelled before run() started, or terminated
            self.outcome = CANCELLED if self.isCanceled() else FAILED
        if self.outcome == FAILED:
            LOGGER.error("%s\n%s", self.error, self.details or "")
        self.ended.emit(self.outcome)
