"""QGIS tasks around the engine's captioning job, the lives of MapScribe's tasks, and the bridge
from Python logging to QGIS's log.

:class:`CaptionRasterTask` runs ``caption_raster`` on a worker thread of QGIS's task manager:
``run()`` touches no layer, project or widget (none of them is thread-safe); it only calls the
engine, turns its progress into ``setProgress`` and asks ``isCanceled()`` as the engine's cancel
check (the engine asks after each committed batch). ``finished()`` runs on the main thread: it
reports to the message bar and to the "MapScribe" tab of the QGIS log, then hands the task to
its listener (the dock), if one is still attached.

A listener that goes away (the plugin is unloaded) calls :meth:`CaptionRasterTask.detach`; the
task then reports to the log and the message bar only, so no signal reaches a deleted widget.
Tasks keep themselves alive (:func:`keep_alive`) until ``finished()``: QGIS owns the C++ object,
but a Python subclass must also stay referenced or its ``run()`` could vanish mid-flight.
"""

from __future__ import annotations

import logging
import time
from typing import Callable, List, Optional, Set

from qgis.core import Qgis, QgsTask
from qgis.PyQt.QtCore import pyqtSignal

from .. import model as engine
from ..model import CANCELLED, MapScribeError
from .progress_text import counts_text
from .ui import LOG_PLACE, bug_message, log_message, tr, traceback_text

_ALIVE: Set[QgsTask] = set()


def keep_alive(task: QgsTask) -> None:
    """Keep ``task``'s Python object referenced until :func:`let_go` (from its ``finished``)."""
    _ALIVE.add(task)


def let_go(task: QgsTask) -> None:
    _ALIVE.discard(task)


def running_tasks() -> List[QgsTask]:
    """MapScribe tasks that have not finished yet (for unload and tests)."""
    return list(_ALIVE)


def stop_and_wait(task: QgsTask, timeout_ms: int) -> bool:
    """Cancel ``task`` and, when it is running, wait up to ``timeout_ms`` for its run() to
    return; True when it is no longer running. Only a started task is waited for: QGIS's
    waitForFinished() first waits for the task to start, which a cancelled queued task never
    does."""
    running = task.status() == QgsTask.TaskStatus.Running
    task.cancel()
    return task.waitForFinished(timeout_ms) if running else True


class MessageLogHandler(logging.Handler):
    """Engine log records (``logging.getLogger("mapscribe…")``) into the "MapScribe" log tab,
    so the engine's notes and warnings are where QGIS users look."""

    LEVELS = ((logging.ERROR, Qgis.MessageLevel.Critical),
              (logging.WARNING, Qgis.MessageLevel.Warning))
    set_logger_level = False  # True when the plugin lowered the "mapscribe" logger to INFO

    def emit(self, record: logging.LogRecord) -> None:
        try:
            level = next((qgis for python, qgis in self.LEVELS if record.levelno >= python),
                         Qgis.MessageLevel.Info)
            log_message(self.format(record), level)
        except Exception:  # noqa: BLE001 - logging must never raise into the caller
            self.handleError(record)


