"""QGIS tasks around the engine's jobs, and the bridge from Python logging to QGIS's log.

:class:`CaptionRasterTask` runs ``caption_raster`` on a worker thread of QGIS's task manager:
``run()`` touches no layer, project or widget (none of them is thread-safe); it only calls the
engine, turns its progress into ``setProgress`` and asks ``isCanceled()`` as the engine's cancel
check (the engine asks after each committed batch). ``finished()`` runs on the main thread: it
reports to the message bar and to the "MapScribe" tab of the QGIS log, then hands the task to
its listener (the dock), if one is still attached.

A listener that goes away (the plugin is unloaded) calls :meth:`CaptionRasterTask.detach`; the
task then reports to the log and the message bar only, so no signal reaches a deleted widget.
Tasks keep themselves alive in a module set until ``finished()``: QGIS owns the C++ object, but
a Python subclass must also stay referenced or its ``run()`` could vanish mid-flight.
"""

from __future__ import annotations

import logging
import time
import traceback
from pathlib import Path
from typing import Callable, List, Optional, Set

from qgis.core import Qgis, QgsMessageLog, QgsTask
from qgis.PyQt.QtCore import pyqtSignal

from ..model.progress import format_duration  # plain Python: no torch

LOG_TAG = "MapScribe"  # the tab of QGIS's log panel
_ALIVE: Set[QgsTask] = set()


def log_message(text: str, level=Qgis.Info) -> None:
    """To the "MapScribe" tab of QGIS's log (thread-safe: QGIS queues it to the main thread)."""
    QgsMessageLog.logMessage(text, LOG_TAG, level)


class MessageLogHandler(logging.Handler):
    """Engine log records (``logging.getLogger("mapscribe…")``) into the "MapScribe" log tab,
    so the engine's notes and warnings are where QGIS users look."""

    LEVELS = ((logging.ERROR, Qgis.Critical), (logging.WARNING, Qgis.Warning))
    set_logger_level = False  # True when the plugin lowered the "mapscribe" logger to INFO

    def emit(self, record: logging.LogRecord) -> None:
        try:
            level = next((qgis for python, qgis in self.LEVELS if record.levelno >= python),
                         Qgis.Info)
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
    progressText = pyqtSignal(str)  # noqa: N815 (Qt naming)

    def __init__(self, params, message_bar=None,
                 on_finished: Optional[Callable[["CaptionRasterTask"], None]] = None) -> None:
        super().__init__(f"MapScribe: captioning {Path(params.raster).name}", QgsTask.CanCancel)
        self.params = params
        self.message_bar = message_bar
        self.on_finished = on_finished
        self.result = None
        self.error: Optional[str] = None
        self.error_details: Optional[str] = None
        self.progress_updates: List = []  # the engine's ProgressUpdates, in order
        self.seconds = 0.0
        _ALIVE.add(self)

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
            # Imported here, on the worker thread: this is where torch gets loaded.
            from ..model.jobs.caption import CAPTION_RASTER_ERRORS, caption_raster
        except ImportError as error:
            self.error = (f"the captioning engine cannot be loaded ({error}); install the "
                          "missing Python packages from the MapScribe dock.")
            self.error_details = traceback.format_exc()
            return False
        try:
            self.result = caption_raster(self.params, self._progress, self.isCanceled)
            return True
        except CAPTION_RASTER_ERRORS as error:
            self.error = str(error)
            return False
        except Exception as error:  # noqa: BLE001 - reported to people, with the traceback logged
            self.error = f"captioning failed unexpectedly: {type(error).__name__}: {error}"
            self.error_details = traceback.format_exc()
            return False
        finally:
            self.seconds = time.monotonic() - started

    def _progress(self, update) -> None:
        self.progress_updates.append(update)
        self.setProgress(100.0 * update.fraction)
        rate = f", {update.rate:.2g} {update.unit}/s" if update.rate else ""
        left = f", {format_duration(update.eta_s)} left" if update.eta_s is not None else ""
        self.progressText.emit(f"{update.done} of {update.total} {update.unit}{rate}{left}")

    # --- main thread -----------------------------------------------------------------------
    def finished(self, ok: bool) -> None:  # noqa: D401 (QGIS API)
        try:
            self._report(ok)
            if self.on_finished is not None:
                self.on_finished(self)
        finally:
            _ALIVE.discard(self)

    def _report(self, ok: bool) -> None:
        title = "MapScribe"
        output = self.params.output
        if ok and self.result is not None:
            result = self.result
            for note in result.notes:
                log_message(f"{output}: {note}", Qgis.Warning)
            done = result.skipped_existing + result.processed
            if result.stopped == "cancelled":
                text = (f"stopped: {done} of {result.tiles_total} tiles are captioned and kept in "
                        f"{output}. Press Resume in the MapScribe dock (or Run again on the same "
                        "output and choose Resume) to caption the rest.")
                level = Qgis.Warning
            else:
                text = (f"{result.captioned} tiles captioned ({result.nodata} without data"
                        + (f", {result.skipped_existing} already there" if result.skipped_existing
                           else "")
                        + f") in {result.seconds:.0f} s on {result.device or 'no device'}: "
                        f"{output}")
                level = Qgis.Success
            log_message(text, level)
            self._push(title, text, level)
        elif self.isCanceled() and self.error is None:
            text = f"cancelled before anything was captioned into {output}."
            log_message(text, Qgis.Warning)
            self._push(title, text, Qgis.Warning)
        else:
            text = self.error or "captioning failed (no reason was given)."
            details = f"{text}\n\n{self.error_details}" if self.error_details else text
            log_message(details, Qgis.Critical)
            self._push(title, text + " (details in the MapScribe tab of the log)",
                       Qgis.Critical)

    def _push(self, title: str, text: str, level) -> None:
        if self.message_bar is not None:
            # Errors and partial results stay until dismissed; success goes after a while.
            self.message_bar.pushMessage(title, text, level,
                                         8 if level == Qgis.Success else 0)


