"""The MapScribe dock: caption a raster in one click, then read the captions tile by tile.

Two tabs. "Caption a raster": the raster layer, the model file (its description shown), the area
(visible extent, whole layer, or polygons of a vector layer), tile size and overlap (defaults
from the model), batch size, beam width, device, the output GeoPackage, Run / Cancel / Resume
and a progress bar. "Captions": the captions panel (captions_panel.py).

Every control has an accessible name and description and a label bound to it (Alt+letter
jumps there), the tab order follows the form from top to bottom, and nothing needs a mouse.
Problems are said in the dock's status line (and focus moves to the field to fix), never as a
traceback.

Building the dock is cheap, because QGIS builds it at start-up: the engine (and torch, about
3 s to import) is loaded on a worker thread the first time the dock is shown; until then the
model's description says it is on its way, and the device list offers Automatic and CPU.
"""

from __future__ import annotations

import importlib.util
import logging
import sys
from pathlib import Path
from typing import List, Optional

from qgis.core import QgsApplication, QgsMapLayerProxyModel, QgsProject, QgsRasterLayer
from qgis.gui import QgsDockWidget, QgsDoubleSpinBox, QgsFileWidget, QgsMapLayerComboBox
from qgis.PyQt.QtCore import QCoreApplication, Qt, pyqtSignal
from qgis.PyQt.QtWidgets import (QCheckBox, QComboBox, QFormLayout, QGroupBox, QHBoxLayout,
                                 QLabel, QMessageBox, QProgressBar, QPushButton, QScrollArea,
                                 QSizePolicy, QSpinBox, QStackedWidget, QTabWidget,
                                 QVBoxLayout, QWidget)

from ..model.geo.areas import WholeRaster
from . import layers
from .accessible import browse_button, describe
from .captions_panel import CaptionsPanel
from .parameters import MIN_TILE_PIXELS, CaptionRequest, ExistingCaptions, ParameterError, default_output_path, default_tile_size, engine_params, existing_captions, next_free_path, polygons_area, raster_file_path, shown_bands, tile_size_in_pixels, units_suffix, visible_extent_area
from .tasks import CaptionRasterTask, EngineWarmUpTask, engine_devices, log_message, stop_and_wait

LOGGER = logging.getLogger(__name__)

DOCK_OBJECT_NAME = "MapScribeDock"
PLUGIN_ROOT = Path(__file__).resolve().parents[1]
DEFAULT_MODEL = PLUGIN_ROOT / "resources" / "default.mscap"
REQUIRED_PACKAGES = ("torch", "torchvision")
# How long unload waits for a cancelled run to reach the end of its batch (milliseconds).
SHUTDOWN_WAIT_MS = 20_000

AREA_EXTENT, AREA_LAYER, AREA_POLYGONS = "extent", "layer", "polygons"
ON_EXISTING = (("ask", "Ask me"), ("resume", "Resume: caption only the missing tiles"),
               ("new", "Write to a new file beside it"), ("replace", "Replace its captions"))
FALLBACK_DEVICES = (("auto", "Automatic (GPU when there is one)"), ("cpu", "CPU"))


def _tr(text: str) -> str:
    return QCoreApplication.translate("MapScribeDock", text)


def _narrow(combo: QComboBox) -> None:
    """A combo box as narrow as the dock: its longest entry must not set the form's width."""
    combo.setSizeAdjustPolicy(QComboBox.AdjustToMinimumContentsLengthWithIcon)
    combo.setMinimumContentsLength(10)


def _form(box: QWidget) -> QFormLayout:
    """A form whose fields go below their labels when the dock is too narrow for both."""
    form = QFormLayout(box)
    form.setRowWrapPolicy(QFormLayout.WrapLongRows)
    form.setFieldGrowthPolicy(QFormLayout.AllNonFixedFieldsGrow)
    return form


def _missing_dependencies() -> List[str]:
    """What deps.py says is missing; before deps.py exists, the same check done here (a path
    search, no import)."""
    try:
        from .deps import missing_dependencies
    except ImportError:
        return [name for name in REQUIRED_PACKAGES if importlib.util.find_spec(name) is None]
    return list(missing_dependencies())


