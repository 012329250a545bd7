"""MapScribe's runtime packages inside QGIS: are they there, and if not, install them.

QGIS's Python seldom has torch. The plugin still loads (nothing here or at plugin load imports
torch); :func:`missing_dependencies` says what is lacking without importing anything, and
:class:`DependencyPanel` explains it and installs the packages in the background into a folder
the plugin manages, with pip run by a real Python interpreter (see
:mod:`mapscribe.plugin.deps_install` for how and why).

The managed folder is ``<QGIS profile>/python/mapscribe-packages/py3.X``:

* the profile folder is always writable by the user (no administrator rights, unlike QGIS's
  own Python on Windows or /usr on Linux) and is where QGIS already keeps the user's plugins,
  so removing the profile removes the packages too;
* ``py3.X``: compiled wheels (torch) fit one Python version; after a QGIS upgrade to another
  Python the old folder is simply not used and the panel offers to install again;
* ``MAPSCRIBE_PACKAGES_DIR`` replaces ``<profile>/python/mapscribe-packages`` (tests, or a
  folder shared by several profiles: the CUDA build takes about 5 GB).

The folder goes *first* on ``sys.path``, and only when the running Python lacks a runtime
package on its own: the folder holds only what QGIS's Python lacks or has too old (say
sympy), so those must win, while a QGIS whose Python already has everything never sees it.
"""

from __future__ import annotations

import importlib
import importlib.util
import json
import logging
import os
import shutil
import sys
import traceback
from pathlib import Path
from typing import List, Optional

from qgis.core import Qgis, QgsApplication, QgsMessageLog, QgsTask
from qgis.PyQt.QtCore import QCoreApplication, Qt, pyqtSignal
from qgis.PyQt.QtGui import QFontDatabase
from qgis.PyQt.QtWidgets import (QButtonGroup, QGroupBox, QHBoxLayout, QLabel, QPlainTextEdit,
                                 QProgressBar, QPushButton, QRadioButton, QVBoxLayout, QWidget)

from .deps_install import CPU, CPU_INDEX_URL, CUDA, INSTALL_RECORD, RUNTIME_PACKAGES, InstallError, InstallParams, InstallResult, RuntimePackage, install_runtime_packages, system_versions

LOGGER = logging.getLogger(__name__)
LOG_TAG = "MapScribe"
MANAGED_DIR_ENV = "MAPSCRIBE_PACKAGES_DIR"
MANAGED_DIR_NAME = "mapscribe-packages"
# An installation goes on when its panel is closed: the task's Python object must live on.
_RUNNING_TASKS: set = set()


def _tr(text: str) -> str:
    return QCoreApplication.translate("MapScribeDependencies", text)


# -- where, and what is missing --------------------------------------------------------------------
def managed_folder() -> Path:
    """The folder MapScribe installs its runtime packages into (it may not exist yet)."""
    configured = os.environ.get(MANAGED_DIR_ENV)
    base = (Path(configured) if configured
            else Path(QgsApplication.qgisSettingsDirPath()) / "python" / MANAGED_DIR_NAME)
    return base / f"py{sys.version_info[0]}.{sys.version_info[1]}"


def _lacking() -> List[RuntimePackage]:
    # find_spec locates a top-level module without importing it (no torch start-up cost).
    return [p for p in RUNTIME_PACKAGES if importlib.util.find_spec(p.module) is None]


def keep_triton_out() -> None:
    """Make ``import triton`` fail in this process, unless something imported it already.

    torchvision imports torch._dynamo, which imports triton when it is installed (PyPI's
    Linux torch requires it); loading triton's bundled LLVM next to the LLVM that Mesa's
    OpenGL has loaded into QGIS kills QGIS with a segmentation fault (seen with QGIS 3.22 under
    Xvfb). triton only serves torch.compile, which MapScribe never uses; torch treats a failed
    ``import triton`` as "no triton"."""
    sys.modules.setdefault("triton", None)


def ensure_managed_path() -> Optional[Path]:
    """Put the managed folder first on ``sys.path`` if it exists and the running Python lacks a
    runtime package on its own; return the folder when it is on the path. Also keeps triton
    out (:func:`keep_triton_out`). Call it at plugin load, before anything imports torch, and
    after an installation."""
    keep_triton_out()
    folder = managed_folder()
    if str(folder) in sys.path:
        return folder
    if not folder.is_dir() or not _lacking():
        return None
    sys.path.insert(0, str(folder))
    importlib.invalidate_caches()
    LOGGER.info("MapScribe's packages are taken from %s", folder)
    return folder


