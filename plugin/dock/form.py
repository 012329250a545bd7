"""The dock's "Caption a raster" page: its widgets, their names for screen readers, their tab
order, and their values as plain data. No engine call and no task here (controller.py).

Every control has an accessible name and description and a label bound to it (Alt+letter
jumps there), the tab order follows the form from top to bottom, and nothing needs a mouse.
"""

from __future__ import annotations

from typing import List, Optional, Sequence, Tuple

from qgis.core import QgsMapLayerProxyModel
from qgis.gui import QgsDoubleSpinBox, QgsFileWidget, QgsMapLayerComboBox
from qgis.PyQt.QtCore import Qt
from qgis.PyQt.QtWidgets import (
    QCheckBox,
    QComboBox,
    QGroupBox,
    QHBoxLayout,
    QLabel,
    QProgressBar,
    QPushButton,
    QSpinBox,
    QVBoxLayout,
    QWidget,
)

from ...model import MODEL_SUFFIX, CaptionRasterParams
from ..deps.panel import DependencyPanel
from ..map_inputs import AREA_EXTENT, AREA_LAYER, AREA_POLYGONS
from ..ui import (
    browse_button,
    buddy_label,
    describe,
    field_default,
    narrow,
    reading_label,
    set_tab_order,
    tr,
    wrapping_form,
)
from .output import ON_EXISTING

# Until the engine is loaded (torch takes seconds), the devices it surely offers.
FALLBACK_DEVICES = (("auto", "Automatic (GPU when there is one)"), ("cpu", "CPU"))
NO_TILE_SIZE = 0.0  # the tile size field's value for "the model's own tile"