class CaptionRasterTask(QgsTask):
    """``caption_raster(params)`` as a cancellable QGIS task.

    After ``finished()``: ``result`` (a CaptionRasterResult, also for a cancelled run, which
    keeps every committed tile) or ``error`` (a message for people) and ``error_details``
    (the traceback of an unexpected failure, for the log).
    """

    # Human-readable progress ("12 of 42 tiles, 3.1 tiles/s, 00:10 left"), emitted from run()'s
    # thread; Qt queues it to receivers on the main thread.
    progressText = pyqtSignal(str)

    def __init__(self, params: "engine.CaptionRasterParams", message_bar=None,
                 on_finished: Optional[Callable[["CaptionRasterTask"], None]] = None) -> None:
        super().__init__(tr("MapScribe: captioning {name}").format(name=params.image_source.label),
                         QgsTask.Flag.CanCancel)
        self.params = params
        self.message_bar = message_bar
        self.on_finished = on_finished
        self.result = None
        self.error: Optional[str] = None
        self.error_details: Optional[str] = None
        self.progress_updates: List = []  # the engine's ProgressUpdates, in order
        self.seconds = 0.0
        keep_alive(self)

    def detach(self) -> None:
        """Forget the listener and the message bar: whoever asked for the run is gone."""
        self.on_finished = None
        self.message_bar = None
        try:
            self.progressText.disconnect()
        except TypeError:  # nothing was connected
            pass

    # --- worker thread ---------------------------------------------------------------------
    def run(self) -> bool:
        started = time.monotonic()
        if self.isCanceled():  # cancelled before it started (the plugin is being unloaded)
            return False
        try:
            # This is where torch gets loaded, on the worker thread, if nothing loaded it yet.
            # The engine's job (and numpy, GDAL, torch) is imported here, on the worker thread.
            self.result = engine.caption_raster(self.params, self._progress, self.isCanceled)
            return True
        except MapScribeError as error:  # its message names what to change
            self.error = str(error)
            return False
        except ImportError as error:
            self.error = tr("the captioning engine cannot be loaded ({error}); install the "
                            "missing Python packages from the MapScribe dock.").format(error=error)
            self.error_details = traceback_text(error)
            return False
        except Exception as error:  # noqa: BLE001 - a bug: told as one, its traceback logged
            self.error = bug_message(tr("Captioning"), error)
            self.error_details = traceback_text(error)
            return False
        finally:
            self.seconds = time.monotonic() - started

    def _progress(self, update) -> None:
        self.progress_updates.append(update)
        fraction = update.job_fraction if update.job_fraction is not None else update.fraction
        self.setProgress(100.0 * fraction)
        self.progressText.emit(counts_text(update))

    # --- main thread -----------------------------------------------------------------------
    def finished(self, ok: bool) -> None:
        try:
            self._report(ok)
            if self.on_finished is not None:
                self.on_finished(self)
        finally:
            let_go(self)

    def _report(self, ok: bool) -> None:
        output = self.params.output
        if ok and self.result is not None:
            result = self.result
            for note in result.notes:
                log_message(f"{output}: {note}", Qgis.MessageLevel.Warning)
            done = result.skipped_existing + result.processed
            if result.stopped == CANCELLED:
                text = tr("stopped: {done} of {total} tiles are captioned and kept in {output}. "
                          "Press Resume in the MapScribe dock (or Run again on the same output "
                          "and choose Resume) to caption the rest.").format(
                              done=done, total=result.tiles_total, output=output)
                level = Qgis.MessageLevel.Warning
            else:
                already = (tr(", {n} already there").format(n=result.skipped_existing)
                           if result.skipped_existing else "")
                text = tr("{captioned} tiles captioned ({nodata} without data{already}) in "
                          "{seconds:.0f} s on {device}: {output}").format(
                              captioned=result.captioned, nodata=result.nodata, already=already,
                              seconds=result.seconds, device=result.device or tr("no device"),
                              output=output)
                level = Qgis.MessageLevel.Success
            log_message(text, level)
            self._push(text, level)
        elif self.isCanceled() and self.error is None:
            text = tr("cancelled before anything was captioned into {output}.").format(
                output=output)
            log_message(text, Qgis.MessageLevel.Warning)
            self._push(text, Qgis.MessageLevel.Warning)
        else:
            text = self.error or tr("captioning failed (no reason was given).")
            details = f"{text}\n\n{self.error_details}" if self.error_details else text
            log_message(details, Qgis.MessageLevel.Critical)
            if LOG_PLACE not in text:  # a bug's message says where its details are already
                text = tr("{text} (details in {log})").format(text=text, log=LOG_PLACE)
            self._push(text, Qgis.MessageLevel.Critical)

    def _push(self, text: str, level) -> None:
        if self.message_bar is not None:
            # Errors and partial results stay until dismissed; success goes after a while.
            self.message_bar.pushMessage(tr("MapScribe"), text, level,
                                         8 if level == Qgis.MessageLevel.Success else 0)
