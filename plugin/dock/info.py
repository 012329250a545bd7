"""The dock's information lines: what it says about the chosen raster, the chosen model and the
tiles the engine will cut. Each is a read-only text that keyboard users reach.

The raster's line is what QGIS says of the layer. The model file's header is JSON: reading it
needs neither torch nor the weights, so the model is described the moment it is chosen. The
tiles are the engine's answer (``preview_tiles``) for the form's tile size (None: the model's
own): the dock never works a tile size out itself, so what it shows is what a run, the command
line and Processing do.
"""

from __future__ import annotations

from typing import Callable, Optional

from qgis.core import QgsRasterLayer
from qgis.PyQt.QtWidgets import QDialog, QDialogButtonBox, QPlainTextEdit, QVBoxLayout, QWidget

from ...model import (
    AreaOfInterest,
    MapScribeError,
    ModelHeader,
    TilePreview,
    WholeRaster,
    estimate_caption_time,
    preview_tiles,
    read_header,
)
from ..layer_sources import describe_web_source, layer_image_source
from ..map_inputs import AREA_LAYER, units_suffix
from ..ui import ParameterError, describe, log_bug, tr
from .form import CaptionForm
from .request import tile_preview_text


class InfoLines:
    """Shows the raster, the model and the tiles in the form's information lines, and keeps
    ``header`` (the chosen model's, or None with ``model_problem`` saying why) and ``preview``
    (the engine's tiles, or None; ``tile_problem`` says why the engine cannot tile with this
    size)."""

    def __init__(self, form: CaptionForm) -> None:
        self.form = form
        self.header: Optional[ModelHeader] = None
        self.model_problem: Optional[str] = None
        self.preview: Optional[TilePreview] = None
        self.tile_problem: Optional[str] = None
        self.run_tiles: Optional[int] = None  # the tiles of the chosen area (estimate_run)
        self.canvas = None  # the map canvas, for a web layer's resolution at the current view

    def describe_raster(self, layer: Optional[QgsRasterLayer]) -> None:
        """The raster's size, pixel size, bands and CRS; the tile size takes its map unit."""
        if layer is None:
            self.form.raster_info.setText(tr("Add a raster layer to the project to caption it."))
            return
        crs = layer.crs()
        units = units_suffix(crs)
        try:
            source = layer_image_source(layer)
        except ParameterError as problem:  # listed, but Run says the same and does not start
            self.form.raster_info.setText(f"⚠ {problem}")
            return
        if source.is_web:  # a service has no size in pixels: what it is, truthfully
            self.form.raster_info.setText(describe_web_source(layer, source, self.canvas))
            self.form.set_tile_units(units)
            return
        self.form.raster_info.setText(tr(
            "{name}: {width} × {height} pixels of {px:.6g} × {py:.6g} {units}, {bands} band(s), "
            "{crs}.").format(name=layer.name(), width=layer.width(), height=layer.height(),
                             px=layer.rasterUnitsPerPixelX(), py=layer.rasterUnitsPerPixelY(),
                             units=units, bands=layer.bandCount(),
                             crs=crs.authid() or crs.description()))
        self.form.set_tile_units(units)

    def describe_view(self, layer: Optional[QgsRasterLayer]) -> None:
        """The view moved: a web layer's ground resolution at the view is said again."""
        if layer is not None and layer.providerType() == "wms":
            self.describe_raster(layer)

    def read_model(self) -> None:
        """Read the chosen model's header and show its description (or what is wrong)."""
        self.header, self.model_problem = None, None
        path, info = self.form.model_path(), self.form.model_info
        self.form.details_button.setEnabled(False)
        info.setAccessibleDescription("")
        if not path:
            info.setText(tr("Choose a model file (.mscap), or train one. No default model is "
                            "installed."))
            return
        try:
            self.header = read_header(path)
        except MapScribeError as error:
            self.model_problem = str(error)
            info.setText(tr("⚠ This model cannot be used: {error}").format(error=error))
        except Exception as error:  # noqa: BLE001 - a bug, told as one and logged
            self.model_problem = log_bug(tr("Reading the model file"), error)
            info.setText("⚠ " + self.model_problem)
        else:
            # One line here; the whole card behind "Full description…" (and read by screen
            # readers as the line's description).
            info.setText(self.header.summary())
            info.setAccessibleDescription(self.header.describe())
            self.form.details_button.setEnabled(True)

    def plan_tiles(self, layer: Optional[QgsRasterLayer]) -> None:
        """Ask the engine what the tiles of ``layer`` will be with the form's tile size and
        say it under the tile size; an impossible tile size is said there too."""
        self.preview, self.tile_problem = None, None
        info = self.form.tile_info
        if layer is None or self.header is None:
            info.setText("")
            return
        raster = self._preview_source(layer)
        if raster is None or raster.is_web:
            # A web layer's zoom follows the area (the visible extent): said before Run below.
            info.setText(tr("The zoom level closest to the model's ground resolution is read "
                            "from the service.") if raster is not None and raster.is_web
                         else "")  # not readable: the raster line and Run say why
            return
        try:
            # The tile size alone decides the tile: the whole raster is enough to plan it.
            self.preview = preview_tiles(raster, self.form.model_path(), WholeRaster(),
                                         tile_size=self.form.tile_size_value(),
                                         tile_size_unit="map",
                                         overlap=float(self.form.overlap.value()),
                                         overlap_unit="percent")
        except MapScribeError as error:
            self.tile_problem = str(error)
            info.setText(f"⚠ {error}")
            return
        except Exception as error:  # noqa: BLE001 - a bug, told as one and logged
            info.setText("⚠ " + log_bug(tr("Planning the tiles"), error))
            return
        info.setText(tile_preview_text(
            self.preview, layer.name(), units_suffix(layer.crs()),
            whole_raster=self.form.area_kind() == AREA_LAYER,
            trained_resolution_m=self.header.ground_resolution_m,
            input_size=self.header.config.input_size))

    def estimate_run(self, layer: Optional[QgsRasterLayer],
                     read_area: Callable[[], AreaOfInterest], runtime: Optional[str],
                     device: str) -> None:
        """Before Run: how many tiles the chosen area takes (the engine's ``preview_tiles``)
        and, once the engine says which runtime captions (``runtime``), how long that takes
        on ``device`` (the engine's measured speeds). A problem is left for Run to say."""
        self.run_tiles, text = None, ""
        raster = self._preview_source(layer) if layer is not None else None
        if raster is not None and self.header is not None and self.tile_problem is None:
            try:
                preview = preview_tiles(raster, self.form.model_path(),
                                        read_area(), tile_size=self.form.tile_size_value(),
                                        tile_size_unit="map",
                                        overlap=float(self.form.overlap.value()),
                                        overlap_unit="percent")
            except MapScribeError:  # ParameterError too: Run says what to change
                pass
            except Exception as error:  # noqa: BLE001 - a bug, told as one and logged
                text = "⚠ " + log_bug(tr("Estimating the run"), error)
            else:
                self.run_tiles = preview.tiles
                text = run_estimate_text(preview.tiles, runtime, device)
        self.form.estimate.setText(text)


    @staticmethod
    def _preview_source(layer: QgsRasterLayer):
        """What ``preview_tiles`` plans for ``layer``: None when MapScribe cannot read it, or
        for a WMS or WMTS (their capabilities are read when Run is pressed, not on the main
        thread at every change of the form)."""
        try:
            source = layer_image_source(layer)
        except ParameterError:
            return None
        return None if source.kind in ("wms", "wmts") else source