class CaptionForm(QWidget):
    """The form, from the raster at the top to the output. Run, Cancel and Resume, the run's
    tiles and time, the progress bar and the status line are in :attr:`run_bar`, which the dock
    keeps below the scrolled form, so that they are always visible."""

    def __init__(self, parent: Optional[QWidget] = None) -> None:
        super().__init__(parent)
        self.setObjectName("MapScribeForm")
        self._setting_output = False
        self.output_is_default = True  # False once people chose an output themselves
        outer = QVBoxLayout(self)
        self.intro = QLabel(tr(
            "MapScribe captions the visible extent, the whole layer or chosen polygons of a "
            "raster, tile by tile, and lists the captions so the map can be read without "
            "seeing it."), self)
        self.intro.setObjectName("MapScribeIntro")
        self.intro.setWordWrap(True)
        outer.addWidget(self.intro)
        # The dependency panel goes here (show_dependency_panel), above the form.
        self.panel_slot = QVBoxLayout()
        outer.addLayout(self.panel_slot)
        for box in (self._raster_box(), self._model_box(), self._area_box(),
                    self._tiles_box(), self._output_box()):
            outer.addWidget(box)
        outer.addStretch(1)
        self.run_bar = self._run_bar()
        self.output_widget.fileChanged.connect(self._output_edited)
        set_tab_order(self.focus_chain())

    # --- building ---------------------------------------------------------------------------
    def _raster_box(self) -> QGroupBox:
        box = QGroupBox(tr("Raster"), self)
        form = wrapping_form(box)
        self.raster_combo = narrow(QgsMapLayerComboBox(box))
        self.raster_combo.setObjectName("MapScribeRaster")
        self.raster_combo.setFilters(QgsMapLayerProxyModel.Filter.RasterLayer)
        describe(self.raster_combo, tr("Raster layer"), tr(
            "The raster layer to caption. The bands shown on the map are the ones captioned."))
        form.addRow(buddy_label(tr("Raster la&yer:"), self.raster_combo), self.raster_combo)
        self.raster_info = reading_label("MapScribeRasterInfo", tr("Raster details"),
                                         holds_paths=True)
        form.addRow(self.raster_info)
        return box

    def _model_box(self) -> QGroupBox:
        box = QGroupBox(tr("Model"), self)
        form = wrapping_form(box)
        self.model_widget = QgsFileWidget(box)
        self.model_widget.setObjectName("MapScribeModel")
        self.model_widget.setStorageMode(QgsFileWidget.StorageMode.GetFile)
        self.model_widget.setFilter(tr("MapScribe models (*{suffix});;All files (*)").format(
            suffix=MODEL_SUFFIX))
        self.model_widget.setDialogTitle(tr("Choose a MapScribe model file"))
        describe(self.model_widget, tr("Model file"), tr(
            "The captioning model, a .mscap file written by MapScribe."))
        describe(self.model_widget.lineEdit(), tr("Model file path"), tr(
            "Path of the .mscap model file; type it or use the browse button."))
        self.model_browse = _tab_reachable(browse_button(self.model_widget))
        describe(self.model_browse, tr("Browse for a model file"), tr(
            "Opens a file dialog to choose a .mscap model file."))
        form.addRow(buddy_label(tr("&Model file:"), self.model_widget.lineEdit()),
                    self.model_widget)
        self.model_info = reading_label("MapScribeModelInfo", tr("Model description"),
                                        holds_paths=True)
        form.addRow(self.model_info)
        self.details_button = QPushButton(tr("&Full description…"), box)
        self.details_button.setObjectName("MapScribeModelDetails")
        describe(self.details_button, tr("Full description of the model"), tr(
            "Shows the model's whole card: network, vocabulary, training data, ground "
            "resolution and every score it records."))
        self.details_button.setEnabled(False)
        self.train_button = QPushButton(tr("&Train a model…"), box)
        self.train_button.setObjectName("MapScribeTrain")
        describe(self.train_button, tr("Train a model"), tr(
            "Opens the training dialog: train a captioner on an RSICD-format folder; the new "
            "model is then chosen here."))
        buttons = QHBoxLayout()
        buttons.addWidget(self.details_button)
        buttons.addWidget(self.train_button)
        buttons.addStretch(1)
        form.addRow(buttons)
        return box

    def _area_box(self) -> QGroupBox:
        box = QGroupBox(tr("Area"), self)
        form = wrapping_form(box)
        self.area_combo = narrow(QComboBox(box))
        self.area_combo.setObjectName("MapScribeArea")
        self.area_combo.addItem(tr("Visible map extent"), AREA_EXTENT)
        self.area_combo.addItem(tr("Whole raster layer"), AREA_LAYER)
        self.area_combo.addItem(tr("Polygons of a vector layer"), AREA_POLYGONS)
        describe(self.area_combo, tr("Area to caption"), tr(
            "What part of the raster to caption: what the map shows now, the whole raster, or "
            "the polygons of a vector layer."))
        form.addRow(buddy_label(tr("&Area:"), self.area_combo), self.area_combo)
        self.polygon_combo = narrow(QgsMapLayerComboBox(box))
        self.polygon_combo.setObjectName("MapScribePolygons")
        self.polygon_combo.setFilters(QgsMapLayerProxyModel.Filter.PolygonLayer)
        describe(self.polygon_combo, tr("Polygon layer"), tr(
            "The vector layer whose polygons limit the area; only tiles touching them are "
            "captioned."))
        form.addRow(buddy_label(tr("&Polygon layer:"), self.polygon_combo), self.polygon_combo)
        self.selected_only = QCheckBox(tr("Only &selected features"), box)
        self.selected_only.setObjectName("MapScribeSelectedOnly")
        describe(self.selected_only, tr("Only selected features"), tr(
            "Use only the selected polygons of the polygon layer."))
        form.addRow(self.selected_only)
        self.area_combo.currentIndexChanged.connect(self._area_changed)
        self._area_changed()
        return box

    def _tiles_box(self) -> QGroupBox:
        box = QGroupBox(tr("Tiles and decoding"), self)
        form = wrapping_form(box)
        self.tile_size = QgsDoubleSpinBox(box)
        self.tile_size.setObjectName("MapScribeTileSize")
        self.tile_size.setRange(NO_TILE_SIZE, 1e9)
        self.tile_size.setDecimals(2)
        # The lowest value reads as the model's own tile, which the engine works out; the clear
        # button goes back to it.
        self.tile_size.setSpecialValueText(tr("the model's own"))
        self.tile_size.setShowClearButton(True)
        self.tile_size.setClearValueMode(QgsDoubleSpinBox.ClearValueMode.MinimumValue)
        self.tile_size.setValue(NO_TILE_SIZE)
        describe(self.tile_size, tr("Tile size in ground units"), tr(
            "The side of each square tile, in the raster's map units. By default (the clear "
            "button) the model's own: its input size times its ground resolution; the line "
            "below says what the tiles will be."))
        form.addRow(buddy_label(tr("Tile si&ze:"), self.tile_size), self.tile_size)
        self.tile_info = reading_label("MapScribeTileInfo", tr("Tile size in pixels"),
                                       holds_paths=True)
        form.addRow(self.tile_info)
        self.overlap = QSpinBox(box)
        self.overlap.setObjectName("MapScribeOverlap")
        self.overlap.setRange(0, 90)
        self.overlap.setValue(int(field_default(CaptionRasterParams, "overlap")))
        self.overlap.setSuffix(" %")
        describe(self.overlap, tr("Tile overlap in percent"), tr(
            "How much neighbouring tiles overlap, as a percentage of the tile size."))
        form.addRow(buddy_label(tr("O&verlap:"), self.overlap), self.overlap)
        self.batch_size = QSpinBox(box)
        self.batch_size.setObjectName("MapScribeBatchSize")
        self.batch_size.setRange(1, 512)
        self.batch_size.setValue(field_default(CaptionRasterParams, "batch_size"))
        describe(self.batch_size, tr("Batch size"), tr(
            "Tiles captioned together; larger is faster on a GPU and uses more memory. Progress "
            "and Cancel act between batches."))
        form.addRow(buddy_label(tr("&Batch size:"), self.batch_size), self.batch_size)
        self.beam = QSpinBox(box)
        self.beam.setObjectName("MapScribeBeam")
        self.beam.setRange(1, 10)
        self.beam.setValue(field_default(CaptionRasterParams, "beam_size"))
        describe(self.beam, tr("Beam width"), tr(
            "Captions the decoder keeps in play while writing; 1 is fastest, 3 to 5 give "
            "better captions."))
        form.addRow(buddy_label(tr("B&eam width:"), self.beam), self.beam)
        self.device_combo = narrow(QComboBox(box))
        self.device_combo.setObjectName("MapScribeDevice")
        self.set_devices([(key, tr(label)) for key, label in FALLBACK_DEVICES])
        describe(self.device_combo, tr("Device"), tr(
            "Where the model runs: automatic (the first GPU when there is one), a GPU by name, "
            "or the CPU."))
        form.addRow(buddy_label(tr("&Device:"), self.device_combo), self.device_combo)
        return box

    def _output_box(self) -> QGroupBox:
        box = QGroupBox(tr("Output"), self)
        form = wrapping_form(box)
        self.output_widget = QgsFileWidget(box)
        self.output_widget.setObjectName("MapScribeOutput")
        self.output_widget.setStorageMode(QgsFileWidget.StorageMode.SaveFile)
        self.output_widget.setFilter(tr("GeoPackage (*.gpkg)"))
        self.output_widget.setConfirmOverwrite(False)  # the dock asks, knowing what is there
        self.output_widget.setDialogTitle(tr("Save the captions grid as"))
        describe(self.output_widget, tr("Output GeoPackage"), tr(
            "The GeoPackage the captions grid is written to."))
        describe(self.output_widget.lineEdit(), tr("Output GeoPackage path"), tr(
            "Path of the .gpkg file the captions grid is written to; by default beside the saved "
            "project, or in a temporary folder."))
        self.output_browse = _tab_reachable(browse_button(self.output_widget))
        describe(self.output_browse, tr("Browse for the output file"), tr(
            "Opens a file dialog to choose where the captions GeoPackage is saved."))
        form.addRow(buddy_label(tr("&Output:"), self.output_widget.lineEdit()),
                    self.output_widget)
        self.existing_combo = narrow(QComboBox(box))
        self.existing_combo.setObjectName("MapScribeOnExisting")
        for key, label in ON_EXISTING:
            self.existing_combo.addItem(tr(label), key)
        describe(self.existing_combo, tr("If the output already holds captions"), tr(
            "What Run does when the output file already holds captions: ask, resume the "
            "missing tiles, write to a new file, or replace them."))
        form.addRow(buddy_label(tr("If it &holds captions:"), self.existing_combo),
                    self.existing_combo)
        return box

    def _run_bar(self) -> QWidget:
        """What a run needs in sight: how many tiles and how long, Run, Cancel and Resume, the
        progress bar and the status line. Not in the form's layout: the dock keeps it below
        the scrolled form."""
        bar = QWidget(self)
        bar.setObjectName("MapScribeRunBar")
        layout = QVBoxLayout(bar)
        layout.setContentsMargins(6, 0, 6, 0)
        self.estimate = reading_label("MapScribeRunEstimate", tr("Tiles and time of the run"),
                                      bar, holds_paths=True)
        layout.addWidget(self.estimate)
        buttons_page = QWidget(bar)
        buttons = QHBoxLayout(buttons_page)
        buttons.setContentsMargins(0, 0, 0, 0)
        self.run_button = QPushButton(tr("&Run"), buttons_page)
        self.run_button.setObjectName("MapScribeRun")
        self.run_button.setDefault(True)
        describe(self.run_button, tr("Run captioning"), tr(
            "Captions the chosen area of the raster into the output GeoPackage, in the "
            "background."))
        self.cancel_button = QPushButton(tr("&Cancel"), buttons_page)
        self.cancel_button.setObjectName("MapScribeCancel")
        self.cancel_button.setEnabled(False)
        describe(self.cancel_button, tr("Cancel captioning"), tr(
            "Stops after the batch in hand; the tiles already captioned are kept and can be "
            "resumed."))
        self.resume_button = QPushButton(tr("Res&ume"), buttons_page)
        self.resume_button.setObjectName("MapScribeResume")
        self.resume_button.setVisible(False)
        describe(self.resume_button, tr("Resume captioning"), tr(
            "Captions the tiles the stopped run did not reach, into the same output."))
        for button in (self.run_button, self.cancel_button, self.resume_button):
            buttons.addWidget(button)
        buttons.addStretch(1)
        layout.addWidget(buttons_page)
        # Not in the tab order (a progress bar takes no input): the status line below says the
        # same in words, and keyboard users can reach that.
        self.progress = QProgressBar(bar)
        self.progress.setObjectName("MapScribeProgress")
        self.progress.setRange(0, 100)
        self.progress.setValue(0)
        describe(self.progress, tr("Captioning progress"), tr(
            "Share of the tiles captioned so far; it moves after each batch."))
        layout.addWidget(self.progress)
        self.status = reading_label("MapScribeStatus", tr("Status"), bar, holds_paths=True)
        layout.addWidget(self.status)
        return bar

    def focus_chain(self) -> List[QWidget]:
        """The form's controls in tab order, top to bottom (hidden or disabled ones are skipped
        by Qt when tabbing)."""
        return [self.raster_combo, self.raster_info,
                self.model_widget.lineEdit(), self.model_browse, self.model_info,
                self.details_button, self.train_button,
                self.area_combo, self.polygon_combo, self.selected_only,
                self.tile_size, self.tile_info, self.overlap, self.batch_size, self.beam,
                self.device_combo,
                self.output_widget.lineEdit(), self.output_browse, self.existing_combo,
                self.estimate, self.run_button, self.cancel_button, self.resume_button,
                self.status]

    def field_widget(self, field: str) -> QWidget:
        """The widget to fix for a ParameterError's ``field`` (Run when none fits)."""
        return {"raster": self.raster_combo, "model": self.model_widget.lineEdit(),
                "area": self.area_combo, "polygons": self.polygon_combo,
                "tile_size": self.tile_size, "output": self.output_widget.lineEdit(),
                }.get(field, self.run_button)

    # --- values -----------------------------------------------------------------------------
    def model_path(self) -> str:
        return self.model_widget.filePath().strip()

    def area_kind(self) -> str:
        return self.area_combo.currentData()

    def tile_size_value(self) -> Optional[float]:
        """The tile size in map units, or None for the model's own."""
        value = self.tile_size.value()
        return None if value <= NO_TILE_SIZE else float(value)

    def set_tile_units(self, units: str) -> None:
        """The raster's map unit after the tile size ("m", "°" …); degrees need more decimals."""
        self.tile_size.setSuffix(f" {units}")
        self.tile_size.setDecimals(6 if units == "°" else 2)

    def output_path(self) -> str:
        return self.output_widget.filePath().strip()

    def set_output_path(self, path: str, is_default: bool = False) -> None:
        """Show ``path`` as the output; ``is_default``: chosen by the dock, not by people, so
        the dock may replace it (another raster, the project saved elsewhere)."""
        self._setting_output = True
        try:
            self.output_widget.setFilePath(str(path))
        finally:
            self._setting_output = False
        self.output_is_default = is_default

    def _output_edited(self, *_args) -> None:
        if not self._setting_output:
            self.output_is_default = False

    def set_devices(self, devices: Sequence[Tuple[str, str]]) -> None:
        """Offer ``devices`` ((key, label) pairs), keeping the choice when it is still there."""
        current = self.device_combo.currentData()
        self.device_combo.clear()
        for key, label in devices:
            self.device_combo.addItem(label, key)
        self.device_combo.setCurrentIndex(max(0, self.device_combo.findData(current)))

    def _area_changed(self, *_args) -> None:
        polygons = self.area_kind() == AREA_POLYGONS
        self.polygon_combo.setEnabled(polygons)
        self.selected_only.setEnabled(polygons)

    # --- state ------------------------------------------------------------------------------
    def show_status(self, text: str, error: bool = False) -> None:
        """The status line (a label keyboard users can reach and a screen reader reads)."""
        self.status.setText(("⚠ " if error else "") + text)
        self.status.setProperty("error", error)

    def set_running(self, running: bool) -> None:
        had_focus = self.run_button.hasFocus() or self.cancel_button.hasFocus()
        self.run_button.setEnabled(not running)
        self.cancel_button.setEnabled(running)
        self.resume_button.setVisible(False if running else self.resume_button.isVisible())
        if had_focus:  # keep keyboard users on the button that now matters
            (self.cancel_button if running else self.run_button).setFocus(
                Qt.FocusReason.OtherFocusReason)

    def show_dependency_panel(self, missing: Sequence[str]) -> DependencyPanel:
        """What is missing and how to get it, at the top of the form (Run stays where it is and
        says to install first). The model is still described: its header needs no package."""
        panel = DependencyPanel(self)
        panel.setObjectName("MapScribeDependencies")
        self.panel_slot.addWidget(panel)
        self.estimate.setText(tr("Install what MapScribe lacks ({missing}, above) to "
                                 "caption.").format(missing=", ".join(missing)))
        return panel

    def show_run_again(self, panel: QWidget) -> None:
        """The dependency panel goes: everything is installed."""
        self.panel_slot.removeWidget(panel)
        panel.hide()
        panel.deleteLater()


def _tab_reachable(button: QWidget) -> QWidget:
    """A QgsFileWidget's browse button, reachable with Tab (it is not by default)."""
    button.setFocusPolicy(Qt.FocusPolicy.StrongFocus)
    return button