class MapScribeDock(QgsDockWidget):
    """A dock titled "MapScribe"; hidden until its toolbar/menu action opens it."""

    engineReady = pyqtSignal()  # noqa: N815 - the engine is loaded and the devices are listed
    runStarted = pyqtSignal(object)  # noqa: N815 - the CaptionRasterTask
    runFinished = pyqtSignal(object)  # noqa: N815 - the CaptionRasterTask, after the layer

    def __init__(self, iface=None, parent: Optional[QWidget] = None) -> None:
        super().__init__(_tr("MapScribe"), parent)
        self.iface = iface
        self.setObjectName(DOCK_OBJECT_NAME)
        self.setAllowedAreas(Qt.LeftDockWidgetArea | Qt.RightDockWidgetArea)
        # Screen readers announce the accessible name when focus enters the dock, and the
        # description on request: say what the panel is for, not how it looks.
        self.setAccessibleName(_tr("MapScribe captions panel"))
        self.setAccessibleDescription(_tr(
            "Describes raster imagery in words: captions a raster tile by tile into a grid layer "
            "and lists the captions in reading order."))

        self.task: Optional[CaptionRasterTask] = None
        self.last_task: Optional[CaptionRasterTask] = None
        self.last_request: Optional[CaptionRequest] = None
        self.header = None  # the chosen model's ModelHeader, once read
        self.engine_ready = False
        self._warm_up: Optional[EngineWarmUpTask] = None
        self._prepared = False
        self._output_is_default = True
        self._setting_output = False
        self._dependency_panel: Optional[QWidget] = None

        self.tabs = QTabWidget(self)
        self.tabs.setObjectName("MapScribeTabs")
        describe(self.tabs, _tr("MapScribe sections"), _tr(
            "Caption a raster, or read the captions already made."))
        self.tabs.tabBar().setAccessibleName(_tr("MapScribe sections"))
        self.form_page = self._build_form()
        scroll = QScrollArea(self.tabs)
        scroll.setWidgetResizable(True)
        scroll.setHorizontalScrollBarPolicy(Qt.ScrollBarAlwaysOff)  # the form fits the width
        scroll.setWidget(self.form_page)
        scroll.setFocusPolicy(Qt.NoFocus)
        self.tabs.addTab(scroll, _tr("Caption a raster"))
        canvas = iface.mapCanvas() if iface is not None else None
        self.captions_panel = CaptionsPanel(canvas, self.tabs)
        self.tabs.addTab(self.captions_panel, _tr("Captions"))
        self.setWidget(self.tabs)
        self._set_tab_order()
        self._connect()

        self.select_model(str(DEFAULT_MODEL) if DEFAULT_MODEL.exists() else "")
        self._raster_changed()
        self._area_changed()

    # =========================================================================================
    # Building
    # =========================================================================================
    def _build_form(self) -> QWidget:
        page = QWidget()
        page.setObjectName("MapScribeForm")
        outer = QVBoxLayout(page)

        self.intro = QLabel(_tr(
            "MapScribe captions the visible extent, the whole layer or chosen polygons of a "
            "raster, tile by tile, and lists the captions so the map can be read without "
            "seeing it."), page)
        self.intro.setObjectName("MapScribeIntro")
        self.intro.setWordWrap(True)
        outer.addWidget(self.intro)

        # --- raster ------------------------------------------------------------------------------
        raster_box = QGroupBox(_tr("Raster"), page)
        form = _form(raster_box)
        self.raster_combo = QgsMapLayerComboBox(raster_box)
        _narrow(self.raster_combo)
        self.raster_combo.setObjectName("MapScribeRaster")
        self.raster_combo.setFilters(QgsMapLayerProxyModel.RasterLayer)
        describe(self.raster_combo, _tr("Raster layer"), _tr(
            "The raster layer to caption. The bands shown on the map are the ones captioned."))
        form.addRow(self._label(_tr("Raster la&yer:"), self.raster_combo), self.raster_combo)
        self.raster_info = self._info_label("MapScribeRasterInfo", _tr("Raster details"))
        form.addRow(self.raster_info)
        outer.addWidget(raster_box)

        # --- model -------------------------------------------------------------------------------
        model_box = QGroupBox(_tr("Model"), page)
        form = _form(model_box)
        self.model_widget = QgsFileWidget(model_box)
        self.model_widget.setObjectName("MapScribeModel")
        self.model_widget.setStorageMode(QgsFileWidget.GetFile)
        self.model_widget.setFilter(_tr("MapScribe models (*.mscap);;All files (*)"))
        self.model_widget.setDialogTitle(_tr("Choose a MapScribe model file"))
        describe(self.model_widget, _tr("Model file"), _tr(
            "The captioning model, a .mscap file written by MapScribe."))
        describe(self.model_widget.lineEdit(), _tr("Model file path"), _tr(
            "Path of the .mscap model file; type it or use the browse button."))
        self.model_browse = self._file_button(self.model_widget)
        describe(self.model_browse, _tr("Browse for a model file"), _tr(
            "Opens a file dialog to choose a .mscap model file."))
        form.addRow(self._label(_tr("&Model file:"), self.model_widget.lineEdit()),
                    self.model_widget)
        self.model_info = self._info_label("MapScribeModelInfo", _tr("Model description"))
        form.addRow(self.model_info)
        self.train_button = QPushButton(_tr("&Train a model…"), model_box)
        self.train_button.setObjectName("MapScribeTrain")
        describe(self.train_button, _tr("Train a model"), _tr(
            "Opens the training dialog: train a captioner on an RSICD-format folder; the new "
            "model is then chosen here."))
        form.addRow(self.train_button)
        outer.addWidget(model_box)

        # --- area --------------------------------------------------------------------------------
        area_box = QGroupBox(_tr("Area"), page)
        form = _form(area_box)
        self.area_combo = QComboBox(area_box)
        _narrow(self.area_combo)
        self.area_combo.setObjectName("MapScribeArea")
        self.area_combo.addItem(_tr("Visible map extent"), AREA_EXTENT)
        self.area_combo.addItem(_tr("Whole raster layer"), AREA_LAYER)
        self.area_combo.addItem(_tr("Polygons of a vector layer"), AREA_POLYGONS)
        describe(self.area_combo, _tr("Area to caption"), _tr(
            "What part of the raster to caption: what the map shows now, the whole raster, or "
            "the polygons of a vector layer."))
        form.addRow(self._label(_tr("&Area:"), self.area_combo), self.area_combo)
        self.polygon_combo = QgsMapLayerComboBox(area_box)
        _narrow(self.polygon_combo)
        self.polygon_combo.setObjectName("MapScribePolygons")
        self.polygon_combo.setFilters(QgsMapLayerProxyModel.PolygonLayer)
        describe(self.polygon_combo, _tr("Polygon layer"), _tr(
            "The vector layer whose polygons limit the area; only tiles touching them are "
            "captioned."))
        form.addRow(self._label(_tr("&Polygon layer:"), self.polygon_combo), self.polygon_combo)
        self.selected_only = QCheckBox(_tr("Only &selected features"), area_box)
        self.selected_only.setObjectName("MapScribeSelectedOnly")
        describe(self.selected_only, _tr("Only selected features"), _tr(
            "Use only the selected polygons of the polygon layer."))
        form.addRow(self.selected_only)
        outer.addWidget(area_box)

        # --- tiles -------------------------------------------------------------------------------
        tiles_box = QGroupBox(_tr("Tiles and decoding"), page)
        form = _form(tiles_box)
        self.tile_size = QgsDoubleSpinBox(tiles_box)
        self.tile_size.setObjectName("MapScribeTileSize")
        self.tile_size.setRange(1e-6, 1e9)
        self.tile_size.setDecimals(2)
        self.tile_size.setShowClearButton(True)  # the clear button restores the model's size
        self.tile_size.setClearValueMode(QgsDoubleSpinBox.CustomValue)
        describe(self.tile_size, _tr("Tile size in ground units"), _tr(
            "The side of each square tile, in the raster's map units. The default is what the "
            "model was trained to see: its input size times its ground resolution."))
        form.addRow(self._label(_tr("Tile si&ze:"), self.tile_size), self.tile_size)
        self.tile_info = self._info_label("MapScribeTileInfo", _tr("Tile size in pixels"))
        form.addRow(self.tile_info)
        self.overlap = QSpinBox(tiles_box)
        self.overlap.setObjectName("MapScribeOverlap")
        self.overlap.setRange(0, 90)
        self.overlap.setSuffix(" %")
        describe(self.overlap, _tr("Tile overlap in percent"), _tr(
            "How much neighbouring tiles overlap, as a percentage of the tile size."))
        form.addRow(self._label(_tr("O&verlap:"), self.overlap), self.overlap)
        self.batch_size = QSpinBox(tiles_box)
        self.batch_size.setObjectName("MapScribeBatchSize")
        self.batch_size.setRange(1, 512)
        self.batch_size.setValue(8)
        describe(self.batch_size, _tr("Batch size"), _tr(
            "Tiles captioned together; larger is faster on a GPU and uses more memory. Progress "
            "and Cancel act between batches."))
        form.addRow(self._label(_tr("&Batch size:"), self.batch_size), self.batch_size)
        self.beam = QSpinBox(tiles_box)
        self.beam.setObjectName("MapScribeBeam")
        self.beam.setRange(1, 10)
        self.beam.setValue(3)
        describe(self.beam, _tr("Beam width"), _tr(
            "Captions the decoder keeps in play while writing; 1 is fastest, 3 to 5 give "
            "better captions."))
        form.addRow(self._label(_tr("B&eam width:"), self.beam), self.beam)
        self.device_combo = QComboBox(tiles_box)
        _narrow(self.device_combo)
        self.device_combo.setObjectName("MapScribeDevice")
        for key, label in FALLBACK_DEVICES:
            self.device_combo.addItem(_tr(label), key)
        describe(self.device_combo, _tr("Device"), _tr(
            "Where the model runs: automatic (the first GPU when there is one), a GPU by name, "
            "or the CPU."))
        form.addRow(self._label(_tr("&Device:"), self.device_combo), self.device_combo)
        outer.addWidget(tiles_box)

        # --- output ------------------------------------------------------------------------------
        output_box = QGroupBox(_tr("Output"), page)
        form = _form(output_box)
        self.output_widget = QgsFileWidget(output_box)
        self.output_widget.setObjectName("MapScribeOutput")
        self.output_widget.setStorageMode(QgsFileWidget.SaveFile)
        self.output_widget.setFilter(_tr("GeoPackage (*.gpkg)"))
        self.output_widget.setConfirmOverwrite(False)  # the dock asks, knowing what is there
        self.output_widget.setDialogTitle(_tr("Save the captions grid as"))
        describe(self.output_widget, _tr("Output GeoPackage"), _tr(
            "The GeoPackage the captions grid is written to."))
        describe(self.output_widget.lineEdit(), _tr("Output GeoPackage path"), _tr(
            "Path of the .gpkg file the captions grid is written to; by default beside the saved "
            "project, or in a temporary folder."))
        self.output_browse = self._file_button(self.output_widget)
        describe(self.output_browse, _tr("Browse for the output file"), _tr(
            "Opens a file dialog to choose where the captions GeoPackage is saved."))
        form.addRow(self._label(_tr("&Output:"), self.output_widget.lineEdit()),
                    self.output_widget)
        self.existing_combo = QComboBox(output_box)
        _narrow(self.existing_combo)
        self.existing_combo.setObjectName("MapScribeOnExisting")
        for key, label in ON_EXISTING:
            self.existing_combo.addItem(_tr(label), key)
        describe(self.existing_combo, _tr("If the output already holds captions"), _tr(
            "What Run does when the output file already holds captions: ask, resume the "
            "missing tiles, write to a new file, or replace them."))
        form.addRow(self._label(_tr("If it &holds captions:"), self.existing_combo),
                    self.existing_combo)
        outer.addWidget(output_box)

        # --- run ---------------------------------------------------------------------------------
        self.run_stack = QStackedWidget(page)
        self.run_stack.setObjectName("MapScribeRunStack")
        buttons_page = QWidget(self.run_stack)
        buttons = QHBoxLayout(buttons_page)
        buttons.setContentsMargins(0, 0, 0, 0)
        self.run_button = QPushButton(_tr("&Run"), buttons_page)
        self.run_button.setObjectName("MapScribeRun")
        self.run_button.setDefault(True)
        describe(self.run_button, _tr("Run captioning"), _tr(
            "Captions the chosen area of the raster into the output GeoPackage, in the "
            "background."))
        self.cancel_button = QPushButton(_tr("&Cancel"), buttons_page)
        self.cancel_button.setObjectName("MapScribeCancel")
        self.cancel_button.setEnabled(False)
        describe(self.cancel_button, _tr("Cancel captioning"), _tr(
            "Stops after the batch in hand; the tiles already captioned are kept and can be "
            "resumed."))
        self.resume_button = QPushButton(_tr("Res&ume"), buttons_page)
        self.resume_button.setObjectName("MapScribeResume")
        self.resume_button.setVisible(False)
        describe(self.resume_button, _tr("Resume captioning"), _tr(
            "Captions the tiles the stopped run did not reach, into the same output."))
        for button in (self.run_button, self.cancel_button, self.resume_button):
            buttons.addWidget(button)
        self.run_stack.addWidget(buttons_page)
        outer.addWidget(self.run_stack)

        # Not in the tab order (a progress bar takes no input): the status line below says the
        # same in words, and keyboard users can reach that.
        self.progress = QProgressBar(page)
        self.progress.setObjectName("MapScribeProgress")
        self.progress.setRange(0, 100)
        self.progress.setValue(0)
        describe(self.progress, _tr("Captioning progress"), _tr(
            "Share of the tiles captioned so far; it moves after each batch."))
        outer.addWidget(self.progress)
        self.status = self._info_label("MapScribeStatus", _tr("Status"))
        outer.addWidget(self.status)
        outer.addStretch(1)
        return page

    def _label(self, text: str, buddy: QWidget) -> QLabel:
        label = QLabel(text)
        label.setBuddy(buddy)  # Alt+<underlined letter> moves focus to the control
        return label

    def _info_label(self, name: str, accessible_name: str) -> QLabel:
        """A read-only text that keyboard users can reach and select (so a screen reader reads
        it), e.g. the model's description or the status."""
        label = QLabel("")
        label.setObjectName(name)
        label.setWordWrap(True)
        # A long file path is one word that cannot wrap: without this it would widen the whole
        # form beyond the dock. The full text stays selectable and readable by screen readers.
        label.setSizePolicy(QSizePolicy.Ignored, QSizePolicy.Preferred)
        label.setTextInteractionFlags(Qt.TextSelectableByMouse | Qt.TextSelectableByKeyboard)
        label.setFocusPolicy(Qt.StrongFocus)
        label.setAccessibleName(accessible_name)
        return label

    @staticmethod
    def _file_button(file_widget: QgsFileWidget):
        """The browse button of a QgsFileWidget, reachable with Tab."""
        button = browse_button(file_widget)
        button.setFocusPolicy(Qt.StrongFocus)
        return button

    def _set_tab_order(self) -> None:
        chain = self.focus_chain()
        for first, second in zip(chain, chain[1:]):
            QWidget.setTabOrder(first, second)

    def focus_chain(self) -> List[QWidget]:
        """The form's controls in tab order, top to bottom (hidden or disabled ones are skipped
        by Qt when tabbing)."""
        return [self.raster_combo, self.raster_info,
                self.model_widget.lineEdit(), self.model_browse, self.model_info,
                self.train_button,
                self.area_combo, self.polygon_combo, self.selected_only,
                self.tile_size, self.tile_info, self.overlap, self.batch_size, self.beam,
                self.device_combo,
                self.output_widget.lineEdit(), self.output_browse, self.existing_combo,
                self.run_button, self.cancel_button, self.resume_button, self.status]

    def _connect(self) -> None:
        self.raster_combo.layerChanged.connect(self._raster_changed)
        self.model_widget.fileChanged.connect(self._model_changed)
        self.area_combo.currentIndexChanged.connect(self._area_changed)
        self.tile_size.valueChanged.connect(self._update_tile_info)
        self.output_widget.fileChanged.connect(self._output_edited)
        self.train_button.clicked.connect(self.open_train_dialog)
        self.run_button.clicked.connect(self.run)
        self.cancel_button.clicked.connect(self.cancel)
        self.resume_button.clicked.connect(self.resume)
        project = QgsProject.instance()
        project.fileNameChanged.connect(self._refresh_default_output)

    # =========================================================================================
    # Life cycle
    # =========================================================================================
    def showEvent(self, event) -> None:  # noqa: N802 (Qt API)
        super().showEvent(event)
        self.prepare()

    def prepare(self) -> None:
        """Check the dependencies and start loading the engine, once (on first show or Run)."""
        if self._prepared:
            return
        self._prepared = True
        missing = _missing_dependencies()
        if missing:
            self._show_dependency_panel(missing)
            return
        self._load_engine()

    def _load_engine(self) -> None:
        if self.engine_ready or self._warm_up is not None:
            return
        if "torch" in sys.modules:
            # Already imported (a training run, the Processing provider, tests): no need for a
            # worker thread, and the dock is ready at once.
            try:
                devices, error = engine_devices(), None
            except Exception as failure:  # noqa: BLE001 - shown in the dock
                devices, error = [], f"{type(failure).__name__}: {failure}"
            self._engine_loaded_with(devices, error)
            return
        self._warm_up = EngineWarmUpTask(self._engine_loaded)
        self.model_info.setText(_tr("Loading the captioning engine…"))
        QgsApplication.taskManager().addTask(self._warm_up)

    def _engine_loaded(self, task: EngineWarmUpTask) -> None:
        self._warm_up = None
        self._engine_loaded_with(task.devices, task.error)

    def _engine_loaded_with(self, devices, error: Optional[str]) -> None:
        if error is not None:
            self.show_status(_tr("The captioning engine cannot be loaded: {error}").format(
                error=error), error=True)
            return
        self.engine_ready = True
        current = self.device_combo.currentData()
        self.device_combo.clear()
        for key, label in devices:
            self.device_combo.addItem(label, key)
        index = self.device_combo.findData(current)
        self.device_combo.setCurrentIndex(max(0, index))
        self.refresh_model_info()
        self.engineReady.emit()

    def _show_dependency_panel(self, missing: List[str]) -> None:
        """Instead of the Run button: what is missing and how to get it."""
        try:
            from .deps import DependencyPanel

            try:
                panel = DependencyPanel(self.run_stack)
            except TypeError:
                panel = DependencyPanel()
            panel.installed.connect(self._dependencies_installed)
        except ImportError:
            panel = QLabel(_tr(
                "MapScribe needs the Python packages {missing}, which this QGIS cannot import. "
                "Install them into QGIS's Python, then restart QGIS.").format(
                    missing=", ".join(missing)))
            panel.setWordWrap(True)
            panel.setTextInteractionFlags(Qt.TextSelectableByKeyboard
                                          | Qt.TextSelectableByMouse)
            panel.setFocusPolicy(Qt.StrongFocus)
        panel.setObjectName("MapScribeDependencies")
        if not panel.accessibleName():
            panel.setAccessibleName(_tr("Missing Python packages"))
        self._dependency_panel = panel
        self.run_stack.addWidget(panel)
        self.run_stack.setCurrentWidget(panel)
        self.model_info.setText(_tr("The model's description can be read once {missing} "
                                    "are installed.").format(missing=", ".join(missing)))

    def _dependencies_installed(self, *_args) -> None:
        self.run_stack.setCurrentIndex(0)
        if self._dependency_panel is not None:
            self.run_stack.removeWidget(self._dependency_panel)
            self._dependency_panel.deleteLater()
            self._dependency_panel = None
        self._load_engine()

    def shutdown(self) -> None:
        """Before the plugin unloads: cancel a run and wait (bounded) for it to reach the end of
        its batch, detach from every task so none calls back into deleted widgets, and let go
        of the project's signals."""
        try:
            QgsProject.instance().fileNameChanged.disconnect(self._refresh_default_output)
        except TypeError:
            pass
        self.captions_panel.shutdown()
        # Both tasks import parts of the plugin on their thread: let them end before QGIS
        # unloads its modules, or they would import them again behind its back.
        warm_up, self._warm_up = self._warm_up, None
        if warm_up is not None:
            warm_up.detach()
            stop_and_wait(warm_up, SHUTDOWN_WAIT_MS)
        task, self.task = self.task, None
        if task is not None:
            self._disconnect_task(task)
            task.detach()
            if not stop_and_wait(task, SHUTDOWN_WAIT_MS):
                log_message(f"unloading while '{task.description()}' still runs; it was asked "
                            "to stop after its batch")

    # =========================================================================================
    # Raster
    # =========================================================================================
    def raster_layer(self) -> Optional[QgsRasterLayer]:
        layer = self.raster_combo.currentLayer()
        return layer if isinstance(layer, QgsRasterLayer) else None

    def _raster_changed(self, *_args) -> None:
        layer = self.raster_layer()
        if layer is None:
            self.raster_info.setText(_tr("Add a raster layer to the project to caption it."))
        else:
            crs = layer.crs()
            units = units_suffix(crs)
            self.raster_info.setText(_tr(
                "{name}: {width} × {height} pixels of {px:.6g} × {py:.6g} {units}, {bands} "
                "band(s), {crs}.").format(
                    name=layer.name(), width=layer.width(), height=layer.height(),
                    px=layer.rasterUnitsPerPixelX(), py=layer.rasterUnitsPerPixelY(),
                    units=units, bands=layer.bandCount(),
                    crs=crs.authid() or crs.description()))
            self.tile_size.setSuffix(f" {units}")
            self.tile_size.setDecimals(6 if units == "°" else 2)
        self.reset_tile_size()
        self._refresh_default_output()

    # =========================================================================================
    # Model
    # =========================================================================================
    def model_path(self) -> str:
        return self.model_widget.filePath().strip()

    def select_model(self, path: str) -> None:
        """Choose the model file at ``path`` (the training dialog calls this with a new one)."""
        self.model_widget.setFilePath(str(path))
        self._model_changed()

    def _model_changed(self, *_args) -> None:
        self.refresh_model_info()

    def refresh_model_info(self) -> None:
        """Show the chosen model's description (or what is wrong with the file)."""
        self.header = None
        path = self.model_path()
        if not path:
            self.model_info.setText(_tr(
                "Choose a model file (.mscap), or train one. No default model is installed."))
        else:
            # The header is JSON: reading it needs neither torch nor the engine.
            from ..model.modelfile.header import ModelFileError, read_header

            try:
                self.header = read_header(path)
            except ModelFileError as error:
                self.model_info.setText(_tr("⚠ This model cannot be used: {error}").format(
                    error=error))
            else:
                self.model_info.setText(self.header.describe())
        self.reset_tile_size()

    # =========================================================================================
    # Tiles
    # =========================================================================================
    def default_tile_size(self) -> Optional[float]:
        layer = self.raster_layer()
        if layer is None:
            return None
        input_size = self.header.config.input_size if self.header is not None else 224
        resolution = self.header.ground_resolution_m if self.header is not None else None
        return default_tile_size(input_size, resolution, layer)

    def reset_tile_size(self) -> None:
        """Back to the model's own tile size for the chosen raster."""
        value = self.default_tile_size()
        if value is None:
            self._update_tile_info()
            return
        self.tile_size.setClearValue(value)
        self.tile_size.setValue(value)
        self._update_tile_info()

    def _update_tile_info(self, *_args) -> None:
        layer = self.raster_layer()
        if layer is None:
            self.tile_info.setText("")
            return
        across, down = tile_size_in_pixels(self.tile_size.value(), layer)
        text = _tr("A tile spans about {w:.0f} × {h:.0f} pixels of {name}.").format(
            w=across, h=down, name=layer.name())
        if self.header is not None and self.header.ground_resolution_m:
            text += " " + _tr("The model was trained on {res:g} m per pixel, at tiles of "
                              "{size:g} pixels.").format(res=self.header.ground_resolution_m,
                                                         size=self.header.config.input_size)
        if min(across, down) < MIN_TILE_PIXELS:
            text = _tr("⚠ Too small: {text} Tiles need at least {minimum} pixels a side; this "
                       "raster's pixels are coarser than the model's, so give a larger tile "
                       "size.").format(text=text, minimum=MIN_TILE_PIXELS)
        self.tile_info.setText(text)

    # =========================================================================================
    # Area
    # =========================================================================================
    def area_kind(self) -> str:
        return self.area_combo.currentData()

    def _area_changed(self, *_args) -> None:
        polygons = self.area_kind() == AREA_POLYGONS
        self.polygon_combo.setEnabled(polygons)
        self.selected_only.setEnabled(polygons)

    def _gather_area(self):
        kind = self.area_kind()
        if kind == AREA_LAYER:
            return WholeRaster()
        if kind == AREA_POLYGONS:
            return polygons_area(self.polygon_combo.currentLayer(),
                                 self.selected_only.isChecked())
        if self.iface is None:
            raise ParameterError("area", _tr("there is no map canvas here: choose Whole raster "
                                             "layer or polygons."))
        return visible_extent_area(self.iface.mapCanvas())

    # =========================================================================================
    # Output
    # =========================================================================================
    def output_path(self) -> str:
        return self.output_widget.filePath().strip()

    def set_output_path(self, path: str, is_default: bool = False) -> None:
        self._setting_output = True
        try:
            self.output_widget.setFilePath(str(path))
        finally:
            self._setting_output = False
        self._output_is_default = is_default

    def _output_edited(self, *_args) -> None:
        if not self._setting_output:
            self._output_is_default = False

    def _refresh_default_output(self, *_args) -> None:
        """A default output for the chosen raster, unless people typed their own."""
        layer = self.raster_layer()
        if not self._output_is_default or layer is None:
            return
        path = default_output_path(Path(raster_file_path_or_name(layer)).name,
                                   QgsProject.instance().fileName())
        self.set_output_path(str(path), is_default=True)

    # =========================================================================================
    # Gathering
    # =========================================================================================
    def gather_request(self) -> CaptionRequest:
        """Everything the run needs, from the widgets, the canvas and the layer tree; raises
        ParameterError naming the field to fix."""
        layer = self.raster_layer()
        raster_path = raster_file_path(layer)
        model = self.model_path()
        if not model:
            raise ParameterError("model", _tr("choose a model file (.mscap), or train one."))
        if not Path(model).is_file():
            raise ParameterError("model", _tr("the model file {path} does not exist.").format(
                path=model))
        if self.header is None:
            raise ParameterError("model", _tr("the model file {path} cannot be used (see its "
                                              "description above).").format(path=model))
        across, down = tile_size_in_pixels(self.tile_size.value(), layer)
        if min(across, down) < MIN_TILE_PIXELS:
            raise ParameterError("tile_size", _tr(
                "tiles of {size:g} {units} span only {px:.2g} pixels of {name}: give at least "
                "{minimum} pixels' worth ({need:g} {units}).").format(
                    size=self.tile_size.value(), units=units_suffix(layer.crs()), px=min(across, down),
                    name=layer.name(), minimum=MIN_TILE_PIXELS,
                    need=MIN_TILE_PIXELS * max(layer.rasterUnitsPerPixelX(),
                                               layer.rasterUnitsPerPixelY())))
        output = self.output_path()
        if not output:
            raise ParameterError("output", _tr("choose an output GeoPackage (.gpkg)."))
        if Path(output).suffix.lower() != ".gpkg":
            raise ParameterError("output", _tr("the output {path} must end in .gpkg (a "
                                               "GeoPackage).").format(path=output))
        return CaptionRequest(
            raster_path=raster_path, raster_name=layer.name(), model_path=model,
            area=self._gather_area(), tile_size=float(self.tile_size.value()),
            overlap_percent=float(self.overlap.value()), batch_size=self.batch_size.value(),
            beam_size=self.beam.value(), device=self.device_combo.currentData() or "auto",
            output_path=str(Path(output).expanduser()), bands=shown_bands(layer))

    def _field_widget(self, field: str) -> QWidget:
        return {"raster": self.raster_combo, "model": self.model_widget.lineEdit(),
                "area": self.area_combo, "polygons": self.polygon_combo,
                "tile_size": self.tile_size, "output": self.output_widget.lineEdit(),
                }.get(field, self.run_button)

    # =========================================================================================
    # Running
    # =========================================================================================
    def is_running(self) -> bool:
        return self.task is not None

    def run(self, *_args) -> Optional[CaptionRasterTask]:
        """Run pressed: gather, settle what to do with an existing output, start the task."""
        if self.is_running():
            self.show_status(_tr("A run is in progress: cancel it first."), error=True)
            return None
        self.prepare()
        if self._dependency_panel is not None:
            self.show_status(_tr("Install the missing Python packages first (below)."),
                             error=True)
            return None
        try:
            request = self.gather_request()
        except ParameterError as error:
            self._field_widget(error.field).setFocus(Qt.OtherFocusReason)
            self.show_status(_tr("Cannot run: {error}").format(error=error), error=True)
            return None
        decision = self._decide_existing(request)
        if decision is None:
            self.show_status(_tr("Not run: the output was left as it is."))
            return None
        request, mode = decision
        return self._start(request, mode)

    def resume(self, *_args) -> Optional[CaptionRasterTask]:
        """Finish the stopped run: the same request, with resume."""
        if self.is_running() or self.last_request is None:
            return None
        return self._start(self.last_request, "resume")

    def _decide_existing(self, request: CaptionRequest):
        """(request, mode) with mode 'create', 'resume' or 'replace'; None to stop. An output
        that already holds captions is never replaced without being asked for."""
        existing = existing_captions(request.output_path)
        if existing is None:
            return request, "create"
        choice = self.existing_combo.currentData()
        if choice == "ask":
            choice = self._ask_about_existing(existing)
        if choice is None:
            return None
        if choice == "new":
            new_path = next_free_path(Path(request.output_path))
            self.set_output_path(str(new_path), is_default=self._output_is_default)
            return _with_output(request, str(new_path)), "create"
        return request, choice

    def _ask_about_existing(self, existing: ExistingCaptions) -> Optional[str]:
        box = QMessageBox(self)
        box.setObjectName("MapScribeExistingOutput")
        box.setIcon(QMessageBox.Question)
        box.setWindowTitle(_tr("The output already holds captions"))
        if existing.complete:
            state = (_tr("its one tile") if existing.tiles_planned == 1
                     else _tr("all {n} tiles").format(n=existing.tiles_planned))
        else:
            state = _tr("{done} of {planned} tiles").format(done=existing.tiles_done,
                                                            planned=existing.tiles_planned)
        box.setText(_tr("{path} already holds captions of {raster}: {state}.").format(
            path=existing.path, raster=existing.raster_name or _tr("a raster"), state=state))
        box.setInformativeText(_tr(
            "Resume captions only the missing tiles (same raster, area, tile size and model). "
            "New file writes beside it. Replace deletes these captions first."))
        resume = box.addButton(_tr("Resume"), QMessageBox.AcceptRole)
        new = box.addButton(_tr("New file"), QMessageBox.AcceptRole)
        replace = box.addButton(_tr("Replace"), QMessageBox.DestructiveRole)
        box.addButton(QMessageBox.Cancel)
        box.setDefaultButton(new if existing.complete else resume)
        box.exec_()
        return {resume: "resume", new: "new", replace: "replace"}.get(box.clickedButton())

    def _start(self, request: CaptionRequest, mode: str) -> Optional[CaptionRasterTask]:
        from ..model.jobs.caption import CAPTION_RASTER_ERRORS

        try:
            params = engine_params(request, overwrite=mode == "replace", resume=mode == "resume")
        except CAPTION_RASTER_ERRORS as error:
            self.show_status(_tr("Cannot run: {error}").format(error=error), error=True)
            return None
        # QGIS must hold no connection to a GeoPackage the engine is about to replace or extend.
        layers.remove_caption_layer(request.output_path, params.layer)
        message_bar = self.iface.messageBar() if self.iface is not None else None
        task = CaptionRasterTask(params, message_bar, self._task_finished)
        task.progressChanged.connect(self._on_progress)
        task.progressText.connect(self._on_progress_text)
        self.task, self.last_request = task, request
        self.progress.setValue(0)
        self._set_running(True)
        verb = _tr("Resuming") if mode == "resume" else _tr("Captioning")
        self.show_status(_tr("{verb} {raster} into {output}…").format(
            verb=verb, raster=request.raster_name, output=request.output_path))
        QgsApplication.taskManager().addTask(task)
        self.runStarted.emit(task)
        return task

    def cancel(self, *_args) -> None:
        if self.task is not None:
            self.task.cancel()
            self.cancel_button.setEnabled(False)
            self.show_status(_tr("Stopping after the batch in hand; the tiles captioned so far "
                                 "are kept…"))

    def _set_running(self, running: bool) -> None:
        had_focus = self.run_button.hasFocus() or self.cancel_button.hasFocus()
        self.run_button.setEnabled(not running)
        self.cancel_button.setEnabled(running)
        self.resume_button.setVisible(False if running else self.resume_button.isVisible())
        if had_focus:  # keep keyboard users on the button that now matters
            (self.cancel_button if running else self.run_button).setFocus(Qt.OtherFocusReason)

    def _on_progress(self, percent: float) -> None:
        self.progress.setValue(int(round(percent)))

    def _on_progress_text(self, text: str) -> None:
        self.status.setText(_tr("Captioning: {progress}").format(progress=text))

    def _disconnect_task(self, task: CaptionRasterTask) -> None:
        for signal, slot in ((task.progressChanged, self._on_progress),
                             (task.progressText, self._on_progress_text)):
            try:
                signal.disconnect(slot)
            except TypeError:
                pass

    def _task_finished(self, task: CaptionRasterTask) -> None:
        """On the main thread, once the run ended (done, cancelled or failed)."""
        self._disconnect_task(task)
        if self.task is task:
            self.task = None
        self.last_task = task
        self._set_running(False)
        result = task.result
        if result is None:
            self.progress.setValue(0)
            if task.error is None:
                self.show_status(_tr("Cancelled before any tile was captioned."))
            else:
                self.show_status(_tr("Failed: {error}").format(error=task.error), error=True)
            self.resume_button.setVisible(False)
            self.runFinished.emit(task)
            return
        try:
            layer = layers.add_caption_layer(result.output, result.layer,
                                             f"{Path(result.output).stem} captions")
        except layers.LayerError as error:
            self.show_status(str(error), error=True)
            self.runFinished.emit(task)
            return
        done = result.skipped_existing + result.processed
        if result.stopped == "cancelled":
            self.resume_button.setVisible(True)
            self.show_status(_tr(
                "Stopped: {done} of {total} tiles captioned and kept in {output}; the layer is "
                "partial. Press Resume to caption the rest.").format(
                    done=done, total=result.tiles_total, output=result.output))
        else:
            self.resume_button.setVisible(False)
            self.progress.setValue(100)
            self.show_status(_tr(
                "Done: {total} tiles, {captioned} captioned now, {nodata} without data, in "
                "{seconds:.0f} s. The captions are listed in the Captions tab.").format(
                    total=result.tiles_total, captioned=result.captioned,
                    nodata=result.nodata, seconds=result.seconds))
            if self._output_is_default:  # the next run gets a new file, not this one
                self._refresh_default_output()
        self.captions_panel.refresh_layers()
        self.captions_panel.set_layer(layer)
        self.runFinished.emit(task)

    # =========================================================================================
    # Messages and training
    # =========================================================================================
    def show_status(self, text: str, error: bool = False) -> None:
        """The dock's status line (a label keyboard users can reach and a screen reader reads)."""
        self.status.setText(("⚠ " if error else "") + text)
        self.status.setProperty("error", error)
        if error:
            LOGGER.info("dock: %s", text)

    def open_train_dialog(self, *_args):
        """The training dialog (train_dialog.py); its new model is chosen here."""
        try:
            from .train_dialog import open_train_dialog
        except ImportError:
            self.show_status(_tr("Training in QGIS is not available in this version of "
                                 "MapScribe: use `mapscribe train` on the command line."),
                             error=True)
            return None
        main_window = self.iface.mainWindow() if self.iface is not None else self
        return open_train_dialog(self.iface, main_window, on_model_ready=self.select_model)


def raster_file_path_or_name(layer: QgsRasterLayer) -> str:
    """The raster's file for naming the output; its layer name when it is not a file."""
    try:
        return raster_file_path(layer)
    except ParameterError:
        return layer.name()


def _with_output(request: CaptionRequest, output: str) -> CaptionRequest:
    from dataclasses import replace

    return replace(request, output_path=output)


__all__ = ["MapScribeDock", "DOCK_OBJECT_NAME", "DEFAULT_MODEL"]