RUNTIME_NAMES = {"onnx": "ONNX Runtime (torch is not installed)", "torch": "PyTorch"}


def run_estimate_text(tiles: int, runtime: Optional[str], device: str) -> str:
    """"Run will caption 42 tiles with ONNX Runtime … on the CPU: about 2 s …"."""
    text = tr("Run will caption {n} tiles").format(n=tiles) if tiles != 1 else tr(
        "Run will caption 1 tile")
    if runtime is None:  # the engine is still loading
        return text + "."
    estimate = estimate_caption_time(tiles, runtime, device)
    where = tr("the CPU") if estimate.device_kind == "cpu" else tr("the GPU")
    text += tr(" with {runtime} on {where}").format(
        runtime=tr(RUNTIME_NAMES.get(estimate.runtime, estimate.runtime)), where=where)
    if estimate.seconds is None:
        return text + tr(": no speed was measured on a GPU, so no time is estimated.")
    return text + tr(": about {time} (at the speed measured on {basis}).").format(
        time=duration_text(estimate.seconds), basis=estimate.basis)


def duration_text(seconds: float) -> str:
    """About how long, for people: "5 s", "3 min", "1.5 h"."""
    if seconds < 60:
        return tr("{n} s").format(n=max(1, round(seconds)))
    if seconds < 3600:
        return tr("{n} min").format(n=round(seconds / 60))
    return tr("{n:.1f} h").format(n=seconds / 3600)


def show_model_card(parent: QWidget, header: ModelHeader) -> QDialog:
    """The model's whole card (its header described) in a dialog people can read, select and
    copy, closed with Escape or Close."""
    dialog = QDialog(parent)
    dialog.setObjectName("MapScribeModelCard")
    dialog.setWindowTitle(tr("MapScribe model: {summary}").format(summary=header.summary()))
    layout = QVBoxLayout(dialog)
    text = QPlainTextEdit(header.describe(), dialog)
    text.setObjectName("MapScribeModelCardText")
    text.setReadOnly(True)
    describe(text, tr("Model description"), header.summary())
    layout.addWidget(text)
    buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Close, dialog)
    buttons.rejected.connect(dialog.reject)
    layout.addWidget(buttons)
    dialog.resize(640, 360)
    dialog.show()
    text.setFocus()
    return dialog
