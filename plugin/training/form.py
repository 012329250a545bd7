"""The training dialog's widgets: dataset → training parameters → advanced (decoder) → output
model on the left, progress and the live chart on the right, the buttons below. Widgets only:
what they do is the dialog's (dialog.py); their values as plain data are
:meth:`TrainingForm.values`.

Every field has an accessible name, a description (its tooltip) and a label whose Alt+letter
jumps to it; the decoder fields are named as arcgis.learn names them; Tab follows the form.
"""

from __future__ import annotations

from typing import Optional, Sequence

from qgis.gui import QgsCollapsibleGroupBox, QgsFileWidget
from qgis.PyQt.QtCore import Qt
from qgis.PyQt.QtGui import QDoubleValidator
from qgis.PyQt.QtWidgets import (
    QCheckBox,
    QComboBox,
    QDoubleSpinBox,
    QFormLayout,
    QGroupBox,
    QHBoxLayout,
    QLineEdit,
    QPlainTextEdit,
    QProgressBar,
    QPushButton,
    QScrollArea,
    QSpinBox,
    QToolButton,
    QVBoxLayout,
    QWidget,
)

from ...model import MODEL_SUFFIX
from ..ui import (
    browse_button,
    buddy_label,
    describe,
    named,
    reading_label,
    set_tab_order,
    tr,
)
from .live_chart import LiveChart
from .request import DECODER_DEFAULTS, DEFAULTS, TrainingFormValues


