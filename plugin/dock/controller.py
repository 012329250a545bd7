"""The MapScribe dock: caption a raster in one click, then read the captions tile by tile.

Two tabs: "Caption a raster" (the form, form.py) and "Captions" (captions_panel.py). This module
wires them: it reads the chosen model's header, asks the engine what the tiles will be, gathers
a request when Run is pressed (request.py), settles what to do with an output that already holds
captions (output.py), runs the engine's job in a :class:`~..tasks.CaptionRasterTask` and shows
its result. Problems are said in the dock's status line (and focus moves to the field to fix),
never as a traceback; a bug is said to be one, its traceback in the MapScribe log tab.

Building the dock is cheap, because QGIS builds it at start-up: the engine (and torch, about
3 s to import, or ONNX Runtime when torch is not installed) is loaded by an
:class:`~..engine_gate.EngineGate` the first time the dock is shown; until then the device list
offers Automatic and CPU. The model is described at once (its header needs no package).

The form scrolls; Run, Cancel and Resume, the run's tiles and estimated time, the progress bar
and the status line stay below it, always in sight (a laptop's 768 pixels included).
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import List, Optional, Tuple

from qgis.core import QgsApplication, QgsProject, QgsRasterLayer
from qgis.gui import QgsDockWidget
from qgis.PyQt.QtCore import Qt, QTimer, pyqtSignal
from qgis.PyQt.QtWidgets import QTabWidget, QWidget

from ...model import (
    MODEL_SUFFIX,
    AreaOfInterest,
    MapScribeError,
)
from .. import layers
from ..engine_gate import EngineFacts, EngineGate
from ..layer_sources import run_source
from ..map_inputs import area_of_kind, raster_file_or_name, shown_bands
from ..tasks import CaptionRasterTask, stop_and_wait
from ..ui import ParameterError, describe, log_message, tr
from .captions_panel import CaptionsPanel
from .form import CaptionForm
from .info import InfoLines, show_model_card
from .output import ask_about_existing, default_output_path, settle_existing
from .page import caption_page, show_result
from .request import (
    CaptionFormValues,
    CaptionRequest,
    caption_request,
    engine_params,
)

LOGGER = logging.getLogger(__name__)

DOCK_OBJECT_NAME = "MapScribeDock"
PLUGIN_ROOT = Path(__file__).resolve().parents[2]
DEFAULT_MODEL = PLUGIN_ROOT / "resources" / f"default{MODEL_SUFFIX}"
# How long unload waits for a cancelled run to reach the end of its batch (milliseconds).
SHUTDOWN_WAIT_MS = 20_000


class MapScribeDock(QgsDockWidget):
    """A dock titled "MapScribe"; hidden until its toolbar/menu action opens it."""

    engineReady = pyqtSignal()         # the engine is loaded and the devices are listed
    runStarted = pyqtSignal(object)    # the CaptionRasterTask
    runFinished = pyqtSignal(object)   # the CaptionRasterTask, after its layer was added

    def __init__(self, iface=None, parent: Optional[QWidget] = None) -> None:
        super().__init__(tr("MapScribe"), parent)
        self.iface = iface
        self.setObjectName(DOCK_OBJECT_NAME)
        self.setAllowedAreas(Qt.DockWidgetArea.LeftDockWidgetArea
                             | Qt.DockWidgetArea.RightDockWidgetArea)
        # Screen readers announce the accessible name when focus enters the dock, and the
        # description on request: say what the panel is for, not how it looks.
        self.setAccessibleName(tr("MapScribe captions panel"))
        self.setAccessibleDescription(tr(
            "Describes raster imagery in words: captions a raster tile by tile into a grid layer "
            "and lists the captions in reading order."))

        self.task: Optional[CaptionRasterTask] = None
        self.last_task: Optional[CaptionRasterTask] = None
        self.last_request: Optional[CaptionRequest] = None
        self.engine_ready = False
        self.runtime: Optional[str] = None  # 'torch' or 'onnx', once the engine is loaded
        self._gate_opened = False
        self._dependency_panel: Optional[QWidget] = None
        self.gate = EngineGate(self)

        self.tabs = QTabWidget(self)
        self.tabs.setObjectName("MapScribeTabs")
        describe(self.tabs, tr("MapScribe sections"), tr(
            "Caption a raster, or read the captions already made."))
        self.tabs.tabBar().setAccessibleName(tr("MapScribe sections"))
        self.form = CaptionForm()
        self.info = InfoLines(self.form)
        self.info.canvas = iface.mapCanvas() if iface is not None else None
        page, self.scroll = caption_page(self.tabs, self.form)
        self.tabs.addTab(page, tr("Caption a raster"))
        canvas = iface.mapCanvas() if iface is not None else None
        # The visible extent moves: the run's tile count follows, once the panning stops.
        self._estimate_timer = QTimer(self)
        self._estimate_timer.setSingleShot(True)
        self._estimate_timer.setInterval(400)
        self._estimate_timer.timeout.connect(lambda: self.info.describe_view(self.raster_layer()))
        self._estimate_timer.timeout.connect(self.refresh_tile_preview)
        if canvas is not None:
            canvas.extentsChanged.connect(self._estimate_timer.start)
        self.captions_panel = CaptionsPanel(canvas, self.tabs)
        self.tabs.addTab(self.captions_panel, tr("Captions"))
        self.setWidget(self.tabs)
        self._connect()

        self.select_model(str(DEFAULT_MODEL) if DEFAULT_MODEL.exists() else "")
        self._raster_changed()

    def _connect(self) -> None:
        form = self.form
        form.raster_combo.layerChanged.connect(self._raster_changed)
        form.model_widget.fileChanged.connect(self.refresh_model_info)
        form.tile_size.valueChanged.connect(self.refresh_tile_preview)
        form.overlap.valueChanged.connect(self.refresh_tile_preview)
        form.area_combo.currentIndexChanged.connect(self.refresh_tile_preview)
        form.polygon_combo.layerChanged.connect(self.refresh_tile_preview)
        form.selected_only.toggled.connect(self.refresh_tile_preview)
        form.device_combo.currentIndexChanged.connect(self.refresh_tile_preview)
        form.details_button.clicked.connect(self.show_model_card)
        form.train_button.clicked.connect(self.open_train_dialog)
        form.run_button.clicked.connect(self.run)
        form.cancel_button.clicked.connect(self.cancel)
        form.resume_button.clicked.connect(self.resume)
        self.gate.missing.connect(self._show_dependency_panel)
        self.gate.loading.connect(
            lambda: form.estimate.setText(tr("Loading the captioning engine…")))
        self.gate.ready.connect(self._engine_loaded)
        self.gate.failed.connect(lambda error: self.show_status(
            tr("The captioning engine cannot be loaded: {error}").format(error=error),
            error=True))
        QgsProject.instance().fileNameChanged.connect(self.refresh_default_output)

    # --- life cycle -------------------------------------------------------------------------
    def showEvent(self, event) -> None:
        super().showEvent(event)
        self.prepare()

    def prepare(self) -> None:
        """Check the dependencies and start loading the engine, once (on first show or Run)."""
        if not self._gate_opened:
            self._gate_opened = True
            self.gate.open()

    def _engine_loaded(self, facts: EngineFacts) -> None:
        self.engine_ready, self.runtime = True, facts.runtime
        self.form.set_devices(facts.devices)
        self.refresh_model_info()
        self.engineReady.emit()

    def _show_dependency_panel(self, missing: List[str]) -> None:
        """Instead of the Run button: what is missing and how to get it."""
        self._dependency_panel = self.form.show_dependency_panel(missing)
        self._dependency_panel.installed.connect(self._dependencies_installed)

    def _dependencies_installed(self, *_args) -> None:
        panel, self._dependency_panel = self._dependency_panel, None
        if panel is not None:
            self.form.show_run_again(panel)
        self.gate.load()

    def shutdown(self) -> None:
        """Before the plugin unloads: cancel a run and wait (bounded) for it to reach the end of
        its batch, detach from every task so none calls back into deleted widgets, and let go
        of the project's signals."""
        self._estimate_timer.stop()
        try:
            QgsProject.instance().fileNameChanged.disconnect(self.refresh_default_output)
            if self.iface is not None:
                self.iface.mapCanvas().extentsChanged.disconnect(self._estimate_timer.start)
        except TypeError:
            pass
        self.captions_panel.shutdown()
        # Both tasks import parts of the plugin on their thread: let them end before QGIS
        # unloads its modules, or they would import them again behind its back.
        self.gate.shutdown(SHUTDOWN_WAIT_MS)
        task, self.task = self.task, None
        if task is not None:
            self._disconnect_task(task)
            task.detach()
            if not stop_and_wait(task, SHUTDOWN_WAIT_MS):
                log_message(tr("unloading while '{task}' still runs; it was asked to stop after "
                               "its batch").format(task=task.description()))

    # --- raster, model, tiles ---------------------------------------------------------------
    def raster_layer(self) -> Optional[QgsRasterLayer]:
        layer = self.form.raster_combo.currentLayer()
        return layer if isinstance(layer, QgsRasterLayer) else None

    def _raster_changed(self, *_args) -> None:
        self.info.describe_raster(self.raster_layer())
        self.refresh_tile_preview()
        self.refresh_default_output()

    def model_path(self) -> str:
        return self.form.model_path()

    def select_model(self, path: str) -> None:
        """Choose the model file at ``path`` (the training dialog calls this with a new one)."""
        self.form.model_widget.setFilePath(str(path))
        self.refresh_model_info()

    def refresh_model_info(self, *_args) -> None:
        """Show the chosen model's description (or what is wrong with the file), and what its
        tiles will be."""
        self.info.read_model()
        self.refresh_tile_preview()

    def refresh_tile_preview(self, *_args) -> None:
        """Show what the engine says the tiles will be with the form's tile size, and how many
        the chosen area takes and how long that takes on the chosen device."""
        layer = self.raster_layer()
        self.info.plan_tiles(layer)
        if self._dependency_panel is None:
            self.info.estimate_run(layer, self._gather_area, self.runtime,
                                   self.form.device_combo.currentData() or "auto")

    def show_model_card(self, *_args):
        """The chosen model's whole card, in a dialog."""
        return show_model_card(self, self.header) if self.header is not None else None

    @property
    def header(self):
        """The chosen model's ModelHeader, or None when there is none or it cannot be used."""
        return self.info.header

    @property
    def tile_preview(self):
        """The engine's TilePreview for the form's tile size, or None."""
        return self.info.preview

    # --- output -----------------------------------------------------------------------------
    def output_path(self) -> str:
        return self.form.output_path()

    def set_output_path(self, path: str, is_default: bool = False) -> None:
        self.form.set_output_path(path, is_default)

    def refresh_default_output(self, *_args) -> None:
        """A default output for the chosen raster, unless people typed their own."""
        layer = self.raster_layer()
        if not self.form.output_is_default or layer is None:
            return
        path = default_output_path(Path(raster_file_or_name(layer)).name,
                                   QgsProject.instance().fileName())
        self.set_output_path(str(path), is_default=True)

    # --- gathering --------------------------------------------------------------------------
    def gather_request(self) -> CaptionRequest:
        """Everything the run needs, from the form, the canvas and the layer tree; raises
        ParameterError naming the field to fix."""
        layer = self.raster_layer()
        raster_path, source = run_source(layer)  # whole (XYZ, WMS, GPKG:f:t …), or refused
        self.refresh_tile_preview()  # the raster file may have changed since it was shown
        form = self.form
        values = CaptionFormValues(
            raster_path=raster_path, raster_name=layer.name(), model_path=self.model_path(),
            model_problem=self.info.model_problem,
            tile_size=form.tile_size_value(), tile_problem=self.info.tile_problem,
            overlap_percent=form.overlap.value(), batch_size=form.batch_size.value(),
            beam_size=form.beam.value(), device=form.device_combo.currentData() or "auto",
            output_path=form.output_path(), bands=shown_bands(layer), source=source)
        return caption_request(values, self._gather_area)

    def _gather_area(self) -> AreaOfInterest:
        canvas = self.iface.mapCanvas() if self.iface is not None else None
        return area_of_kind(self.form.area_kind(), canvas, self.form.polygon_combo.currentLayer(),
                            self.form.selected_only.isChecked())

    # --- running ----------------------------------------------------------------------------
    def is_running(self) -> bool:
        return self.task is not None

    def run(self, *_args) -> Optional[CaptionRasterTask]:
        """Run pressed: gather, settle what to do with an existing output, start the task."""
        if self.is_running():
            self.show_status(tr("A run is in progress: cancel it first."), error=True)
            return None
        self.prepare()
        self.form.progress.setValue(0)  # a refused run leaves no bar of an earlier one
        if self._dependency_panel is not None:
            self.show_status(tr("Install the missing Python packages first (above)."),
                             error=True)
            return None
        try:
            request = self.gather_request()
        except ParameterError as error:
            self.form.field_widget(error.field).setFocus(Qt.FocusReason.OtherFocusReason)
            self.show_status(tr("Cannot run: {error}").format(error=error), error=True)
            return None
        decision = self.decide_existing(request)
        if decision is None:
            self.show_status(tr("Not run: the output was left as it is."))
            return None
        request, mode = decision
        return self._start(request, mode)

    def resume(self, *_args) -> Optional[CaptionRasterTask]:
        """Finish the stopped run: the same request, with resume."""
        if self.is_running() or self.last_request is None:
            return None
        return self._start(self.last_request, "resume")

    def decide_existing(self, request: CaptionRequest) -> Optional[Tuple[CaptionRequest, str]]:
        """(request, mode) with mode 'create', 'resume' or 'replace'; None to stop. An output
        that already holds captions is never replaced without being asked for."""
        decision = settle_existing(request, self.form.existing_combo.currentData(),
                                   lambda existing: ask_about_existing(self, existing))
        if decision is not None and decision[0].output_path != request.output_path:
            # Written beside it: the form shows the new file.
            self.set_output_path(decision[0].output_path, is_default=self.form.output_is_default)
        return decision

    def _start(self, request: CaptionRequest, mode: str) -> Optional[CaptionRasterTask]:
        try:
            params = engine_params(request, overwrite=mode == "replace", resume=mode == "resume")
        except MapScribeError as error:
            self.show_status(tr("Cannot run: {error}").format(error=error), error=True)
            return None
        # QGIS must hold no connection to a GeoPackage the engine is about to replace or extend.
        layers.remove_caption_layer(request.output_path, params.layer)
        message_bar = self.iface.messageBar() if self.iface is not None else None
        task = CaptionRasterTask(params, message_bar, self._task_finished)
        task.progressChanged.connect(self._on_progress)
        task.progressText.connect(self._on_progress_text)
        self.task, self.last_request = task, request
        self.form.progress.setValue(0)
        self.form.set_running(True)
        verb = tr("Resuming") if mode == "resume" else tr("Captioning")
        self.show_status(tr("{verb} {raster} into {output}…").format(
            verb=verb, raster=request.raster_name, output=request.output_path))
        QgsApplication.taskManager().addTask(task)
        self.runStarted.emit(task)
        return task

    def cancel(self, *_args) -> None:
        if self.task is not None:
            self.task.cancel()
            self.form.cancel_button.setEnabled(False)
            self.show_status(tr("Stopping after the batch in hand; the tiles captioned so far "
                                "are kept…"))

    def _on_progress(self, percent: float) -> None:
        self.form.progress.setValue(int(round(percent)))

    def _on_progress_text(self, text: str) -> None:
        self.form.status.setText(tr("Captioning: {progress}").format(progress=text))

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
        self.form.set_running(False)
        try:
            self._show_result(task)
            # The map fitted to the captioned area, which is then described (captions panel).
            self.captions_panel.after_run(task.result)
        finally:
            self.runFinished.emit(task)

    _show_result = show_result  # plugin/dock/page.py: what a finished run shows

    # --- messages and training --------------------------------------------------------------
    def show_status(self, text: str, error: bool = False) -> None:
        """The dock's status line (a label keyboard users can reach and a screen reader reads)."""
        self.form.show_status(text, error)
        if error:
            LOGGER.info("dock: %s", text)

    def open_train_dialog(self, *_args):
        """The training dialog; its new model is chosen here."""
        from ..training.dialog import (
            open_train_dialog,  # built on demand, not at QGIS start
        )

        main_window = self.iface.mainWindow() if self.iface is not None else self
        return open_train_dialog(self.iface, main_window, on_model_ready=self.select_model)


__all__ = ["MapScribeDock", "DOCK_OBJECT_NAME", "DEFAULT_MODEL"]
