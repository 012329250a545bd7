"""The dependency panel: says what QGIS's Python lacks, offers two choices that say their size,
installs the chosen one into the managed folder (:mod:`.managed`) in the background, and
reports a failure with its log.

* *Caption*: ONNX Runtime (about 30 MB); numpy and Pillow stay QGIS's own. Enough to caption
  with any model file that carries its ONNX graphs (the default model does).
* *Caption and train*: PyTorch (torch + torchvision), the CPU build or the NVIDIA (CUDA) one.
* rasterio, when QGIS's Python lacks it, comes with either.

Every line is readable: texts wrap (radio buttons keep short names, their sizes are in wrapping
labels beside them), pip's log wraps, scrolls and can be copied, progress is in megabytes, and
the installation can be cancelled. After a successful installation the packages are imported
from the managed folder at once: no restart of QGIS.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any, Dict, List, Optional

from qgis.core import Qgis
from qgis.PyQt.QtCore import Qt, pyqtSignal
from qgis.PyQt.QtGui import QFontDatabase, QGuiApplication
from qgis.PyQt.QtWidgets import (
    QButtonGroup,
    QGridLayout,
    QGroupBox,
    QLabel,
    QPlainTextEdit,
    QProgressBar,
    QPushButton,
    QRadioButton,
    QVBoxLayout,
    QWidget,
)

from ..ui import describe, log_message, reading_label, set_tab_order, tr
from .download import mb_text
from .install_task import InstallDependenciesTask
from .managed import ensure_managed_path, managed_folder, missing_dependencies, nvidia_gpu_present
from .packages import (
    CAPTION,
    CAPTION_AND_TRAIN,
    CAPTIONING,
    CPU,
    CPU_INDEX_URL,
    CUDA,
    PACKAGES_BY_NAME,
    RASTERIO,
    RASTERIO_SIZE_MB,
    SIZES_MB,
    TRAINING,
    InstallError,
    InstallParams,
    InstallResult,
    system_versions,
)
from .versions import UnsupportedPythonError, readable_range

PROGRESS_STEPS = 1000


def _size(choice: str, variant: str) -> str:
    download, disk = SIZES_MB[(choice, variant)]
    return tr("about {download} to download, {disk} on disk").format(
        download=_mb(download), disk=_mb(disk))


def _mb(value: int) -> str:
    return f"{value / 1000:.1f} GB" if value >= 1000 else f"{value} MB"


def _range(name: str) -> str:
    try:
        return readable_range(name)
    except UnsupportedPythonError:
        return name


def _info_label(object_name: str, name: str, parent: QWidget) -> QLabel:
    # holds_paths: a URL is one long word; it must not widen a narrow dock.
    label = reading_label(object_name, name, parent, holds_paths=True, plain=True)
    label.setIndent(24)  # under its radio button's text
    return label


class DependencyPanel(QWidget):
    """What is missing, the two choices, Install / Cancel / Copy log, progress in MB, the status
    and pip's log. Emits ``installed`` once everything imports.

    ``purpose`` is what the window needs (captioning: either choice; training: PyTorch).
    ``target`` and ``install_options`` (InstallParams fields: index_url, find_links,
    isolated, timeout_s, retries, also, requirements …) exist for mirrors and tests; the
    defaults are what users get."""

    installed = pyqtSignal()

    def __init__(self, parent: Optional[QWidget] = None, purpose: str = CAPTIONING,
                 target: Optional[str] = None,
                 install_options: Optional[Dict[str, Any]] = None) -> None:
        super().__init__(parent)
        self.setObjectName("MapScribeDependencyPanel")
        self.purpose = purpose
        self._target = target
        self._options = dict(install_options or {})
        self.task: Optional[InstallDependenciesTask] = None
        self.last_error: Optional[InstallError] = None
        self.last_result: Optional[InstallResult] = None
        self.setAccessibleName(tr("MapScribe dependencies"))
        self._build()
        self.refresh()

    # --- building -------------------------------------------------------------------------------
    def _build(self) -> None:
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        self.missing_label = reading_label("MapScribeMissingPackages", tr("Missing packages"),
                                           self, holds_paths=True, plain=True)
        self.where_label = reading_label("MapScribeManagedFolder", tr("Where they go"), self,
                                         holds_paths=True, plain=True)
        self.choice_box = QGroupBox(tr("What to install"), self)
        self.choice_box.setAccessibleName(tr("What to install"))
        box = QVBoxLayout(self.choice_box)
        self.caption_radio = QRadioButton(tr("Capt&ion"), self.choice_box)
        self.caption_radio.setObjectName("MapScribeInstallCaption")
        self.caption_info = _info_label("MapScribeInstallCaptionInfo", tr("About Caption"),
                                        self.choice_box)
        self.train_radio = QRadioButton(tr("Caption and trai&n"), self.choice_box)
        self.train_radio.setObjectName("MapScribeInstallTrain")
        self.train_info = _info_label("MapScribeInstallTrainInfo",
                                      tr("About Caption and train"), self.choice_box)
        self.cpu_radio = QRadioButton(tr("CPU only"), self.choice_box)
        self.cpu_radio.setObjectName("MapScribeInstallCpu")
        self.cuda_radio = QRadioButton(tr("NVIDIA GPU (CUDA)"), self.choice_box)
        self.cuda_radio.setObjectName("MapScribeInstallCuda")
        self.build_info = _info_label("MapScribeInstallBuildInfo", tr("About the builds"),
                                      self.choice_box)
        self.choice_group, self.build_group = QButtonGroup(self), QButtonGroup(self)
        for radio in (self.caption_radio, self.train_radio):
            self.choice_group.addButton(radio)
        for radio in (self.cpu_radio, self.cuda_radio):
            self.build_group.addButton(radio)
        # One under the other: side by side they would widen a narrow dock.
        builds = QVBoxLayout()
        builds.setContentsMargins(24, 0, 0, 0)
        builds.addWidget(self.cpu_radio)
        builds.addWidget(self.cuda_radio)
        box.addWidget(self.caption_radio)
        box.addWidget(self.caption_info)
        box.addWidget(self.train_radio)
        box.addWidget(self.train_info)
        box.addLayout(builds)
        box.addWidget(self.build_info)
        self._describe_choices()
        if self.purpose == TRAINING:
            self.caption_radio.setEnabled(False)
            self.train_radio.setChecked(True)
        else:
            self.caption_radio.setChecked(True)
        (self.cuda_radio if nvidia_gpu_present() and sys.platform != "darwin"
         else self.cpu_radio).setChecked(True)
        self.train_radio.toggled.connect(self._choice_changed)

        buttons = QGridLayout()  # two a row: three would widen a narrow dock
        self.install_button = QPushButton(tr("Insta&ll"), self)
        self.install_button.setObjectName("MapScribeInstallButton")
        describe(self.install_button, tr("Install the chosen packages"), tr(
            "Downloads and installs the chosen packages in the background; QGIS stays usable, "
            "and MapScribe uses them as soon as they are in, without a restart."))
        self.install_button.clicked.connect(self.start_install)
        self.cancel_button = QPushButton(tr("Stop installin&g"), self)
        self.cancel_button.setObjectName("MapScribeCancelInstallButton")
        describe(self.cancel_button, tr("Cancel the installation"))
        self.cancel_button.clicked.connect(self.cancel_install)
        self.cancel_button.setEnabled(False)
        self.copy_button = QPushButton(tr("Copy log"), self)
        self.copy_button.setObjectName("MapScribeCopyInstallLog")
        describe(self.copy_button, tr("Copy the installation log"), tr(
            "Copies pip's whole output to the clipboard, e.g. for a bug report."))
        self.copy_button.clicked.connect(self.copy_log)
        self.copy_button.setEnabled(False)
        buttons.addWidget(self.install_button, 0, 0)
        buttons.addWidget(self.cancel_button, 0, 1)
        buttons.addWidget(self.copy_button, 1, 0)
        buttons.setColumnStretch(2, 1)

        self.progress = QProgressBar(self)
        self.progress.setObjectName("MapScribeInstallProgress")
        self.progress.setAccessibleName(tr("Download progress in megabytes"))
        self.progress.setRange(0, 0)
        self.progress.hide()
        self.status_label = reading_label("MapScribeInstallStatus", tr("Installation status"),
                                          self, holds_paths=True, plain=True)
        self.log_view = QPlainTextEdit(self)
        self.log_view.setObjectName("MapScribeInstallLog")
        self.log_view.setReadOnly(True)
        # Long pip lines wrap.
        self.log_view.setLineWrapMode(QPlainTextEdit.LineWrapMode.WidgetWidth)
        # Read-only still takes focus and lets the keyboard move through (and copy) the log.
        self.log_view.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByKeyboard |
                                              Qt.TextInteractionFlag.TextSelectableByMouse)
        self.log_view.setMaximumBlockCount(20000)
        self.log_view.setFont(QFontDatabase.systemFont(QFontDatabase.SystemFont.FixedFont))
        describe(self.log_view, tr("Installation log"), tr(
            "pip's output, line by line, as it runs; select it or use Copy log."))
        self.log_view.setMinimumHeight(120)
        self.log_view.hide()

        for widget in (self.missing_label, self.choice_box, self.where_label):
            layout.addWidget(widget)
        layout.addLayout(buttons)
        for widget in (self.progress, self.status_label, self.log_view):
            layout.addWidget(widget)
        set_tab_order([self.missing_label, self.caption_radio, self.caption_info,
                       self.train_radio, self.train_info, self.cpu_radio, self.cuda_radio,
                       self.build_info, self.where_label, self.install_button,
                       self.cancel_button, self.copy_button, self.status_label, self.log_view])

    def _describe_choices(self) -> None:
        kept = ", ".join(f"{name} {version}" for name, version in system_versions().items())
        caption = tr(
            "{onnx}: {size}. Captions with any model that carries its ONNX graphs (the "
            "default model does), on the CPU. QGIS's own {kept} stay.").format(
                onnx=_range("onnxruntime"), size=_size(CAPTION, CPU),
                kept=kept or "numpy, Pillow")
        train = tr("{torch} and {vision}: needed to train a model (and captions too).").format(
            torch=_range("torch"), vision=_range("torchvision"))
        if self.purpose == TRAINING:
            caption += " " + tr("Training needs PyTorch: choose Caption and train.")
        if sys.platform == "darwin":
            # One build for macOS (CPU and the Apple GPU); CUDA does not exist there.
            self.cpu_radio.setText(tr("CPU and Apple GPU"))
            self.cuda_radio.hide()
            builds = tr("PyTorch for macOS: {size}.").format(size=_size(CAPTION_AND_TRAIN, CPU))
        else:
            builds = tr("CPU only: {cpu}, from {index}. NVIDIA GPU (CUDA): much faster with an "
                        "NVIDIA graphics card; {cuda}, from the default package index.").format(
                cpu=_size(CAPTION_AND_TRAIN, CPU), index=CPU_INDEX_URL,
                cuda=_size(CAPTION_AND_TRAIN, CUDA))
        for radio, label, text in ((self.caption_radio, self.caption_info, caption),
                                   (self.train_radio, self.train_info, train)):
            label.setText(text)
            describe(radio, radio.text().replace("&", ""), text)
        self.build_info.setText(builds)
        describe(self.cpu_radio, tr("CPU only build of PyTorch"), builds)
        describe(self.cuda_radio, tr("NVIDIA CUDA build of PyTorch"), builds)

    # --- state ----------------------------------------------------------------------------------
    def target_folder(self) -> Path:
        return Path(self._target) if self._target else managed_folder()

    def missing(self) -> List[str]:
        return missing_dependencies(self.purpose)

    def refresh(self) -> None:
        """Say what is missing now (e.g. after the user installed something elsewhere)."""
        missing = self.missing()
        busy = self.task is not None
        if missing:
            needs = (tr("To caption, MapScribe needs ONNX Runtime or PyTorch, and rasterio.")
                     if self.purpose == CAPTIONING else tr("To train, MapScribe needs PyTorch."))
            lines = [needs, tr("QGIS's Python lacks:")]
            lines += [f"  • {name} ({PACKAGES_BY_NAME[name].purpose})" for name in missing]
            if RASTERIO.name in missing:
                lines.append(tr("rasterio comes with either choice ({size}).").format(
                    size=f"{_mb(RASTERIO_SIZE_MB[0])}"))
            self.missing_label.setText("\n".join(lines))
            self.where_label.setText(tr(
                "They go into a folder only MapScribe uses, without administrator rights: "
                "{}").format(self.target_folder()))
        else:
            self.missing_label.setText(tr("Every package MapScribe needs can be imported."))
            used = str(self.target_folder()) in sys.path
            self.where_label.setText(
                tr("They are taken from {}, which MapScribe manages.").format(
                    self.target_folder()) if used
                else tr("They come from QGIS's own Python."))
        self.install_button.setEnabled(bool(missing) and not busy)
        self.choice_box.setEnabled(bool(missing) and not busy)
        self._choice_changed()
        self.setAccessibleDescription(self.missing_label.text())

    def _choice_changed(self, *_args) -> None:
        torch = self.train_radio.isChecked()
        for widget in (self.cpu_radio, self.cuda_radio, self.build_info):
            widget.setEnabled(torch)

    def selected_choice(self) -> str:
        return CAPTION_AND_TRAIN if self.train_radio.isChecked() else CAPTION

    def selected_variant(self) -> str:
        return CUDA if self.cuda_radio.isChecked() else CPU

    def set_choice(self, choice: str, variant: str = CPU) -> None:
        (self.train_radio if choice == CAPTION_AND_TRAIN else self.caption_radio).setChecked(True)
        (self.cuda_radio if variant == CUDA else self.cpu_radio).setChecked(True)

    def set_variant(self, variant: str) -> None:
        self.set_choice(CAPTION_AND_TRAIN, variant)

    def install_params(self) -> InstallParams:
        options = dict(self._options)
        also = tuple(options.pop("also", ()))
        if RASTERIO.name in self.missing() and RASTERIO.name not in also:
            also += (RASTERIO.name,)
        return InstallParams(target=str(self.target_folder()), choice=self.selected_choice(),
                             variant=self.selected_variant(), also=also, **options)

    # --- installing -----------------------------------------------------------------------------
    def start_install(self) -> None:
        if self.task is not None:
            return
        params = self.install_params()
        self.last_error = self.last_result = None
        self.log_view.clear()
        self.log_view.show()
        self.progress.setRange(0, 0)  # busy until pip has resolved what to fetch
        self.progress.setFormat(tr("resolving…"))
        self.progress.show()
        self.install_button.setEnabled(False)
        self.choice_box.setEnabled(False)
        self.cancel_button.setEnabled(True)
        self.copy_button.setEnabled(True)
        what = ", ".join(p.name for p in params.packages())
        self._set_status(tr("Installing {what} into {target}… QGIS stays usable.").format(
            what=what, target=params.target))
        self.task = InstallDependenciesTask(params)
        self.task.output.connect(self._append_output)
        self.task.downloaded.connect(self._downloaded)
        self.task.ended.connect(self._install_ended)
        self.task.start()

    def cancel_install(self) -> None:
        if self.task is not None:
            self.task.cancel()
            self._set_status(tr("Cancelling…"))

    def is_installing(self) -> bool:
        return self.task is not None

    def copy_log(self) -> None:
        QGuiApplication.clipboard().setText(self.log_view.toPlainText())

    def _append_output(self, line: str) -> None:
        self.log_view.appendPlainText(line)

    def _downloaded(self, done: float, total: float, exact: bool) -> None:
        text = mb_text(int(done), int(total), exact)
        if total > 0:
            self.progress.setRange(0, PROGRESS_STEPS)
            self.progress.setValue(int(PROGRESS_STEPS * min(1.0, done / total)))
        self.progress.setFormat(text)
        self.progress.setAccessibleDescription(tr("{text} downloaded").format(text=text))

    def _set_status(self, text: str) -> None:
        self.status_label.setText(text)
        self.status_label.setAccessibleDescription(text)

    def _install_ended(self, ok: bool) -> None:
        task, self.task = self.task, None
        self.progress.hide()
        self.cancel_button.setEnabled(False)
        if ok and task is not None and task.result is not None:
            ensure_managed_path()
            still = missing_dependencies(self.purpose)
            if not still:
                self.last_result = result = task.result
                versions = ", ".join(f"{p.name} {result.versions[p.module]}"
                                     for p in task.params.packages()
                                     if result.versions.get(p.module))
                cuda = result.versions.get("cuda")
                self._set_status(tr(
                    "Installed in {seconds:.0f} s ({mb:.1f} MB): {versions}{build}. MapScribe "
                    "uses them now; QGIS need not be restarted.").format(
                        seconds=result.seconds, mb=result.downloaded_mb, versions=versions,
                        build=(tr(", CUDA {}").format(cuda) if cuda else "")))
                log_message(self.status_label.text(), Qgis.MessageLevel.Info)
                self.refresh()
                self.installed.emit()
                return
            error = InstallError("verify", tr("The installation finished but {} still cannot "
                                               "be found on QGIS's Python path.").format(
                ", ".join(still)), "")
        else:
            error = task.error if task is not None and task.error else InstallError(
                "pip", tr("The installation failed."))
        self.last_error = error
        self._set_status(tr("Installation failed: {}").format(error.message))
        log_message(f"{error.message}\n{error.log[-20000:]}", Qgis.MessageLevel.Critical)
        if error.log and not self.log_view.toPlainText().strip():
            self.log_view.setPlainText(error.log)
        self.refresh()
        # Keyboard and screen-reader users land on the explanation.
        self.status_label.setFocus(Qt.FocusReason.OtherFocusReason)


__all__ = ["DependencyPanel", "InstallDependenciesTask"]