class TrainingForm(QWidget):
    """Every widget of the training dialog, laid out."""

    def __init__(self, parent: Optional[QWidget] = None) -> None:
        super().__init__(parent)
        outer = QVBoxLayout(self)
        outer.setContentsMargins(0, 0, 0, 0)
        columns = QHBoxLayout()
        outer.addLayout(columns)
        scroll = QScrollArea(self)
        scroll.setWidgetResizable(True)
        # Tab moves between the fields (the area scrolls to the focused one by itself).
        scroll.setFocusPolicy(Qt.FocusPolicy.NoFocus)
        body = QWidget(scroll)
        self.body_layout = QVBoxLayout(body)
        for box in (self._dataset_box(body), self._training_box(body),
                    self._advanced_box(body), self._output_box(body)):
            self.body_layout.addWidget(box)
        scroll.setWidget(body)
        # The form never needs a horizontal scroll bar: the column is as wide as the form.
        scroll.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
        scroll.setMinimumWidth(body.minimumSizeHint().width()
                               + scroll.verticalScrollBar().sizeHint().width() + 6)
        columns.addWidget(scroll, 3)
        columns.addWidget(self._progress_box(), 4)  # beside the form, in view while training
        outer.addLayout(self._buttons())
        set_tab_order(self.focus_chain())

    # --- building ---------------------------------------------------------------------------
    def _spin(self, object_name: str, name: str, description: str, low: int, high: int,
              value: int) -> QSpinBox:
        box = QSpinBox(self)
        box.setRange(low, high)
        box.setValue(value)
        return named(box, object_name, name, description)

    def _double(self, object_name: str, name: str, description: str, low: float, high: float,
                value: float, step: float) -> QDoubleSpinBox:
        box = QDoubleSpinBox(self)
        box.setRange(low, high)
        box.setDecimals(2)
        box.setSingleStep(step)
        box.setValue(value)
        return named(box, object_name, name, description)

    def _dataset_box(self, body: QWidget) -> QGroupBox:
        box = QGroupBox(tr("1. Dataset"), body)
        layout = QVBoxLayout(box)
        row = QHBoxLayout()
        self.dataset_widget = QgsFileWidget(box)
        self.dataset_widget.setStorageMode(QgsFileWidget.StorageMode.GetDirectory)
        self.dataset_widget.setDialogTitle(tr("Caption dataset folder"))
        named(self.dataset_widget, "MapScribeDatasetFolder", tr("Dataset folder"),
              tr("A folder with images/ and annotations.json (RSICD or COCO captions format)."))
        named(self.dataset_widget.lineEdit(), "MapScribeDatasetFolderPath",
              tr("Dataset folder"), self.dataset_widget.accessibleDescription())
        describe(browse_button(self.dataset_widget), tr("Browse for the dataset folder"))
        self.check_button = QPushButton(tr("Chec&k data"), box)
        named(self.check_button, "MapScribeCheckDataButton", tr("Check the dataset"),
              tr("Reads every entry and image and reports counts, vocabulary and problems."))
        row.addWidget(buddy_label(tr("&Dataset folder:"), self.dataset_widget.lineEdit(), box))
        row.addWidget(self.dataset_widget, 1)
        row.addWidget(self.check_button)
        layout.addLayout(row)
        self.summary_view = QPlainTextEdit(box)
        self.summary_view.setReadOnly(True)
        self.summary_view.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByKeyboard |
                                                  Qt.TextInteractionFlag.TextSelectableByMouse)
        self.summary_view.setPlaceholderText(tr("Choose a folder: the data check runs then."))
        self.summary_view.setMinimumHeight(110)
        named(self.summary_view, "MapScribeDataSummary", tr("Data check result"),
              tr("Images and captions per split, vocabulary size, caption lengths and every "
                 "problem found."))
        layout.addWidget(self.summary_view)
        return box

    def _training_box(self, body: QWidget) -> QGroupBox:
        box = QGroupBox(tr("2. Training"), body)
        form = QFormLayout(box)
        self.backbone_combo = QComboBox(box)
        named(self.backbone_combo, "MapScribeBackbone", tr("Backbone"),
              tr("The image encoder. 'auto' takes the best ImageNet-pretrained one available "
                 "offline."))
        self.epochs_spin = self._spin("MapScribeEpochs", tr("Epochs"),
                                      tr("How many passes over the training images."),
                                      1, 1000, DEFAULTS["epochs"])
        self.lr_edit = QLineEdit(box)
        self.lr_edit.setPlaceholderText(tr("automatic (learning-rate finder)"))
        validator = QDoubleValidator(0.0, 10.0, 12, self.lr_edit)
        validator.setNotation(QDoubleValidator.Notation.ScientificNotation)
        self.lr_edit.setValidator(validator)
        named(self.lr_edit, "MapScribeLearningRate", tr("Learning rate"),
              tr("Peak learning rate, e.g. 0.001 or 1e-3. Empty or 0: found automatically."))
        self.batch_spin = self._spin("MapScribeBatchSize", tr("Batch size"),
                                     tr("Images per training step."), 1, 4096,
                                     DEFAULTS["batch_size"])
        self.device_combo = QComboBox(box)
        named(self.device_combo, "MapScribeTrainDevice", tr("Device"),
              tr("Where training runs: automatic (a GPU when there is one), a GPU by name, or "
                 "the CPU."))
        for text, widget in ((tr("&Backbone:"), self.backbone_combo),
                             (tr("&Epochs:"), self.epochs_spin),
                             (tr("&Learning rate:"), self.lr_edit),
                             (tr("Batc&h size:"), self.batch_spin),
                             (tr("De&vice:"), self.device_combo)):
            form.addRow(buddy_label(text, widget, box), widget)
        return box

    def _advanced_box(self, body: QWidget) -> QgsCollapsibleGroupBox:
        """The decoder (arcgis.learn's names) and the data options, collapsed at first."""
        box = self.advanced_box = QgsCollapsibleGroupBox(
            tr("Advanced: decoder parameters (arcgis.learn names) and data options"), body)
        box.setObjectName("MapScribeAdvanced")
        box.setAccessibleName(tr("Advanced parameters"))
        box.setSaveCollapsedState(False)
        form = QFormLayout(box)
        self.embed_spin = self._spin("MapScribeEmbedSize", "embed_size",
                                     tr("Size of the word embeddings."), 1, 4096,
                                     DECODER_DEFAULTS["embed_size"])
        self.hidden_spin = self._spin("MapScribeHiddenSize", "hidden_size",
                                      tr("Size of the LSTM's hidden state."), 1, 8192,
                                      DECODER_DEFAULTS["hidden_size"])
        self.attention_spin = self._spin("MapScribeAttentionSize", "attention_size",
                                         tr("Size of the attention layer."), 1, 4096,
                                         DECODER_DEFAULTS["attention_size"])
        self.teacher_spin = self._double("MapScribeTeacherForcing", "teacher_forcing",
                                         tr("Probability of feeding the reference word at each "
                                            "training step (1: always)."), 0.0, 1.0,
                                         DECODER_DEFAULTS["teacher_forcing"], 0.05)
        self.dropout_spin = self._double("MapScribeDropout", "dropout",
                                         tr("Dropout probability in the decoder."), 0.0, 0.95,
                                         DECODER_DEFAULTS["dropout"], 0.05)
        self.embedding_widget = QgsFileWidget(box)
        self.embedding_widget.setStorageMode(QgsFileWidget.StorageMode.GetFile)
        self.embedding_widget.setFilter(tr("Word vectors (*.vec *.txt);;All files (*)"))
        named(self.embedding_widget, "MapScribePretrainedEmb", "pretrained_emb",
              tr("Optional word vectors (fastText .vec or GloVe text) to start the embeddings "
                 "from; empty: learnt from scratch."))
        named(self.embedding_widget.lineEdit(), "MapScribePretrainedEmbPath", "pretrained_emb",
              self.embedding_widget.accessibleDescription())
        describe(browse_button(self.embedding_widget), tr("Browse for a word vectors file"))
        self.min_count_spin = self._spin("MapScribeMinWordCount", tr("Minimum word count"),
                                         tr("Words seen fewer times in train become <unk>."),
                                         1, 1000, DEFAULTS["min_word_count"])
        self.val_split_spin = self._double("MapScribeValSplit", tr("Validation share"),
                                           tr("Share of images put into val when the "
                                              "annotations give no split (0 to 0.9)."),
                                           0.0, 0.9, DEFAULTS["val_split_pct"], 0.05)
        self.fine_tune_check = QCheckBox(tr("&Fine-tune the encoder (slower; default: frozen)"),
                                         box)
        self.fine_tune_check.setChecked(not DEFAULTS["freeze_encoder"])
        named(self.fine_tune_check, "MapScribeFineTune", tr("Fine-tune the encoder"),
              tr("Train the image encoder too, not only the decoder."))
        for text, widget in (("embed_si&ze:", self.embed_spin),
                             ("hidde&n_size:", self.hidden_spin),
                             ("&attention_size:", self.attention_spin),
                             ("teacher_forcin&g:", self.teacher_spin),
                             ("drop&out:", self.dropout_spin),
                             ("&pretrained_emb:", self.embedding_widget),
                             (tr("Minimum &word count:"), self.min_count_spin),
                             (tr("Val&idation share:"), self.val_split_spin)):
            buddy = widget.lineEdit() if isinstance(widget, QgsFileWidget) else widget
            form.addRow(buddy_label(text, buddy, box), widget)
        form.addRow(self.fine_tune_check)
        box.setCollapsed(True)
        collapse = box.findChild(QToolButton, "collapseButton")
        if collapse is not None:
            collapse.setAccessibleName(tr("Show or hide the advanced parameters"))
        return box

    def _output_box(self, body: QWidget) -> QGroupBox:
        box = QGroupBox(tr("3. Output model"), body)
        layout = QVBoxLayout(box)
        row = QHBoxLayout()
        self.output_widget = QgsFileWidget(box)
        self.output_widget.setStorageMode(QgsFileWidget.StorageMode.SaveFile)
        self.output_widget.setFilter(tr("MapScribe model (*{suffix})").format(
            suffix=MODEL_SUFFIX))
        self.output_widget.setDialogTitle(tr("Model file to write"))
        named(self.output_widget, "MapScribeOutputModel", tr("Output model file"),
              tr("The .mscap model file to write."))
        named(self.output_widget.lineEdit(), "MapScribeOutputModelPath", tr("Output model file"),
              tr("The .mscap model file to write."))
        describe(browse_button(self.output_widget), tr("Browse for the model file to write"))
        row.addWidget(buddy_label(tr("&Model file:"), self.output_widget.lineEdit(), box))
        row.addWidget(self.output_widget, 1)
        layout.addLayout(row)
        self.resume_label = reading_label("MapScribeResumeInfo", tr("Checkpoint found"), box)
        self.resume_label.hide()
        layout.addWidget(self.resume_label)
        return box

    def _progress_box(self) -> QGroupBox:
        box = QGroupBox(tr("4. Training progress"), self)
        layout = QVBoxLayout(box)
        self.progress_bar = QProgressBar(box)
        self.progress_bar.setRange(0, 100)
        self.progress_bar.setValue(0)
        named(self.progress_bar, "MapScribeTrainProgress", tr("Training progress"))
        self.status_label = reading_label("MapScribeTrainStatus", tr("Training status"), box)
        self.status_label.setText(tr("Not started."))
        self.chart = LiveChart(box)
        layout.addWidget(self.progress_bar)
        layout.addWidget(self.status_label)
        layout.addWidget(self.chart, 1)
        return box

    def _buttons(self) -> QHBoxLayout:
        buttons = QHBoxLayout()
        self.train_button = QPushButton(tr("&Train"), self)
        named(self.train_button, "MapScribeTrainButton", tr("Train"),
              tr("Start training a new model with these parameters."))
        self.resume_button = QPushButton(tr("&Resume"), self)
        named(self.resume_button, "MapScribeResumeButton", tr("Resume training"),
              tr("Continue the interrupted training of this model file from its checkpoint."))
        self.cancel_button = QPushButton(tr("&Cancel training"), self)
        named(self.cancel_button, "MapScribeCancelTrainButton", tr("Cancel training"),
              tr("Stop after the current batch; the checkpoint lets training resume."))
        self.use_button = QPushButton(tr("&Use this model in the MapScribe dock"), self)
        named(self.use_button, "MapScribeUseModelButton",
              tr("Use this model in the MapScribe dock"),
              tr("Select the newly trained model file in the MapScribe dock."))
        self.use_button.hide()
        self.close_button = QPushButton(tr("Clo&se"), self)
        named(self.close_button, "MapScribeCloseTrainDialog", tr("Close"),
              tr("Close this window; a running training goes on in QGIS's task manager."))
        for button in (self.train_button, self.resume_button, self.cancel_button,
                       self.use_button, self.close_button):
            # No default button: Enter in a field must not start an hour of training.
            button.setAutoDefault(False)
            button.setDefault(False)
            buttons.addWidget(button)
        buttons.insertStretch(3, 1)
        return buttons

    def focus_chain(self) -> Sequence[QWidget]:
        """The widgets in tab order (Qt skips hidden and disabled ones)."""
        return [self.dataset_widget.lineEdit(), self.check_button, self.summary_view,
                self.backbone_combo, self.epochs_spin, self.lr_edit, self.batch_spin,
                self.device_combo, self.advanced_box, self.embed_spin, self.hidden_spin,
                self.attention_spin, self.teacher_spin, self.dropout_spin,
                self.embedding_widget.lineEdit(), self.min_count_spin, self.val_split_spin,
                self.fine_tune_check, self.output_widget.lineEdit(), self.resume_label,
                self.status_label, self.chart.table, self.train_button, self.resume_button,
                self.cancel_button, self.use_button, self.close_button]

    def field_widget(self, field: str) -> Optional[QWidget]:
        """The widget to fix for a ParameterError's ``field``."""
        return {"dataset": self.dataset_widget.lineEdit(), "output": self.output_widget.lineEdit(),
                "learning_rate": self.lr_edit, "pretrained_emb": self.embedding_widget.lineEdit(),
                "decoder": self.advanced_box}.get(field)

    # --- values -----------------------------------------------------------------------------
    def dataset_folder(self) -> str:
        return self.dataset_widget.filePath().strip()

    def output_path(self) -> str:
        return self.output_widget.filePath().strip()

    def values(self) -> TrainingFormValues:
        return TrainingFormValues(
            dataset_folder=self.dataset_folder(), output_path=self.output_path(),
            backbone=self.backbone_combo.currentData() or "auto",
            epochs=self.epochs_spin.value(), learning_rate=self.lr_edit.text(),
            batch_size=self.batch_spin.value(), val_split_pct=self.val_split_spin.value(),
            min_word_count=self.min_count_spin.value(), embed_size=self.embed_spin.value(),
            hidden_size=self.hidden_spin.value(), attention_size=self.attention_spin.value(),
            teacher_forcing=self.teacher_spin.value(), dropout=self.dropout_spin.value(),
            pretrained_emb=self.embedding_widget.filePath(),
            fine_tune=self.fine_tune_check.isChecked(),
            device=self.device_combo.currentData() or "auto")

    def set_choices(self, backbones: Sequence[str], devices: Sequence) -> None:
        """The engine's backbones (after "auto") and devices ((key, label) pairs)."""
        self.backbone_combo.clear()
        self.backbone_combo.addItem(tr("auto (best pretrained backbone available offline)"),
                                    "auto")
        for name in backbones:
            self.backbone_combo.addItem(name, name)
        self.device_combo.clear()
        for key, label in devices:
            self.device_combo.addItem(label, key)
