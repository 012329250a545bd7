"""The training dialog: dataset folder → data check → parameters → output model → Train.

It only gathers parameters into the engine's TrainJobParams and shows what the engine reports:
the data check runs the engine's ``read_caption_folder`` and ``summarise`` in a QgsTask, and
training runs ``train_captioner`` in a :class:`~.train_task.TrainCaptionerTask`. Each epoch's
loss and metrics go into a live chart (with a table of the same numbers). Cancel leaves the
engine's checkpoint, and the dialog offers Resume whenever the chosen output's checkpoint
exists. On success it offers to use the new model in the MapScribe dock.

Torch is imported when the dialog opens (for the backbone and device lists), never at plugin
load; when the runtime packages are missing the dialog shows the dependency panel instead.
"""

from __future__ import annotations

import logging
import time
from pathlib import Path
from typing import Callable, List, Optional

from qgis.core import Qgis, QgsApplication, QgsMessageLog, QgsTask
from qgis.gui import QgsCollapsibleGroupBox, QgsFileWidget
from qgis.PyQt.QtCore import QCoreApplication, Qt, pyqtSignal
from qgis.PyQt.QtGui import QDoubleValidator
from qgis.PyQt.QtWidgets import (QCheckBox, QComboBox, QDialog, QDoubleSpinBox, QFormLayout,
                                 QGroupBox, QHBoxLayout, QLabel, QLineEdit, QMessageBox,
                                 QPlainTextEdit, QProgressBar, QPushButton, QScrollArea,
                                 QSpinBox, QToolButton, QVBoxLayout, QWidget)

from .accessible import browse_button, describe
from .deps import DependencyPanel, missing_dependencies
from .live_chart import EpochPoint, LiveChart
from .train_task import CANCELLED, COMPLETED, TrainCaptionerTask

LOGGER = logging.getLogger(__name__)
LOG_TAG = "MapScribe"
MODEL_SUFFIX = ".mscap"
CHECKPOINT_SUFFIX = ".checkpoint.pt"  # what TrainJobParams.checkpoint_path appends
# arcgis.learn's decoder defaults, as in model/decoder.py DecoderParams.
DECODER_DEFAULTS = {"embed_size": 256, "hidden_size": 512, "attention_size": 256,
                    "teacher_forcing": 1.0, "dropout": 0.5}

_OPEN_DIALOGS: List["TrainDialog"] = []
# Tasks running for a dialog that may already be gone: a QgsTask's Python object must outlive
# its run, or QGIS calls into a deleted wrapper.
_RUNNING_TASKS: set = set()


def _tr(text: str) -> str:
    return QCoreApplication.translate("MapScribeTrainDialog", text)


class ParameterError(ValueError):
    """A parameter the user has to change; ``widget`` is where."""

    def __init__(self, message: str, widget: Optional[QWidget] = None):
        super().__init__(message)
        self.widget = widget


def checkpoint_for(model_path: str) -> Path:
    """The checkpoint the engine keeps for ``model_path`` (TrainJobParams.checkpoint_path)."""
    return Path(str(Path(model_path)) + CHECKPOINT_SUFFIX)


class DataCheckTask(QgsTask):
    """The engine's data check (reads and validates every entry and image) off the main
    thread: a large folder takes a while."""

    ended = pyqtSignal()

    def __init__(self, folder: str, val_split_pct: float, min_word_count: int) -> None:
        super().__init__(_tr("MapScribe: checking a caption dataset"), QgsTask.CanCancel)
        self.folder, self.val_split_pct, self.min_word_count = folder, val_split_pct, min_word_count
        self.caption_folder = None
        self.summary = None
        self.error: Optional[str] = None

    def run(self) -> bool:  # worker thread
        from ..model.data.records import DatasetError
        from ..model.data.folder import read_caption_folder
        from ..model.data.summary import summarise

        try:
            self.caption_folder = read_caption_folder(self.folder,
                                                      val_split_pct=self.val_split_pct)
            self.summary = summarise(self.caption_folder, self.min_word_count)
            return True
        except DatasetError as error:  # names the folder, file and entry already
            self.error = str(error)
        except Exception as error:
            LOGGER.exception("data check of %s failed", self.folder)
            self.error = _tr("The data check failed: {}").format(error)
        return False

    def finished(self, result: bool) -> None:  # main thread
        self.ended.emit()
        _RUNNING_TASKS.discard(self)


