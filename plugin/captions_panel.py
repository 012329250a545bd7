"""The captions panel: the tiles of a captions layer in reading order, with their captions.

Reading order is row by row from north to south, and west to east within a row, the way the
HTML report reads. Moving through the list (arrow keys, Page Up/Down, Home/End, or a click)
centres the map on the tile and flashes it, so a sighted helper and a screen-reader user follow
the same tile. "Copy caption" puts the current caption on the clipboard; "Export…" writes the
layer as a GeoPackage copy, GeoJSON, CSV or an accessible HTML report (model/export.py).
"""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass
from pathlib import Path
from typing import Dict, List, Optional

from qgis.core import (QgsCoordinateTransform, QgsFeatureRequest, QgsGeometry, QgsProject,
                       QgsVectorLayer)
from qgis.PyQt.QtCore import QCoreApplication, Qt, pyqtSignal
from qgis.PyQt.QtWidgets import (QApplication, QComboBox, QFileDialog, QHBoxLayout, QLabel,
                                 QListView, QListWidget, QListWidgetItem, QPushButton,
                                 QVBoxLayout, QWidget)

from . import layers as caption_layers_module

NODATA = "nodata"
# Export formats: (key, file-dialog filter, suffix).
EXPORT_CHOICES = (
    ("gpkg", "GeoPackage copy (*.gpkg)", ".gpkg"),
    ("geojson", "GeoJSON, WGS 84 (*.geojson)", ".geojson"),
    ("csv", "CSV table with WGS 84 centres (*.csv)", ".csv"),
    ("html", "HTML report for reading (*.html)", ".html"),
)


def _tr(text: str) -> str:
    return QCoreApplication.translate("MapScribeCaptionsPanel", text)


class ExportFailed(RuntimeError):
    """An export could not be written; the message says why."""


@dataclass(frozen=True)
class TileEntry:
    """One tile as the panel lists it; ``geometry`` is in the layer's CRS."""

    fid: int
    tile_id: int
    row: int
    col: int
    caption: Optional[str]
    score: Optional[float]
    status: str
    geometry: QgsGeometry

    def text(self) -> str:
        where = _tr("Row {row}, column {col}").format(row=self.row + 1, col=self.col + 1)
        if self.status == NODATA or not self.caption:
            return _tr("{where}: no caption (too little imagery)").format(where=where)
        return f"{where}: {self.caption}"


def _value(feature, name: str):
    value = feature[name]
    # OGR NULLs arrive as QVariant NULL (falsy, not None) in PyQGIS.
    return None if value is None or (hasattr(value, "isNull") and value.isNull()) else value


def tiles_in_reading_order(layer: QgsVectorLayer) -> List[TileEntry]:
    """The layer's tiles, rows from north to south, each row from west to east.

    Rows are the grid's rows (field ``row``), ordered by where their tiles lie rather than by
    the number, which follows the raster's pixel rows; in the layer's CRS north is up.
    """
    entries: Dict[int, List[TileEntry]] = {}
    request = QgsFeatureRequest().setSubsetOfAttributes(
        ["tile_id", "row", "col", "caption", "score", "status"], layer.fields())
    for feature in layer.getFeatures(request):
        if not feature.hasGeometry():
            continue
        caption, score = _value(feature, "caption"), _value(feature, "score")
        entry = TileEntry(fid=feature.id(), tile_id=int(feature["tile_id"]),
                          row=int(feature["row"]), col=int(feature["col"]),
                          caption=None if caption is None else str(caption),
                          score=None if score is None else float(score),
                          status=str(_value(feature, "status") or ""),
                          geometry=QgsGeometry(feature.geometry()))
        entries.setdefault(entry.row, []).append(entry)

    def centre_x(entry: TileEntry) -> float:
        return entry.geometry.centroid().asPoint().x()

    def row_y(group: List[TileEntry]) -> float:
        return sum(e.geometry.centroid().asPoint().y() for e in group) / len(group)

    groups = [sorted(group, key=centre_x) for group in entries.values()]
    groups.sort(key=row_y, reverse=True)
    return [entry for group in groups for entry in group]