def missing_dependencies() -> List[str]:
    """The pip names of the runtime packages that cannot be imported (fast; imports nothing)."""
    ensure_managed_path()
    # The folder's contents may have changed since Python last listed it (an installation).
    importlib.invalidate_caches()
    return [p.name for p in _lacking()]


def install_record() -> Optional[dict]:
    """What the last installation into the managed folder put there, or None."""
    path = managed_folder() / INSTALL_RECORD
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None


def nvidia_gpu_present() -> bool:
    """A hint for the default choice only: is there an NVIDIA driver on this computer?"""
    return Path("/proc/driver/nvidia/version").exists() or shutil.which("nvidia-smi") is not None


# -- the background installation -------------------------------------------------------------------
class InstallDependenciesTask(QgsTask):
    """Runs the installation in QGIS's task manager; ``output`` carries pip's lines live (from
    the worker thread: Qt queues them to the panel), ``ended`` fires in the main thread."""

    output = pyqtSignal(str)
    ended = pyqtSignal(bool)

    def __init__(self, params: InstallParams) -> None:
        super().__init__(_tr("MapScribe: installing PyTorch"), QgsTask.CanCancel)
        self.params = params
        self.result: Optional[InstallResult] = None
        self.error: Optional[InstallError] = None

    def run(self) -> bool:  # worker thread: no widgets here
        try:
            self.result = install_runtime_packages(self.params, self.output.emit,
                                                   self.isCanceled)
            return True
        except InstallError as error:
            self.error = error
        except Exception as error:  # an installer bug: say so, with the traceback in the log
            self.error = InstallError("pip", f"The installer failed unexpectedly: {error}",
                                      traceback.format_exc())
        return False

    def finished(self, result: bool) -> None:  # main thread
        if not result and self.error is None:
            self.error = InstallError("cancelled", _tr("The installation was cancelled."))
        self.ended.emit(bool(result))
        _RUNNING_TASKS.discard(self)