def summary_text(summary, caption_folder) -> str:
    """The data check for people: counts per split, vocabulary, lengths and every problem."""
    lines = [_tr("Format: {} (splits from {})").format(summary.format.upper(),
                                                      summary.split_source.replace("_", " "))]
    lines.append(_tr("Images / captions per split:"))
    for split, (images, captions) in summary.splits.items():
        lines.append(f"  {split}: {images} / {captions}")
    lines.append(_tr("Vocabulary: {} words (minimum word count {} in train)").format(
        summary.vocabulary_words, summary.min_word_count))
    length = summary.caption_length
    lines.append(_tr("Caption length in words: min {}, mean {}, median {}, 95th percentile {}, "
                     "max {}").format(length["min"], length["mean"], length["median"],
                                      length["p95"], length["max"]))
    problems = caption_folder.problems
    if not problems:
        lines.append(_tr("Problems: none"))
    else:
        lines.append(_tr("Problems: {} error(s), {} warning(s); entries with errors are left "
                         "out of training:").format(summary.errors, summary.warnings))
        lines += [f"  - {problem}" for problem in problems]
    return "\n".join(lines)


class TrainDialog(QDialog):
    """Non-modal. ``on_model_ready(model_path)`` is offered after a successful run."""

    def __init__(self, iface, parent: Optional[QWidget] = None,
                 on_model_ready: Optional[Callable[[str], None]] = None) -> None:
        super().__init__(parent)
        self.iface = iface
        self.on_model_ready = on_model_ready
        self.setObjectName("MapScribeTrainDialog")
        self.setWindowTitle(_tr("MapScribe: train a captioner"))
        self.setAccessibleName(_tr("Train a MapScribe captioner"))
        self.setAccessibleDescription(_tr(
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
        self._build()
        self._engine_ready = False
        self._prepare_engine_lists()
        self._update_buttons()

    # --- building -------------------------------------------------------------------------------
    @staticmethod
    def _name(widget: QWidget, object_name: str, name: str, description: str = "") -> QWidget:
        widget.setObjectName(object_name)
        return describe(widget, name, description)

    @staticmethod
    def _name_browse_button(file_widget: QgsFileWidget, name: str) -> None:
        describe(browse_button(file_widget), name)

    def _spin(self, object_name: str, name: str, description: str, low: int, high: int,
              value: int) -> QSpinBox:
        box = QSpinBox(self)
        box.setRange(low, high)
        box.setValue(value)
        return self._name(box, object_name, name, description)

    def _double(self, object_name: str, name: str, description: str, low: float, high: float,
                value: float, step: float) -> QDoubleSpinBox:
        box = QDoubleSpinBox(self)
        box.setRange(low, high)
        box.setDecimals(2)
        box.setSingleStep(step)
        box.setValue(value)
        return self._name(box, object_name, name, description)

    def _build(self) -> None:
        outer = QVBoxLayout(self)
        columns = QHBoxLayout()
        outer.addLayout(columns)
        scroll = QScrollArea(self)
        scroll.setWidgetResizable(True)
        # Tab moves between the fields (the area scrolls to the focused one by itself).
        scroll.setFocusPolicy(Qt.NoFocus)
        body = QWidget(scroll)
        layout = QVBoxLayout(body)
        scroll.setWidget(body)
        columns.addWidget(scroll, 3)
        self.body_layout = layout

        # Dataset --------------------------------------------------------------------------------
        data_box = QGroupBox(_tr("1. Dataset"), body)
        data_layout = QVBoxLayout(data_box)
        row = QHBoxLayout()
        self.dataset_widget = QgsFileWidget(data_box)
        self.dataset_widget.setStorageMode(QgsFileWidget.GetDirectory)
        self.dataset_widget.setDialogTitle(_tr("Caption dataset folder"))
        self._name(self.dataset_widget, "MapScribeDatasetFolder", _tr("Dataset folder"),
                   _tr("A folder with images/ and annotations.json (RSICD or COCO captions "
                       "format)."))
        self._name(self.dataset_widget.lineEdit(), "MapScribeDatasetFolderPath",
                   _tr("Dataset folder"), self.dataset_widget.accessibleDescription())
        self._name_browse_button(self.dataset_widget, _tr("Browse for the dataset folder"))
        self.dataset_widget.fileChanged.connect(self._dataset_changed)
        dataset_label = QLabel(_tr("&Dataset folder:"), data_box)
        dataset_label.setBuddy(self.dataset_widget.lineEdit())
        self.check_button = QPushButton(_tr("Chec&k data"), data_box)
        self._name(self.check_button, "MapScribeCheckDataButton", _tr("Check the dataset"),
                   _tr("Reads every entry and image and reports counts, vocabulary and "
                       "problems."))
        self.check_button.clicked.connect(self.check_data)
        row.addWidget(dataset_label)
        row.addWidget(self.dataset_widget, 1)
        row.addWidget(self.check_button)
        data_layout.addLayout(row)
        self.summary_view = QPlainTextEdit(data_box)
        self.summary_view.setReadOnly(True)
        self.summary_view.setTextInteractionFlags(Qt.TextSelectableByKeyboard |
                                                  Qt.TextSelectableByMouse)
        self.summary_view.setPlaceholderText(_tr("Choose a folder: the data check runs then."))
        self.summary_view.setMinimumHeight(110)
        self._name(self.summary_view, "MapScribeDataSummary", _tr("Data check result"),
                   _tr("Images and captions per split, vocabulary size, caption lengths and "
                       "every problem found."))
        data_layout.addWidget(self.summary_view)
        layout.addWidget(data_box)

        # Training parameters ----------------------------------------------------------------------
        params_box = QGroupBox(_tr("2. Training"), body)
        form = QFormLayout(params_box)
        self.backbone_combo = QComboBox(params_box)
        self._name(self.backbone_combo, "MapScribeBackbone", _tr("Backbone"),
                   _tr("The image encoder. 'auto' takes the best ImageNet-pretrained one "
                       "available offline."))
        self.epochs_spin = self._spin("MapScribeEpochs", _tr("Epochs"),
                                      _tr("How many passes over the training images."),
                                      1, 1000, 10)
        self.lr_edit = QLineEdit(params_box)
        self.lr_edit.setPlaceholderText(_tr("automatic (learning-rate finder)"))
        validator = QDoubleValidator(0.0, 10.0, 12, self.lr_edit)
        validator.setNotation(QDoubleValidator.ScientificNotation)
        self.lr_edit.setValidator(validator)
        self._name(self.lr_edit, "MapScribeLearningRate", _tr("Learning rate"),
                   _tr("Peak learning rate, e.g. 0.001 or 1e-3. Empty or 0: found "
                       "automatically."))
        self.batch_spin = self._spin("MapScribeBatchSize", _tr("Batch size"),
                                     _tr("Images per training step."), 1, 4096, 32)
        self.device_combo = QComboBox(params_box)
        self._name(self.device_combo, "MapScribeTrainDevice", _tr("Device"),
                   _tr("Where training runs: automatic (a GPU when there is one), a GPU by "
                       "name, or the CPU."))
        for text, widget in ((_tr("&Backbone:"), self.backbone_combo),
                             (_tr("&Epochs:"), self.epochs_spin),
                             (_tr("&Learning rate:"), self.lr_edit),
                             (_tr("Batc&h size:"), self.batch_spin),
                             (_tr("De&vice:"), self.device_combo)):
            label = QLabel(text, params_box)
            label.setBuddy(widget)
            form.addRow(label, widget)
        layout.addWidget(params_box)

        # Advanced: decoder (arcgis.learn names) ---------------------------------------------------
        self.advanced_box = QgsCollapsibleGroupBox(
            _tr("Advanced: decoder parameters (arcgis.learn names) and data options"), body)
        self.advanced_box.setObjectName("MapScribeAdvanced")
        self.advanced_box.setAccessibleName(_tr("Advanced parameters"))
        self.advanced_box.setSaveCollapsedState(False)
        advanced = QFormLayout(self.advanced_box)
        self.embed_spin = self._spin("MapScribeEmbedSize", "embed_size",
                                     _tr("Size of the word embeddings."), 1, 4096,
                                     DECODER_DEFAULTS["embed_size"])
        self.hidden_spin = self._spin("MapScribeHiddenSize", "hidden_size",
                                      _tr("Size of the LSTM's hidden state."), 1, 8192,
                                      DECODER_DEFAULTS["hidden_size"])
        self.attention_spin = self._spin("MapScribeAttentionSize", "attention_size",
                                         _tr("Size of the attention layer."), 1, 4096,
                                         DECODER_DEFAULTS["attention_size"])
        self.teacher_spin = self._double("MapScribeTeacherForcing", "teacher_forcing",
                                         _tr("Probability of feeding the reference word at each "
                                             "training step (1: always)."), 0.0, 1.0,
                                         DECODER_DEFAULTS["teacher_forcing"], 0.05)
        self.dropout_spin = self._double("MapScribeDropout", "dropout",
                                         _tr("Dropout probability in the decoder."), 0.0, 0.95,
                                         DECODER_DEFAULTS["dropout"], 0.05)
        self.embedding_widget = QgsFileWidget(self.advanced_box)
        self.embedding_widget.setStorageMode(QgsFileWidget.GetFile)
        self.embedding_widget.setFilter(_tr("Word vectors (*.vec *.txt);;All files (*)"))
        self._name(self.embedding_widget, "MapScribePretrainedEmb", "pretrained_emb",
                   _tr("Optional word vectors (fastText .vec or GloVe text) to start the "
                       "embeddings from; empty: learnt from scratch."))
        self._name(self.embedding_widget.lineEdit(), "MapScribePretrainedEmbPath",
                   "pretrained_emb", self.embedding_widget.accessibleDescription())
        self._name_browse_button(self.embedding_widget, _tr("Browse for a word vectors file"))
        self.min_count_spin = self._spin("MapScribeMinWordCount", _tr("Minimum word count"),
                                         _tr("Words seen fewer times in train become <unk>."),
                                         1, 1000, 5)
        self.min_count_spin.valueChanged.connect(self._min_count_changed)
        self.val_split_spin = self._double("MapScribeValSplit", _tr("Validation share"),
                                           _tr("Share of images put into val when the "
                                               "annotations give no split (0 to 0.9)."),
                                           0.0, 0.9, 0.1, 0.05)
        self.fine_tune_check = QCheckBox(_tr("&Fine-tune the encoder (slower; default: frozen)"),
                                         self.advanced_box)
        self._name(self.fine_tune_check, "MapScribeFineTune", _tr("Fine-tune the encoder"),
                   _tr("Train the image encoder too, not only the decoder."))
        for text, widget in (("embed_si&ze:", self.embed_spin),
                             ("hidde&n_size:", self.hidden_spin),
                             ("&attention_size:", self.attention_spin),
                             ("teacher_forcin&g:", self.teacher_spin),
                             ("drop&out:", self.dropout_spin),
                             ("&pretrained_emb:", self.embedding_widget),
                             (_tr("Minimum &word count:"), self.min_count_spin),
                             (_tr("Val&idation share:"), self.val_split_spin)):
            label = QLabel(text, self.advanced_box)
            label.setBuddy(widget.lineEdit() if isinstance(widget, QgsFileWidget) else widget)
            advanced.addRow(label, widget)
        advanced.addRow(self.fine_tune_check)
        self.advanced_box.setCollapsed(True)
        collapse = self.advanced_box.findChild(QToolButton, "collapseButton")
        if collapse is not None:
            collapse.setAccessibleName(_tr("Show or hide the advanced parameters"))
        layout.addWidget(self.advanced_box)

        # Output -----------------------------------------------------------------------------------
        out_box = QGroupBox(_tr("3. Output model"), body)
        out_layout = QVBoxLayout(out_box)
        row = QHBoxLayout()
        self.output_widget = QgsFileWidget(out_box)
        self.output_widget.setStorageMode(QgsFileWidget.SaveFile)
        self.output_widget.setFilter(_tr("MapScribe model (*.mscap)"))
        self.output_widget.setDialogTitle(_tr("Model file to write"))
        self._name(self.output_widget, "MapScribeOutputModel", _tr("Output model file"),
                   _tr("The .mscap model file to write."))
        self._name(self.output_widget.lineEdit(), "MapScribeOutputModelPath",
                   _tr("Output model file"), _tr("The .mscap model file to write."))
        self._name_browse_button(self.output_widget, _tr("Browse for the model file to write"))
        self.output_widget.fileChanged.connect(lambda _path: self._update_buttons())
        output_label = QLabel(_tr("&Model file:"), out_box)
        output_label.setBuddy(self.output_widget.lineEdit())
        row.addWidget(output_label)
        row.addWidget(self.output_widget, 1)
        out_layout.addLayout(row)
        self.resume_label = QLabel(out_box)
        self.resume_label.setWordWrap(True)
        self._name(self.resume_label, "MapScribeResumeInfo", _tr("Checkpoint found"))
        self.resume_label.setTextInteractionFlags(Qt.TextSelectableByKeyboard |
                                                  Qt.TextSelectableByMouse)
        self.resume_label.hide()
        out_layout.addWidget(self.resume_label)
        layout.addWidget(out_box)

        # Progress, chart -------------------------------------------------------------------------
        # The form never needs a horizontal scroll bar: the column is as wide as the form.
        scroll.setHorizontalScrollBarPolicy(Qt.ScrollBarAlwaysOff)
        scroll.setMinimumWidth(body.minimumSizeHint().width()
                               + scroll.verticalScrollBar().sizeHint().width() + 6)
        # Beside the form, always in view while training runs.
        run_box = QGroupBox(_tr("4. Training progress"), self)
        run_layout = QVBoxLayout(run_box)
        self.progress_bar = QProgressBar(run_box)
        self.progress_bar.setRange(0, 100)
        self.progress_bar.setValue(0)
        self._name(self.progress_bar, "MapScribeTrainProgress", _tr("Training progress"))
        self.status_label = QLabel(_tr("Not started."), run_box)
        self.status_label.setWordWrap(True)
        self.status_label.setTextInteractionFlags(Qt.TextSelectableByKeyboard |
                                                  Qt.TextSelectableByMouse)
        self.status_label.setFocusPolicy(Qt.StrongFocus)
        self._name(self.status_label, "MapScribeTrainStatus", _tr("Training status"))
        self.chart = LiveChart(run_box)
        run_layout.addWidget(self.progress_bar)
        run_layout.addWidget(self.status_label)
        run_layout.addWidget(self.chart, 1)
        columns.addWidget(run_box, 4)

        # Buttons ----------------------------------------------------------------------------------
        buttons = QHBoxLayout()
        self.train_button = QPushButton(_tr("&Train"), self)
        self._name(self.train_button, "MapScribeTrainButton", _tr("Train"),
                   _tr("Start training a new model with these parameters."))
        self.train_button.clicked.connect(lambda: self.start_training(resume=False))
        self.resume_button = QPushButton(_tr("&Resume"), self)
        self._name(self.resume_button, "MapScribeResumeButton", _tr("Resume training"),
                   _tr("Continue the interrupted training of this model file from its "
                       "checkpoint."))
        self.resume_button.clicked.connect(lambda: self.start_training(resume=True))
        self.cancel_button = QPushButton(_tr("&Cancel training"), self)
        self._name(self.cancel_button, "MapScribeCancelTrainButton", _tr("Cancel training"),
                   _tr("Stop after the current batch; the checkpoint lets training resume."))
        self.cancel_button.clicked.connect(self.cancel_training)
        self.use_button = QPushButton(_tr("&Use this model in the MapScribe dock"), self)
        self._name(self.use_button, "MapScribeUseModelButton",
                   _tr("Use this model in the MapScribe dock"),
                   _tr("Select the newly trained model file in the MapScribe dock."))
        self.use_button.clicked.connect(self.use_model)
        self.use_button.hide()
        self.close_button = QPushButton(_tr("Clo&se"), self)
        self._name(self.close_button, "MapScribeCloseTrainDialog", _tr("Close"),
                   _tr("Close this window; a running training goes on in QGIS's task manager."))
        self.close_button.clicked.connect(self.close)
        for button in (self.train_button, self.resume_button, self.cancel_button,
                       self.use_button, self.close_button):
            # No default button: Enter in a field must not start an hour of training.
            button.setAutoDefault(False)
            button.setDefault(False)
            buttons.addWidget(button)
        buttons.insertStretch(3, 1)
        outer.addLayout(buttons)

        order = [self.dataset_widget.lineEdit(), self.check_button, self.summary_view,
                 self.backbone_combo, self.epochs_spin, self.lr_edit, self.batch_spin,
                 self.device_combo, self.advanced_box, self.embed_spin, self.hidden_spin,
                 self.attention_spin, self.teacher_spin, self.dropout_spin,
                 self.embedding_widget.lineEdit(), self.min_count_spin, self.val_split_spin,
                 self.fine_tune_check, self.output_widget.lineEdit(), self.resume_label,
                 self.status_label, self.chart.table, self.train_button, self.resume_button,
                 self.cancel_button, self.use_button, self.close_button]
        for first, second in zip(order, order[1:]):
            QWidget.setTabOrder(first, second)
        self.resize(1240, 820)

    # --- engine lists, dependencies ---------------------------------------------------------------
    def _prepare_engine_lists(self) -> None:
        """Fill the backbone and device lists from the engine, or show what to install."""
        missing = missing_dependencies()
        if missing:
            self._show_dependency_panel()
            return
        try:
            from ..model.nn.device import available_devices
            from ..model.nn.backbones import BACKBONES
        except ImportError as error:  # there, but broken (e.g. a missing CUDA library)
            self.status_label.setText(_tr("MapScribe's packages are installed but do not "
                                          "import: {}").format(error))
            QgsMessageLog.logMessage(self.status_label.text(), LOG_TAG, Qgis.Critical)
            return
        self.backbone_combo.clear()
        self.backbone_combo.addItem(_tr("auto (best pretrained backbone available offline)"),
                                    "auto")
        for name in BACKBONES:
            self.backbone_combo.addItem(name, name)
        self.device_combo.clear()
        for choice in available_devices():
            self.device_combo.addItem(choice.label, choice.key)
        self._engine_ready = True
        if self.dependency_panel is not None:
            self.dependency_panel.hide()

    def _show_dependency_panel(self) -> None:
        if self.dependency_panel is None:
            self.dependency_panel = DependencyPanel(self)
            self.dependency_panel.installed.connect(self._dependencies_installed)
            self.body_layout.insertWidget(0, self.dependency_panel)
        self.dependency_panel.show()

    def _dependencies_installed(self) -> None:
        self._prepare_engine_lists()
        self._update_buttons()

    # --- data check -----------------------------------------------------------------------------
    def dataset_folder(self) -> str:
        return self.dataset_widget.filePath().strip()

    def output_path(self) -> str:
        return self.output_widget.filePath().strip()

    def _dataset_changed(self, path: str) -> None:
        self.caption_folder = self.summary = self.checked_folder = None
        self.summary_view.clear()
        path = path.strip()
        if path and not self.output_path():
            folder = Path(path)
            self.output_widget.setFilePath(str(folder.parent / f"{folder.name}{MODEL_SUFFIX}"))
        if path and Path(path).is_dir():
            self.check_data()
        self._update_buttons()

    def check_data(self) -> None:
        """Run the data check on the chosen folder (in the background)."""
        folder = self.dataset_folder()
        if not folder:
            self._show_problem(_tr("Choose a dataset folder first."), self.dataset_widget)
            return
        if self.check_task is not None:
            return
        self.summary_view.setPlainText(_tr("Checking {} …").format(folder))
        self.check_task = DataCheckTask(folder, self.val_split_spin.value(),
                                        self.min_count_spin.value())
        self.check_task.ended.connect(self._data_checked)
        _RUNNING_TASKS.add(self.check_task)
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
        if task.error:
            self.caption_folder = self.summary = self.checked_folder = None
            self.summary_view.setPlainText(_tr("This folder cannot be used for training:\n{}")
                                           .format(task.error))
        else:
            self.caption_folder, self.summary = task.caption_folder, task.summary
            self.checked_folder = task.folder
            self.summary_view.setPlainText(summary_text(self.summary, self.caption_folder))
        self.summary_view.setAccessibleDescription(self.summary_view.toPlainText()[:2000])
        self._update_buttons()

    def _min_count_changed(self, value: int) -> None:
        # The vocabulary size depends on it: recount (no need to read the images again).
        if self.caption_folder is not None:
            from ..model.data.summary import summarise

            self.summary = summarise(self.caption_folder, value)
            self.summary_view.setPlainText(summary_text(self.summary, self.caption_folder))

    # --- parameters -----------------------------------------------------------------------------
    def decoder_params(self) -> dict:
        return {"embed_size": self.embed_spin.value(), "hidden_size": self.hidden_spin.value(),
                "attention_size": self.attention_spin.value(),
                "teacher_forcing": round(self.teacher_spin.value(), 4),
                "dropout": round(self.dropout_spin.value(), 4),
                "pretrained_emb": self.embedding_widget.filePath().strip() or None}

    def learning_rate(self) -> Optional[float]:
        text = self.lr_edit.text().strip().replace(",", ".")
        if not text:
            return None
        try:
            value = float(text)
        except ValueError:
            raise ParameterError(_tr("Learning rate {!r} is not a number; write e.g. 0.001 or "
                                     "1e-3, or leave it empty to find it automatically.")
                                 .format(text), self.lr_edit) from None
        if value < 0:
            raise ParameterError(_tr("Learning rate {} is negative; use a positive number or "
                                     "leave it empty.").format(value), self.lr_edit)
        return value or None  # 0: automatic

    def gather_params(self, resume: bool = False, overwrite: bool = False):
        """The dialog's values as the engine's TrainJobParams; ParameterError names the field."""
        from ..model.nn.config import DecoderParams
        from ..model.jobs.train import TrainJobParams

        folder = self.dataset_folder()
        if not folder:
            raise ParameterError(_tr("Choose a dataset folder."), self.dataset_widget.lineEdit())
        if not Path(folder).is_dir():
            raise ParameterError(_tr("Dataset folder {} does not exist.").format(folder),
                                 self.dataset_widget.lineEdit())
        out = self.output_path()
        if not out:
            raise ParameterError(_tr("Choose the model file to write."),
                                 self.output_widget.lineEdit())
        if Path(out).suffix == "":
            out += MODEL_SUFFIX
        if not Path(out).parent.is_dir():
            raise ParameterError(_tr("The folder of the model file, {}, does not exist.")
                                 .format(Path(out).parent), self.output_widget.lineEdit())
        decoder = self.decoder_params()
        if decoder["pretrained_emb"] and not Path(decoder["pretrained_emb"]).is_file():
            raise ParameterError(_tr("pretrained_emb: {} is not a file; give a fastText .vec or "
                                     "GloVe text file, or leave it empty.")
                                 .format(decoder["pretrained_emb"]),
                                 self.embedding_widget.lineEdit())
        try:
            DecoderParams(**decoder)
        except ValueError as error:
            raise ParameterError(str(error), self.advanced_box) from None
        checkpoint = checkpoint_for(out)
        if resume and not checkpoint.is_file():
            raise ParameterError(_tr("There is no checkpoint {} to resume from.")
                                 .format(checkpoint), self.output_widget.lineEdit())
        return TrainJobParams(
            dataset=folder, out=out, backbone=self.backbone_combo.currentData() or "auto",
            epochs=self.epochs_spin.value(), lr=self.learning_rate(),
            batch_size=self.batch_spin.value(), val_split_pct=self.val_split_spin.value(),
            min_word_count=self.min_count_spin.value(), decoder_params=decoder,
            freeze_encoder=not self.fine_tune_check.isChecked(),
            device=self.device_combo.currentData() or "auto",
            resume=str(checkpoint) if resume else None, overwrite=overwrite)

    # --- training -------------------------------------------------------------------------------
    def is_training(self) -> bool:
        return self.train_task is not None

    def start_training(self, resume: bool = False) -> Optional[TrainCaptionerTask]:
        """Start (or resume) training; returns the task, or None when a parameter is wrong."""
        if self.train_task is not None or not self._engine_ready:
            return None
        overwrite = False
        out = self.output_path()
        if not resume and out and Path(out).exists():
            answer = QMessageBox.question(
                self, _tr("Replace the model file?"),
                _tr("{} already exists. Replace it?").format(out),
                QMessageBox.Yes | QMessageBox.No, QMessageBox.No)
            if answer != QMessageBox.Yes:
                return None
            overwrite = True
        try:
            params = self.gather_params(resume=resume, overwrite=overwrite)
        except ParameterError as error:
            self._show_problem(str(error), error.widget)
            return None
        if not resume:
            self.chart.clear()
        self.model_path = None
        self.last_outcome = None
        self.use_button.hide()
        self.progress_bar.setValue(0)
        self.status_label.setText(_tr("Resuming from {} …").format(params.resume) if resume
                                  else _tr("Starting: reading the images …"))
        self.train_task = TrainCaptionerTask(params)
        self.train_task.progressChanged.connect(
            lambda value: self.progress_bar.setValue(int(round(value))))
        self.train_task.status.connect(self.status_label.setText)
        self.train_task.epoch_finished.connect(self._epoch_finished)
        self.train_task.ended.connect(self._training_ended)
        QgsApplication.taskManager().addTask(self.train_task)
        self._update_buttons()
        self.cancel_button.setFocus(Qt.OtherFocusReason)
        return self.train_task

    def cancel_training(self) -> None:
        if self.train_task is not None:
            self.train_task.cancel()
            self.status_label.setText(_tr("Cancelling after the current batch …"))

    def _epoch_finished(self, point: EpochPoint) -> None:
        self.chart.add_epoch(point)

    def _training_ended(self, outcome: str) -> None:
        task, self.train_task = self.train_task, None
        self.last_outcome = outcome
        if task is None:
            return
        params = task.params
        if outcome == COMPLETED:
            result = task.result
            self.model_path = result.model_path
            self.progress_bar.setValue(100)
            metrics = "; ".join(
                f"{split}: BLEU-4 {scores.get('BLEU-4', float('nan')):.3f}, "
                f"CIDEr-D {scores.get('CIDEr-D', float('nan')):.3f}"
                for split, scores in (result.metrics or {}).items() if isinstance(scores, dict))
            message = _tr("Model written to {} (best epoch {}, {}).").format(
                result.model_path, result.fit.best_epoch, result.stopped.replace("_", " "))
            if metrics:
                message += " " + metrics
            self.status_label.setText(message)
            QgsMessageLog.logMessage(message, LOG_TAG, Qgis.Success)
            if self.on_model_ready is not None:
                self.use_button.show()
                self.use_button.setFocus(Qt.OtherFocusReason)
            if not self.isVisible():
                self._offer_model_in_message_bar(message)
        elif outcome == CANCELLED:
            checkpoint = Path(params.checkpoint_path)
            if checkpoint.is_file():
                message = _tr("Training cancelled after {} epoch(s). The checkpoint {} keeps "
                              "them: press Resume to continue.").format(
                    len(self.chart.epochs()), checkpoint)
            else:
                message = _tr("Training cancelled before the first epoch began; there is "
                              "nothing to resume.")
            self.status_label.setText(message)
            self._notify_if_hidden(message, Qgis.Info)
        else:
            message = _tr("Training failed: {}").format(task.error)
            self.status_label.setText(message)
            QgsMessageLog.logMessage(f"{task.error}\n{task.details or ''}", LOG_TAG,
                                     Qgis.Critical)
            self._push_message(message + _tr(" (details in the MapScribe log)"), Qgis.Critical)
        self._update_buttons()
        if not self.isVisible():
            self._release()

    def use_model(self) -> None:
        if self.model_path and self.on_model_ready is not None:
            self.on_model_ready(self.model_path)

    # --- state, messages -------------------------------------------------------------------------
    def _update_buttons(self) -> None:
        busy = self.train_task is not None
        data_ok = (self.checked_folder is not None and self.checked_folder == self.dataset_folder()
                   and self.check_task is None)
        out = self.output_path()
        checkpoint = checkpoint_for(out + ("" if Path(out).suffix else MODEL_SUFFIX)) \
            if out else None
        has_checkpoint = bool(checkpoint and checkpoint.is_file())
        self.train_button.setEnabled(self._engine_ready and data_ok and bool(out) and not busy)
        self.resume_button.setVisible(has_checkpoint)
        self.resume_button.setEnabled(self._engine_ready and has_checkpoint and not busy
                                      and self.check_task is None)
        self.cancel_button.setEnabled(busy)
        self.check_button.setEnabled(self.check_task is None and not busy)
        if has_checkpoint:
            saved = time.strftime("%Y-%m-%d %H:%M", time.localtime(checkpoint.stat().st_mtime))
            self.resume_label.setText(_tr("An interrupted training of this model file can be "
                                          "resumed: checkpoint {} (saved {}).")
                                      .format(checkpoint, saved))
            self.resume_label.setAccessibleDescription(self.resume_label.text())
        self.resume_label.setVisible(has_checkpoint and not busy)

    def _show_problem(self, message: str, widget: Optional[QWidget] = None) -> None:
        self.status_label.setText(message)
        self.status_label.setAccessibleDescription(message)
        if isinstance(widget, QgsCollapsibleGroupBox):
            widget.setCollapsed(False)
        if widget is not None:
            widget.setFocus(Qt.OtherFocusReason)

    def _push_message(self, message: str, level) -> None:
        bar = self.iface.messageBar() if self.iface is not None else None
        if bar is not None:
            bar.pushMessage(_tr("MapScribe"), message, level=level)

    def _offer_model_in_message_bar(self, message: str) -> None:
        """The dialog was closed during training: say it is done where the user looks, with
        the offer to use the model."""
        bar = self.iface.messageBar() if self.iface is not None else None
        if bar is None:
            return
        if self.on_model_ready is None or not hasattr(bar, "createMessage"):
            bar.pushMessage(_tr("MapScribe"), message, level=Qgis.Success)
            return
        item = bar.createMessage(_tr("MapScribe"), message)
        button = QPushButton(_tr("Use this model in the MapScribe dock"), item)
        button.setAccessibleName(button.text())
        path, callback = self.model_path, self.on_model_ready
        button.clicked.connect(lambda: callback(path))
        item.layout().addWidget(button)
        bar.pushWidget(item, Qgis.Success)

    def _notify_if_hidden(self, message: str, level) -> None:
        if not self.isVisible():
            self._push_message(message, level)

    def _release(self) -> None:
        if self in _OPEN_DIALOGS:
            _OPEN_DIALOGS.remove(self)
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
    dialog.dataset_widget.lineEdit().setFocus(Qt.OtherFocusReason)
    return dialog


def close_all_train_dialogs() -> None:
    """For the plugin's unload(): cancel running trainings and close every training dialog."""
    for dialog in list(_OPEN_DIALOGS):
        dialog.shutdown()
        if dialog.train_task is None:
            dialog._release()