def export_layer(layer: QgsVectorLayer, fmt: str, out_path: Path) -> Path:
    """Write ``layer``'s GeoPackage as ``fmt`` ('gpkg', 'geojson', 'csv', 'html') to
    ``out_path``; raises ExportFailed with a message for people."""
    gpkg, name = caption_layers_module.layer_source(layer)
    out_path = Path(out_path)
    if fmt == "gpkg":
        if out_path.exists() and out_path.resolve() == gpkg.resolve():
            raise ExportFailed(_tr("the copy would replace the GeoPackage it is made from: "
                                   "choose another file."))
        try:
            _copy_geopackage(gpkg, out_path)
        except (sqlite3.Error, OSError) as error:
            raise ExportFailed(_tr("cannot copy {src} to {dst}: {error}").format(
                src=gpkg, dst=out_path, error=error)) from None
        return out_path
    from ..model.output.exports import ExportError, export_captions

    try:
        return export_captions(gpkg, fmt, out_path, layer=name or None).path
    except ExportError as error:
        raise ExportFailed(str(error)) from None


def _copy_geopackage(source: Path, target: Path) -> None:
    """A consistent copy through SQLite's backup API (a GeoPackage is an SQLite database): a
    plain file copy could catch it between the main file and its write-ahead log."""
    partial = target.with_name(target.name + ".part")
    partial.unlink(missing_ok=True)
    source_db = sqlite3.connect(f"file:{source}?mode=ro", uri=True)
    try:
        target_db = sqlite3.connect(str(partial))
        try:
            source_db.backup(target_db)
        finally:
            target_db.close()
    finally:
        source_db.close()
    partial.replace(target)  # readers see the old file or the whole new one


