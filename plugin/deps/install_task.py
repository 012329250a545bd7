"""The installation as a QgsTask: :func:`~.install.install_runtime_packages` in QGIS's task
manager, its output, its progress in megabytes and its end told to the panel by signals."""

from __future__ import annotations

from typing import Optional

from qgis.core import QgsTask
from qgis.PyQt.QtCore import pyqtSignal

from ..ui import bug_message, tr, traceback_text
from .install import install_runtime_packages
from .packages import CAPTION, InstallError, InstallParams, InstallResult

# An installation goes on when its panel is closed: the task's Python object must live on.
_RUNNING_TASKS: set = set()


class InstallDependenciesTask(QgsTask):
    """Runs the installation in QGIS's task manager; ``output`` carries pip's lines and
    ``downloaded`` (done bytes, total bytes, whether the total is exact) the download, live
    (from the worker thread: Qt queues them to the panel); ``ended`` fires in the main thread."""

    output = pyqtSignal(str)
    downloaded = pyqtSignal(float, float, bool)
    ended = pyqtSignal(bool)

    def __init__(self, params: InstallParams) -> None:
        what = tr("ONNX Runtime") if params.choice == CAPTION else tr("PyTorch")
        super().__init__(tr("MapScribe: installing {what}").format(what=what),
                         QgsTask.Flag.CanCancel)
        self.params = params
        self.result: Optional[InstallResult] = None
        self.error: Optional[InstallError] = None

    def start(self) -> None:
        """Hand the task to QGIS's task manager, keeping it alive until it ends."""
        from qgis.core import QgsApplication

        _RUNNING_TASKS.add(self)
        QgsApplication.taskManager().addTask(self)

    def _progress(self, done: int, total: int, exact: bool) -> None:
        self.downloaded.emit(float(done), float(total), exact)
        if total > 0:
            self.setProgress(min(100.0, 100.0 * done / total))

    def run(self) -> bool:  # worker thread: no widgets here
        try:
            self.result = install_runtime_packages(self.params, self.output.emit,
                                                   self.isCanceled, self._progress)
            return True
        except InstallError as error:
            self.error = error
        except Exception as error:  # noqa: BLE001 - a bug of the installer, told as one
            # The panel logs the error's log text: the traceback goes there.
            self.error = InstallError("pip", bug_message(tr("The installation"), error),
                                      traceback_text(error))
        return False

    def finished(self, result: bool) -> None:  # main thread
        if not result and self.error is None:
            self.error = InstallError("cancelled", tr("The installation was cancelled."))
        self.ended.emit(bool(result))
        _RUNNING_TASKS.discard(self)
