"""The engine's ``describe_captions`` as a QGIS task: the overview and the regions of a captions
layer, computed on a worker thread of QGIS's task manager.

Like :class:`~.tasks.CaptionRasterTask`, ``run()`` touches no layer, project or widget: it only
calls the engine with a file path and a layer name. ``finished()`` runs on the main thread: it
logs a failure (a bug with its traceback) to the "MapScribe" tab of the log and hands the task
to its listener (the captions panel), if one is still attached.

``write=True`` stores the regions layer and the overview in the GeoPackage (after a run, or
when people ask for it); ``write=False`` only reads them again as the engine describes them
(a layer chosen in the panel that was described before: the regions come with their tiles).
Describing cannot stop half-way: cancelling (unloading the plugin) only drops its result.
"""

from __future__ import annotations

from pathlib import Path
from typing import Callable, Optional

from qgis.core import Qgis, QgsTask

from .. import model as engine
from ..model import MapScribeError
from .tasks import keep_alive, let_go
from .ui import bug_message, log_message, tr, traceback_text


class DescribeCaptionsTask(QgsTask):
    """``describe_captions(gpkg, layer, write=write)`` as a QGIS task.

    After ``finished()``: ``description`` (the engine's Description) or ``error`` (a message
    for people) and ``error_details`` (the traceback of an unexpected failure, for the log).
    """

    def __init__(self, gpkg: Path, layer: str, *, write: bool = True,
                 on_finished: Optional[Callable[["DescribeCaptionsTask"], None]] = None) -> None:
        super().__init__(tr("MapScribe: describing {name}").format(name=Path(gpkg).name),
                         QgsTask.Flag.CanCancel)
        self.gpkg = Path(gpkg)
        self.layer = layer
        self.write = write
        self.on_finished = on_finished
        self.description = None
        self.error: Optional[str] = None
        self.error_details: Optional[str] = None
        keep_alive(self)

    def detach(self) -> None:
        """Forget the listener: whoever asked for the description is gone."""
        self.on_finished = None

    # --- worker thread ---------------------------------------------------------------------
    def run(self) -> bool:
        if self.isCanceled():
            return False
        try:
            self.description = engine.describe_captions(self.gpkg, self.layer, write=self.write)
            return True
        except MapScribeError as error:  # its message names the file, layer or field
            self.error = str(error)
            return False
        except Exception as error:  # noqa: BLE001 - a bug: told as one, its traceback logged
            self.error = bug_message(tr("Describing the captions"), error)
            self.error_details = traceback_text(error)
            return False

    # --- main thread -----------------------------------------------------------------------
    def finished(self, ok: bool) -> None:
        try:
            if not ok and self.error:
                details = (f"{self.error}\n\n{self.error_details}" if self.error_details
                           else self.error)
                log_message(tr("{gpkg}: {details}").format(gpkg=self.gpkg, details=details),
                            Qgis.MessageLevel.Critical if self.error_details
                            else Qgis.MessageLevel.Warning)
            if self.on_finished is not None:
                self.on_finished(self)
        finally:
            let_go(self)