class CaptionsPanel(QWidget):
    """The list of tiles of one captions layer, with Copy caption and Export…."""

    tileSelected = pyqtSignal(int)  # noqa: N815 - the fid of the tile now current
    exportFinished = pyqtSignal(str, str)  # noqa: N815 - (path, error or "")

    def __init__(self, canvas, parent: Optional[QWidget] = None) -> None:
        super().__init__(parent)
        self.setObjectName("MapScribeCaptionsPanel")
        self.canvas = canvas
        self.layer: Optional[QgsVectorLayer] = None
        self.entries: List[TileEntry] = []

        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)

        self.layer_label = QLabel(_tr("Captions &layer:"), self)
        self.layer_combo = QComboBox(self)
        self.layer_combo.setObjectName("MapScribeCaptionsLayer")
        self.layer_label.setBuddy(self.layer_combo)
        self.layer_combo.setAccessibleName(_tr("Captions layer"))
        self.layer_combo.setAccessibleDescription(_tr(
            "The MapScribe captions layer of the project whose tiles are listed below."))
        layout.addWidget(self.layer_label)
        layout.addWidget(self.layer_combo)

        self.summary = QLabel(_tr("No captions yet: run MapScribe on a raster."), self)
        self.summary.setObjectName("MapScribeCaptionsSummary")
        self.summary.setWordWrap(True)
        self.summary.setAccessibleName(_tr("Captions summary"))
        layout.addWidget(self.summary)

        self.list_label = QLabel(_tr("&Tiles in reading order (north to south, west to east):"),
                                 self)
        self.list_label.setWordWrap(True)
        self.list = QListWidget(self)
        self.list.setObjectName("MapScribeCaptionsList")
        self.list_label.setBuddy(self.list)
        self.list.setWordWrap(True)
        # Re-lay the wrapped entries out when the dock is resized (else they overlap or leave
        # gaps, laid out for the width they had when filled).
        self.list.setResizeMode(QListView.Adjust)
        self.list.setSpacing(1)
        self.list.setAccessibleName(_tr("Tiles and their captions"))
        self.list.setAccessibleDescription(_tr(
            "One entry per tile, row by row from north to south and west to east. Moving to an "
            "entry centres the map on that tile and flashes it."))
        layout.addWidget(self.list_label)
        layout.addWidget(self.list, 1)

        self.details = QLabel("", self)
        self.details.setObjectName("MapScribeTileDetails")
        self.details.setWordWrap(True)
        self.details.setTextInteractionFlags(Qt.TextSelectableByMouse
                                             | Qt.TextSelectableByKeyboard)
        self.details.setAccessibleName(_tr("Current tile"))
        layout.addWidget(self.details)

        buttons = QHBoxLayout()
        self.copy_button = QPushButton(_tr("&Copy caption"), self)
        self.copy_button.setObjectName("MapScribeCopyCaption")
        self.copy_button.setAccessibleName(_tr("Copy caption"))
        self.copy_button.setAccessibleDescription(_tr(
            "Copies the current tile's caption to the clipboard."))
        self.export_button = QPushButton(_tr("&Export…"), self)
        self.export_button.setObjectName("MapScribeExport")
        self.export_button.setAccessibleName(_tr("Export captions"))
        self.export_button.setAccessibleDescription(_tr(
            "Writes the captions as a GeoPackage copy, GeoJSON, CSV or an HTML report."))
        buttons.addWidget(self.copy_button)
        buttons.addWidget(self.export_button)
        layout.addLayout(buttons)

        QWidget.setTabOrder(self.layer_combo, self.list)
        QWidget.setTabOrder(self.list, self.copy_button)
        QWidget.setTabOrder(self.copy_button, self.export_button)

        self.layer_combo.currentIndexChanged.connect(self._layer_chosen)
        self.list.currentRowChanged.connect(self._row_changed)
        self.copy_button.clicked.connect(self.copy_caption)
        self.export_button.clicked.connect(self.export_dialog)
        project = QgsProject.instance()
        project.layersAdded.connect(self.refresh_layers)
        project.layersRemoved.connect(self.refresh_layers)
        self.refresh_layers()

    def showEvent(self, event) -> None:  # noqa: N802 (Qt API)
        super().showEvent(event)
        # Entries filled while this tab was hidden were wrapped for another width.
        self.list.doItemsLayout()

    def shutdown(self) -> None:
        """Disconnect from the project: it outlives the panel."""
        project = QgsProject.instance()
        for signal in (project.layersAdded, project.layersRemoved):
            try:
                signal.disconnect(self.refresh_layers)
            except TypeError:
                pass

    # --- layers --------------------------------------------------------------------------------
    def refresh_layers(self, *_args) -> None:
        """List the project's captions layers, keeping the current one when it is still there."""
        current = self.layer.id() if self._layer_alive() else None
        layers = caption_layers_module.caption_layers()
        self.layer_combo.blockSignals(True)
        self.layer_combo.clear()
        for layer in layers:
            self.layer_combo.addItem(layer.name(), layer.id())
        index = self.layer_combo.findData(current) if current else (0 if layers else -1)
        self.layer_combo.setCurrentIndex(index)
        self.layer_combo.blockSignals(False)
        if current is None or index < 0:
            self._layer_chosen()

    def _layer_alive(self) -> bool:
        if self.layer is None:
            return False
        try:
            return QgsProject.instance().mapLayer(self.layer.id()) is not None
        except RuntimeError:  # the C++ layer is gone
            return False

    def _layer_chosen(self, *_args) -> None:
        layer_id = self.layer_combo.currentData()
        layer = QgsProject.instance().mapLayer(layer_id) if layer_id else None
        self.set_layer(layer)

    def set_layer(self, layer: Optional[QgsVectorLayer]) -> None:
        """List the tiles of ``layer`` (None empties the panel)."""
        self.layer = layer
        if layer is not None:
            index = self.layer_combo.findData(layer.id())
            if index >= 0 and index != self.layer_combo.currentIndex():
                self.layer_combo.blockSignals(True)
                self.layer_combo.setCurrentIndex(index)
                self.layer_combo.blockSignals(False)
        self.reload()

    def reload(self) -> None:
        """Read the tiles again (after a resumed run added some)."""
        self.entries = tiles_in_reading_order(self.layer) if self.layer is not None else []
        self.list.blockSignals(True)
        self.list.clear()
        for entry in self.entries:
            item = QListWidgetItem(entry.text())
            item.setData(Qt.UserRole, entry.fid)
            self.list.addItem(item)
        self.list.blockSignals(False)
        captioned = sum(1 for e in self.entries if e.status != NODATA and e.caption)
        if self.layer is None:
            self.summary.setText(_tr("No captions yet: run MapScribe on a raster."))
        else:
            rows = len({e.row for e in self.entries})
            self.summary.setText(_tr(
                "{layer}: {tiles} tiles in {rows} rows, {captioned} with a caption.").format(
                    layer=self.layer.name(), tiles=len(self.entries), rows=rows,
                    captioned=captioned))
        self.details.setText("")
        has_tiles = bool(self.entries)
        self.copy_button.setEnabled(has_tiles)
        self.export_button.setEnabled(self.layer is not None)

    # --- the current tile ----------------------------------------------------------------------
    def current_entry(self) -> Optional[TileEntry]:
        row = self.list.currentRow()
        return self.entries[row] if 0 <= row < len(self.entries) else None

    def _row_changed(self, row: int) -> None:
        entry = self.current_entry()
        if entry is None:
            return
        score = "–" if entry.score is None else f"{entry.score:.2f}"
        self.details.setText(_tr("{text}\nScore {score} (mean log-probability), tile {tile}, "
                                 "status {status}.").format(text=entry.text(), score=score,
                                                            tile=entry.tile_id,
                                                            status=entry.status))
        self.show_tile(entry)
        self.tileSelected.emit(entry.fid)

    def show_tile(self, entry: TileEntry) -> None:
        """Centre the map on the tile (keeping the scale) and flash its outline."""
        if self.canvas is None or self.layer is None:
            return
        destination = self.canvas.mapSettings().destinationCrs()
        transform = QgsCoordinateTransform(self.layer.crs(), destination, QgsProject.instance())
        centre = QgsGeometry(entry.geometry.centroid())
        centre.transform(transform)
        self.canvas.setCenter(centre.asPoint())
        self.canvas.refresh()
        self.canvas.flashGeometries([entry.geometry], self.layer.crs())

    def copy_caption(self) -> Optional[str]:
        """Put the current tile's caption on the clipboard; returns it."""
        entry = self.current_entry()
        if entry is None:
            return None
        text = entry.caption if entry.caption else entry.text()
        QApplication.clipboard().setText(text)
        return text

    # --- export --------------------------------------------------------------------------------
    def export_dialog(self) -> Optional[Path]:
        """Ask for a file and a format, then export; returns the file written."""
        if self.layer is None:
            return None
        gpkg, _ = caption_layers_module.layer_source(self.layer)
        filters = ";;".join(label for _, label, _ in EXPORT_CHOICES)
        path, chosen = QFileDialog.getSaveFileName(
            self, _tr("Export captions"), str(gpkg.with_name(gpkg.stem + "-report.html")),
            filters, EXPORT_CHOICES[3][1])
        if not path:
            return None
        fmt, suffix = next(((key, suffix) for key, label, suffix in EXPORT_CHOICES
                            if label == chosen), ("html", ".html"))
        out = Path(path)
        if not out.suffix:
            out = out.with_suffix(suffix)
        return self.export(fmt, out)

    def export(self, fmt: str, out_path: Path) -> Optional[Path]:
        """Export the current layer; the outcome is shown in the panel and signalled."""
        if self.layer is None:
            return None
        try:
            written = export_layer(self.layer, fmt, Path(out_path))
        except ExportFailed as error:
            self.details.setText(_tr("Export failed: {error}").format(error=error))
            self.exportFinished.emit(str(out_path), str(error))
            return None
        self.details.setText(_tr("Exported to {path}").format(path=written))
        self.exportFinished.emit(str(written), "")
        return written