def engine_devices() -> List:
    """Import the engine (torch included) and list the devices as (key, label) pairs."""
    from ..model.nn.device import available_devices

    return [(choice.key, choice.label) for choice in available_devices()]


class EngineWarmUpTask(QgsTask):
    """Imports the engine (and torch, about 3 s) off the main thread and lists the devices, so
    that opening the dock never freezes QGIS. ``devices`` holds (key, label) pairs afterwards,
    or ``error`` says why the engine cannot be loaded."""

    def __init__(self, on_finished: Optional[Callable[["EngineWarmUpTask"], None]] = None):
        super().__init__("MapScribe: loading the captioning engine", QgsTask.Flags())
        self.on_finished = on_finished
        self.devices: List = []
        self.error: Optional[str] = None
        _ALIVE.add(self)

    def detach(self) -> None:
        self.on_finished = None

    def run(self) -> bool:
        if self.isCanceled():  # the plugin is being unloaded: import nothing more of it
            return False
        try:
            self.devices = engine_devices()
            return True
        except Exception as error:  # noqa: BLE001 - an engine that cannot load is reported
            self.error = f"{type(error).__name__}: {error}"
            return False

    def finished(self, ok: bool) -> None:
        try:
            if not ok and not self.isCanceled():
                log_message(f"the captioning engine could not be loaded: {self.error}",
                            Qgis.Warning)
            if self.on_finished is not None:
                self.on_finished(self)
        finally:
            _ALIVE.discard(self)


def stop_and_wait(task: QgsTask, timeout_ms: int) -> bool:
    """Cancel ``task`` and, when it is running, wait up to ``timeout_ms`` for its run() to
    return; True when it is no longer running. Only a started task is waited for: QGIS's
    waitForFinished() first waits for the task to start, which a cancelled queued task never
    does."""
    running = task.status() == QgsTask.Running
    task.cancel()
    return task.waitForFinished(timeout_ms) if running else True


def running_tasks() -> List[QgsTask]:
    """MapScribe tasks that have not finished yet (for unload and tests)."""
    return list(_ALIVE)
