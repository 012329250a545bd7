"""TrainCaptionerTask: the engine's ``train_captioner`` in a QgsTask.

``run()`` works in a worker thread and touches no widget, layer or project: it turns the
engine's progress updates into the task's progress (the job's own fraction, so encoding, the
epochs and the final scoring each take their share), a status line and, for each
:class:`~mapscribe.model.EpochEnded` event, a chart point, all sent to the main thread through
Qt signals (queued across threads). Nothing here reads the engine's log text.

Cancel (the dialog's button or QGIS's task manager) makes ``isCanceled()`` true; the engine stops
after the batch in hand and keeps its checkpoint, from which training can resume.
"""

from __future__ import annotations

from typing import List, Optional

from qgis.core import QgsTask
from qgis.PyQt.QtCore import pyqtSignal

from ...model import (
    CANCELLED,
    COMPLETED,
    EpochEnded,
    MapScribeError,
    ProgressUpdate,
    TrainCaptionerParams,
    train_captioner,
    training_history,
)
from ..progress_text import status_line
from ..tasks import keep_alive, let_go
from ..ui import bug_message, tr, traceback_text
from .live_chart import EpochPoint

FAILED = "failed"  # the third outcome, beside the engine's COMPLETED and CANCELLED


def checkpoint_history(checkpoint: str) -> List[EpochEnded]:
    """The epochs a checkpoint holds (imports torch: call it on the worker thread)."""
    return training_history(checkpoint)


class TrainCaptionerTask(QgsTask):
    """Train a captioner from a TrainCaptionerParams. After it ends (``ended`` signal, main
    thread): ``outcome`` is COMPLETED, CANCELLED or FAILED; ``result`` is the engine's
    TrainCaptionerResult (completed or cancelled); ``error`` a message for people and ``details``
    the traceback of a failure that was not the engine's error."""

    epoch_finished = pyqtSignal(object)   # EpochPoint
    status = pyqtSignal(str)              # what is happening now, for a status line
    ended = pyqtSignal(str)               # outcome

    def __init__(self, params: TrainCaptionerParams, description: Optional[str] = None) -> None:
        super().__init__(description or tr("MapScribe: training a captioner"),
                         QgsTask.Flag.CanCancel)
        self.params = params
        self.outcome: Optional[str] = None
        self.result = None
        self.error: Optional[str] = None
        self.details: Optional[str] = None
        self.epochs_seen = 0
        self._progress = 0.0
        # Training goes on when its dialog is closed: the Python object must outlive its run.
        keep_alive(self)

    # --- worker thread --------------------------------------------------------------------------
    def run(self) -> bool:
        try:
            if self.params.resume:
                # The chart covers the whole run: the epochs before the interruption first.
                for record in checkpoint_history(self.params.resume):
                    self._emit_epoch(EpochPoint.from_event(record))
            self.result = train_captioner(self.params, self._on_progress, self.isCanceled)
        except MapScribeError as error:  # names the file, field or value and what to do
            self._fail(str(error))
            return False
        except ImportError as error:
            self._fail(tr("MapScribe's packages cannot be imported ({error}); install them from "
                          "the MapScribe panel.").format(error=error), error)
            return False
        except Exception as error:  # noqa: BLE001 - a bug, told as one, its traceback logged
            self._fail(bug_message(tr("Training"), error), error)
            return False
        if self.result.stopped == CANCELLED or self.isCanceled():
            self.outcome = CANCELLED
            return False
        self.outcome = COMPLETED
        return True

    def _fail(self, message: str, error: Optional[BaseException] = None) -> None:
        self.outcome = FAILED
        self.error = message
        self.details = traceback_text(error) if error is not None else None

    def _on_progress(self, update: ProgressUpdate) -> None:
        """The engine's progress callback (worker thread)."""
        if isinstance(update.event, EpochEnded):
            self._emit_epoch(EpochPoint.from_event(update.event))
        if update.job_fraction is not None:
            self._set_progress(100.0 * update.job_fraction)
        self.status.emit(status_line(update))

    def _emit_epoch(self, point: EpochPoint) -> None:
        self.epochs_seen += 1
        self.epoch_finished.emit(point)

    def _set_progress(self, value: float) -> None:
        # Never backwards (a resumed run starts its plan again from its first epoch).
        self._progress = max(self._progress, min(100.0, value))
        self.setProgress(self._progress)

    # --- main thread ----------------------------------------------------------------------------
    def finished(self, result: bool) -> None:
        try:
            if self.outcome is None:  # cancelled before run() started, or terminated
                self.outcome = CANCELLED if self.isCanceled() else FAILED
            self.ended.emit(self.outcome)
        finally:
            let_go(self)