# -- the panel -------------------------------------------------------------------------------------
class DependencyPanel(QWidget):
    """Says exactly which runtime packages are missing, offers CPU or CUDA, installs them into
    the managed folder in the background with pip's output shown live, and reports a failure
    with its log. Emits ``installed`` once everything imports.

    ``target``, ``index_url``, ``pip_timeout_s`` and ``pip_retries`` exist for mirrors and tests
    (an unreachable index); the defaults are what users get."""

    installed = pyqtSignal()

    def __init__(self, parent: Optional[QWidget] = None, target: Optional[str] = None,
                 index_url: Optional[str] = None, pip_timeout_s: float = 60.0,
                 pip_retries: int = 2) -> None:
        super().__init__(parent)
        self.setObjectName("MapScribeDependencyPanel")
        self._target = target
        self._index_url = index_url
        self._timeout_s, self._retries = pip_timeout_s, pip_retries
        self.task: Optional[InstallDependenciesTask] = None
        self.last_error: Optional[InstallError] = None
        self.last_result: Optional[InstallResult] = None
        self.setAccessibleName(_tr("MapScribe dependencies"))
        self.setAccessibleDescription(_tr(
            "Lists the Python packages MapScribe needs that QGIS lacks, and installs them."))
        self._build()
        self.refresh()

    # --- building -------------------------------------------------------------------------------
    def _label(self, name: str, accessible: str) -> QLabel:
        label = QLabel(self)
        label.setObjectName(name)
        label.setWordWrap(True)
        label.setTextFormat(Qt.PlainText)
        # Focusable and selectable so a screen reader reaches it with Tab and can read it.
        label.setTextInteractionFlags(Qt.TextSelectableByMouse | Qt.TextSelectableByKeyboard)
        label.setFocusPolicy(Qt.StrongFocus)
        label.setAccessibleName(accessible)
        return label

    def _build(self) -> None:
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        self.missing_label = self._label("MapScribeMissingPackages", _tr("Missing packages"))
        self.where_label = self._label("MapScribeManagedFolder", _tr("Where they go"))

        self.variant_box = QGroupBox(_tr("Which PyTorch build"), self)
        self.variant_box.setAccessibleName(_tr("Which PyTorch build to install"))
        box_layout = QVBoxLayout(self.variant_box)
        self.cpu_radio = QRadioButton(self.variant_box)
        self.cpu_radio.setObjectName("MapScribeInstallCpu")
        self.cuda_radio = QRadioButton(self.variant_box)
        self.cuda_radio.setObjectName("MapScribeInstallCuda")
        if sys.platform == "darwin":
            # One build for macOS (CPU and the Apple GPU); CUDA does not exist there.
            self.cpu_radio.setText(_tr("PyTorch for macOS (CPU and Apple GPU)"))
            self.cuda_radio.hide()
        else:
            self.cpu_radio.setText(_tr("&CPU only: works on every computer; a smaller download "
                                       "from download.pytorch.org"))
            self.cuda_radio.setText(_tr("&NVIDIA GPU (CUDA): much faster with an NVIDIA graphics "
                                        "card; about 5 GB from the default package index"))
        self.cpu_radio.setAccessibleName(_tr("CPU only build"))
        self.cpu_radio.setAccessibleDescription(_tr(
            "PyTorch without GPU support, from {}.").format(CPU_INDEX_URL))
        self.cuda_radio.setAccessibleName(_tr("NVIDIA CUDA build"))
        self.cuda_radio.setAccessibleDescription(_tr(
            "PyTorch with NVIDIA GPU support (CUDA); about 5 GB on disk. It also runs on the "
            "CPU."))
        self.variant_group = QButtonGroup(self)
        self.variant_group.addButton(self.cpu_radio)
        self.variant_group.addButton(self.cuda_radio)
        box_layout.addWidget(self.cpu_radio)
        box_layout.addWidget(self.cuda_radio)
        (self.cuda_radio if nvidia_gpu_present() and sys.platform != "darwin"
         else self.cpu_radio).setChecked(True)

        buttons = QHBoxLayout()
        self.install_button = QPushButton(_tr("&Install"), self)
        self.install_button.setObjectName("MapScribeInstallButton")
        self.install_button.setAccessibleName(_tr("Install the missing packages"))
        self.install_button.setAccessibleDescription(_tr(
            "Downloads and installs the missing packages in the background; QGIS stays usable."))
        self.install_button.clicked.connect(self.start_install)
        self.cancel_button = QPushButton(_tr("Ca&ncel installation"), self)
        self.cancel_button.setObjectName("MapScribeCancelInstallButton")
        self.cancel_button.setAccessibleName(_tr("Cancel the installation"))
        self.cancel_button.clicked.connect(self.cancel_install)
        self.cancel_button.setEnabled(False)
        buttons.addWidget(self.install_button)
        buttons.addWidget(self.cancel_button)
        buttons.addStretch(1)

        self.progress = QProgressBar(self)
        self.progress.setObjectName("MapScribeInstallProgress")
        self.progress.setAccessibleName(_tr("Installation progress"))
        self.progress.setRange(0, 0)  # pip gives no overall fraction: a busy indicator
        self.progress.hide()
        self.status_label = self._label("MapScribeInstallStatus", _tr("Installation status"))

        self.log_view = QPlainTextEdit(self)
        self.log_view.setObjectName("MapScribeInstallLog")
        self.log_view.setReadOnly(True)
        # Read-only still takes focus and lets the keyboard move through (and copy) the log.
        self.log_view.setTextInteractionFlags(Qt.TextSelectableByKeyboard |
                                              Qt.TextSelectableByMouse)
        self.log_view.setMaximumBlockCount(20000)
        self.log_view.setFont(QFontDatabase.systemFont(QFontDatabase.FixedFont))
        self.log_view.setAccessibleName(_tr("Installation log"))
        self.log_view.setAccessibleDescription(_tr("pip's output, line by line, as it runs."))
        self.log_view.setMinimumHeight(120)
        self.log_view.hide()

        for widget in (self.missing_label, self.where_label, self.variant_box):
            layout.addWidget(widget)
        layout.addLayout(buttons)
        for widget in (self.progress, self.status_label, self.log_view):
            layout.addWidget(widget)
        QWidget.setTabOrder(self.missing_label, self.where_label)
        QWidget.setTabOrder(self.where_label, self.cpu_radio)
        QWidget.setTabOrder(self.cpu_radio, self.cuda_radio)
        QWidget.setTabOrder(self.cuda_radio, self.install_button)
        QWidget.setTabOrder(self.install_button, self.cancel_button)
        QWidget.setTabOrder(self.cancel_button, self.status_label)
        QWidget.setTabOrder(self.status_label, self.log_view)

    # --- state ----------------------------------------------------------------------------------
    def target_folder(self) -> Path:
        return Path(self._target) if self._target else managed_folder()

    def missing(self) -> List[RuntimePackage]:
        names = set(missing_dependencies())
        return [p for p in RUNTIME_PACKAGES if p.name in names]

    def refresh(self) -> None:
        """Describe what is missing now (e.g. after the user installed something elsewhere)."""
        missing = self.missing()
        kept = ", ".join(f"{name} {version}" for name, version in system_versions().items())
        if missing:
            lines = [_tr("MapScribe cannot caption or train yet: QGIS's Python lacks")]
            lines += [f"  • {p.name} {p.version} ({p.purpose})" for p in missing]
            self.missing_label.setText("\n".join(lines))
            self.where_label.setText(_tr(
                "Install them into a folder only MapScribe uses, without administrator "
                "rights:\n{}\nQGIS's own packages ({}) stay as they are.").format(
                    self.target_folder(), kept or _tr("none found")))
        else:
            self.missing_label.setText(_tr("Every package MapScribe needs can be imported."))
            used = str(self.target_folder()) in sys.path
            self.where_label.setText(
                _tr("They are taken from {}, which MapScribe manages.").format(
                    self.target_folder()) if used
                else _tr("They come from QGIS's own Python."))
        self.install_button.setEnabled(bool(missing) and self.task is None)
        self.variant_box.setEnabled(bool(missing) and self.task is None)
        self.setAccessibleDescription(self.missing_label.text())

    def selected_variant(self) -> str:
        return CUDA if self.cuda_radio.isChecked() else CPU

    def set_variant(self, variant: str) -> None:
        (self.cuda_radio if variant == CUDA else self.cpu_radio).setChecked(True)

    def install_params(self) -> InstallParams:
        return InstallParams(target=str(self.target_folder()), variant=self.selected_variant(),
                             index_url=self._index_url, timeout_s=self._timeout_s,
                             retries=self._retries)

    # --- installing -----------------------------------------------------------------------------
    def start_install(self) -> None:
        if self.task is not None:
            return
        params = self.install_params()
        self.last_error = self.last_result = None
        self.log_view.clear()
        self.log_view.show()
        self.progress.show()
        self.install_button.setEnabled(False)
        self.variant_box.setEnabled(False)
        self.cancel_button.setEnabled(True)
        build = _tr("CUDA") if params.variant == CUDA else _tr("CPU")
        self._set_status(_tr("Installing the {} build of PyTorch into {} … QGIS stays usable; "
                             "this can take several minutes.").format(build, params.target))
        self.task = InstallDependenciesTask(params)
        self.task.output.connect(self._append_output)
        self.task.ended.connect(self._install_ended)
        _RUNNING_TASKS.add(self.task)
        QgsApplication.taskManager().addTask(self.task)

    def cancel_install(self) -> None:
        if self.task is not None:
            self.task.cancel()
            self._set_status(_tr("Cancelling …"))

    def is_installing(self) -> bool:
        return self.task is not None

    def _append_output(self, line: str) -> None:
        self.log_view.appendPlainText(line)

    def _set_status(self, text: str) -> None:
        self.status_label.setText(text)
        self.status_label.setAccessibleDescription(text)

    def _install_ended(self, ok: bool) -> None:
        task, self.task = self.task, None
        self.progress.hide()
        self.cancel_button.setEnabled(False)
        if ok and task is not None and task.result is not None:
            ensure_managed_path()
            still = missing_dependencies()
            if not still:
                self.last_result = result = task.result
                cuda = result.versions.get("cuda")
                self._set_status(_tr("Installed in {:.0f} s: torch {} ({}), torchvision {}. "
                                     "MapScribe is ready.").format(
                    result.seconds, result.versions.get("torch"),
                    _tr("CUDA {}").format(cuda) if cuda else _tr("CPU"),
                    result.versions.get("torchvision")))
                QgsMessageLog.logMessage(self.status_label.text(), LOG_TAG, Qgis.Info)
                self.refresh()
                self.installed.emit()
                return
            error = InstallError("verify", _tr("The installation finished but {} still cannot "
                                               "be found on QGIS's Python path.").format(
                ", ".join(still)), "")
        else:
            error = task.error if task is not None and task.error else InstallError(
                "pip", _tr("The installation failed."))
        self.last_error = error
        self._set_status(_tr("Installation failed: {}").format(error.message))
        QgsMessageLog.logMessage(f"{error.message}\n{error.log[-20000:]}", LOG_TAG, Qgis.Critical)
        if error.log and not self.log_view.toPlainText().strip():
            self.log_view.setPlainText(error.log)
        self.refresh()
        # Keyboard and screen-reader users land on the explanation.
        self.status_label.setFocus(Qt.OtherFocusReason)
