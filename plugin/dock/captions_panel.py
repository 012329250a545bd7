"""The captions panel: a captioned area read from the whole to the details.

From the top: the captions layer; its **overview** (at most five sentences, read first; text a
screen reader reads and people can select) and where to look on the map (captions_describing);
a **search** box that filters the tree by words ("parking", "river") and says how many regions
and tiles match (captions_search); and the **tree** (captions_view, captions_tree): the regions,
largest first, each holding its tiles, then the tiles, from the whole area down to the details
in a caption pyramid, with the standard tree keys. Moving to a region or a tile centres the map
on it and flashes it; Enter does it again, zooming out for a region larger than the view
(captions_map). *Copy caption* and *Export…* (captions_export) are below.

The overview and the regions come from the engine's ``describe_captions`` in a task: after a
finished run (:meth:`CaptionsPanel.after_run`, which also fits the map to the captioned area),
with *Describe area*, or (reading only) when a layer described before is chosen.
"""

from __future__ import annotations

from typing import List, Optional

from qgis.core import QgsProject, QgsVectorLayer
from qgis.PyQt.QtCore import Qt, pyqtSignal
from qgis.PyQt.QtWidgets import (
    QApplication,
    QComboBox,
    QHBoxLayout,
    QLabel,
    QPushButton,
    QVBoxLayout,
    QWidget,
)

from ...model import COMPLETED
from .. import layers as caption_layers_module
from ..describe_task import DescribeCaptionsTask
from ..label_levels import LevelScales, layer_levels
from ..ui import buddy_label, named, set_tab_order, tr
from .captions_describing import (
    Describer,
    OverviewBox,
    notes_text,
    overview_text,
    stored_overview,
)
from .captions_entries import RegionEntry, TileEntry, regions_of, tiles_in_reading_order
from .captions_export import CaptionsExportError, ExportActions, export_layer
from .captions_map import labels_text, show_on_map, show_whole_area
from .captions_search import SearchBox
from .captions_view import CaptionsTree

# The most of the panel's height the overview and where to look take (they scroll beyond).
TOP_SHARE = 0.4


class CaptionsPanel(ExportActions, QWidget):
    """The overview, the search and the tree of one captions layer, with Copy and Export."""

    tileSelected = pyqtSignal(int)          # the fid of the tile now current
    regionSelected = pyqtSignal(int)        # the id of the region now current
    exportFinished = pyqtSignal(str, str)   # (path, error or "")
    describeFinished = pyqtSignal(object)   # the DescribeCaptionsTask, once shown

    def __init__(self, canvas, parent: Optional[QWidget] = None) -> None:
        super().__init__(parent)
        self.setObjectName("MapScribeCaptionsPanel")
        self.canvas = canvas
        self.layer: Optional[QgsVectorLayer] = None
        self.entries: List[TileEntry] = []
        self.regions: Optional[List[RegionEntry]] = None  # None: not described (yet)
        self.description = None
        self.describer = Describer(self)
        self.levels: List[LevelScales] = []
        self._regions_note = ""
        self._area_text = ""
        self._build()
        self._connect()
        self.refresh_layers()

    def _build(self) -> None:
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        self.layer_combo = named(QComboBox(self), "MapScribeCaptionsLayer", tr("Captions layer"),
                                 tr("The MapScribe captions layer of the project that is "
                                    "described and listed below."))
        layout.addWidget(buddy_label(tr("Captions &layer:"), self.layer_combo, self))
        layout.addWidget(self.layer_combo)
        self.summary = QLabel(tr("No captions yet: run MapScribe on a raster."), self)
        self.summary.setObjectName("MapScribeCaptionsSummary")
        self.summary.setWordWrap(True)
        self.summary.setAccessibleName(tr("Captions summary"))
        layout.addWidget(self.summary)

        self.top = OverviewBox(self)
        self.overview, self.where = self.top.overview, self.top.where
        self.describe_button = self.top.describe_button
        layout.addWidget(self.top)

        self.search = SearchBox(self)
        layout.addWidget(buddy_label(tr("&Search regions and tiles:"), self.search.edit, self))
        layout.addWidget(self.search.edit)
        layout.addWidget(self.search.status)

        self.tree = named(CaptionsTree(self), "MapScribeCaptionsTree", tr("Regions and tiles"),
                          tr("The regions, largest first, each holding its tiles; then every "
                             "tile, row by row from north to south and west to east. Right "
                             "expands, Left collapses; moving to an entry centres the map on it "
                             "and flashes it, Enter shows it again."))
        tree = self.tree
        layout.addWidget(buddy_label(tr("Regions and &tiles:"), tree, self))
        layout.addWidget(tree, 1)

        self.details = QLabel("", self)
        self.details.setObjectName("MapScribeTileDetails")
        self.details.setWordWrap(True)
        self.details.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse
                                             | Qt.TextInteractionFlag.TextSelectableByKeyboard)
        self.details.setAccessibleName(tr("Current tile"))
        layout.addWidget(self.details)

        buttons = QHBoxLayout()
        self.copy_button = named(QPushButton(tr("&Copy caption"), self), "MapScribeCopyCaption",
                                 tr("Copy caption"), tr(
            "Copies the current tile's caption (or the current region's sentence) to the "
            "clipboard."))
        self.export_button = named(QPushButton(tr("&Export…"), self), "MapScribeExport",
                                   tr("Export captions"), tr(
            "Writes the captions as a GeoPackage copy, GeoJSON, CSV or an HTML report."))
        buttons.addWidget(self.copy_button)
        buttons.addWidget(self.export_button)
        layout.addLayout(buttons)
        set_tab_order([self.layer_combo, self.overview, self.where, self.describe_button,
                       self.search.edit, tree, self.copy_button, self.export_button])

    def _connect(self) -> None:
        self.layer_combo.currentIndexChanged.connect(self._layer_chosen)
        self.tree.currentEntryChanged.connect(self._current_changed)
        self.tree.entryActivated.connect(self._activated)
        self.search.edit.textChanged.connect(self._search_changed)
        self.search.goToResults.connect(self.tree.go_to_first_match)
        self.describe_button.clicked.connect(lambda: self.describe(write=True))
        self.describer.finished.connect(self._described)
        self.copy_button.clicked.connect(self.copy_caption)
        self.export_button.clicked.connect(self.export_dialog)
        project = QgsProject.instance()
        project.layersAdded.connect(self.refresh_layers)
        project.layersRemoved.connect(self.refresh_layers)
        if self.canvas is not None:
            self.canvas.scaleChanged.connect(self._update_where)

    def resizeEvent(self, event) -> None:
        super().resizeEvent(event)
        self.top.setMaximumHeight(int(self.height() * TOP_SHARE))

    def showEvent(self, event) -> None:
        super().showEvent(event)
        # Entries filled while this tab was hidden were wrapped for another width.
        self.tree.doItemsLayout()

    def shutdown(self) -> None:
        """Disconnect from the project and the canvas (they outlive the panel) and let a
        description that is still being made end without it."""
        self.describer.shutdown()
        project = QgsProject.instance()
        signals = [(project.layersAdded, self.refresh_layers),
                   (project.layersRemoved, self.refresh_layers)]
        if self.canvas is not None:
            signals.append((self.canvas.scaleChanged, self._update_where))
        for signal, slot in signals:
            try:
                signal.disconnect(slot)
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
        """Describe and list ``layer`` (None empties the panel)."""
        self.layer = layer
        if layer is not None:
            index = self.layer_combo.findData(layer.id())
            if index >= 0 and index != self.layer_combo.currentIndex():
                self.layer_combo.blockSignals(True)
                self.layer_combo.setCurrentIndex(index)
                self.layer_combo.blockSignals(False)
        self.description, self.regions, self._area_text = None, None, ""
        self.details.setText("")
        self.levels = layer_levels(layer) if layer is not None else []
        self._read_overview()
        self.reload()

    def _source(self):
        return caption_layers_module.layer_source(self.layer)

    def _read_overview(self) -> None:
        """The overview stored with the layer, shown at once; its regions follow from a
        description that only reads (scheduled: a run's own description wins)."""
        self.describer.cancel_scheduled()
        if self.layer is None:
            self._regions_note = ""
            self._show_overview(tr("No captions yet: run MapScribe on a raster."))
            return
        gpkg, name = self._source()
        text, self._regions_note, described = stored_overview(gpkg, name)
        self._show_overview(text)
        if described:
            self.describer.schedule_read(gpkg, name, self.layer.id())

    def reload(self) -> None:
        """Read the tiles again (after a resumed run added some) and rebuild the tree."""
        self.entries = tiles_in_reading_order(self.layer) if self.layer is not None else []
        if self.description is not None:
            self.regions = regions_of(self.description, self.entries)
        self.tree.fill(self.entries, self.regions, self._regions_note)
        self._search_changed(self.search.edit.text())
        if self.layer is None:
            self.summary.setText(tr("No captions yet: run MapScribe on a raster."))
        else:
            captioned = sum(1 for e in self.entries if e.caption)
            rows = len({(e.level, e.row) for e in self.entries})
            self.summary.setText(tr(
                "{layer}: {tiles} tiles in {rows} rows, {captioned} with a caption.").format(
                    layer=self.layer.name(), tiles=len(self.entries), rows=rows,
                    captioned=captioned))
        self.copy_button.setEnabled(bool(self.entries))
        self.export_button.setEnabled(self.layer is not None)
        self.describe_button.setEnabled(self.layer is not None)
        self._update_where()

    # --- describing ----------------------------------------------------------------------------
    def after_run(self, result) -> None:
        """After a run (the dock calls this once its layer is added): fit the map to the
        captioned area, say where to look, and describe the area when the run is finished."""
        if result is None:
            return
        layer = caption_layers_module.find_caption_layer(result.output, result.layer)
        if layer is None:
            return
        if layer is not self.layer:
            self.set_layer(layer)
        if show_whole_area(self.canvas, layer):
            self._area_text = tr("After the run, the map shows the whole captioned area: {n} "
                                 "tiles.").format(n=len(self.entries))
        if result.stopped == COMPLETED:
            self.describe(write=True)
        else:
            self.describer.cancel_scheduled()
            self._regions_note = tr("not described: the run is not finished")
            self._show_overview(tr(
                "Not described: the run stopped before every tile was captioned. Press Resume "
                "on the Caption a raster tab; the area is described when the run is finished."))
            self.reload()
        self._update_where()

    @property
    def describe_task(self) -> Optional[DescribeCaptionsTask]:
        """The description in flight, if any."""
        return self.describer.task

    def describe(self, write: bool = True) -> Optional[DescribeCaptionsTask]:
        """Describe the current layer in a task: ``write`` stores the regions layer and the
        overview in its GeoPackage (and shows the regions on the map); without it the regions
        are only read (the layer was described before)."""
        if self.layer is None:
            return None
        if write:
            self._show_overview(tr("Describing the captioned area…"))
        self._regions_note = tr("being described…") if write else tr("being read…")
        self.describe_button.setEnabled(False)
        gpkg, name = self._source()
        return self.describer.start(gpkg, name, self.layer.id(), write=write)

    def _described(self, task: DescribeCaptionsTask) -> None:
        try:
            if self.layer is None or self.layer.id() != task.layer_id:
                return
            if task.description is None:
                self._show_overview(tr("The area could not be described: {error}").format(
                    error=task.error or tr("it was cancelled")))
                self._regions_note = tr("none (the area could not be described)")
            else:
                self.description = task.description
                self._show_overview(overview_text(task.description))
                self._regions_note = ""
            self.reload()
            if task.description is not None and task.description.notes:
                self.details.setText(notes_text(task.description))
        finally:
            self.describeFinished.emit(task)

    def _show_overview(self, text: str) -> None:
        self.top.say(self.overview, text)

    def _update_where(self, *_args) -> None:
        if self.layer is None or self.canvas is None:
            text = ""
        else:
            has_regions = bool(caption_layers_module.regions_layers(*self._source()))
            text = " ".join(part for part in (
                self._area_text, labels_text(self.canvas.scale(), self.levels, has_regions),
                tr("Choose a region or a tile below: the map centres on it and flashes it."))
                if part)
        self.top.say(self.where, text)

    # --- search --------------------------------------------------------------------------------
    def _search_changed(self, text: str) -> None:
        words = self.search.words()
        self.tree.set_words(words)
        self.search.say_count(self.regions, self.entries, words, text)

    # --- the current entry ---------------------------------------------------------------------
    def current_entry(self) -> Optional[TileEntry]:
        """The current tile (None when the current entry is a region or a heading)."""
        current = self.tree.current_entry()
        return current if isinstance(current, TileEntry) else None

    def current_region(self) -> Optional[RegionEntry]:
        current = self.tree.current_entry()
        return current if isinstance(current, RegionEntry) else None

    def _current_changed(self, entry, words: str) -> None:
        if isinstance(entry, TileEntry):
            score = "–" if entry.score is None else f"{entry.score:.2f}"
            self.details.setText(tr("{text}\nScore {score} (mean log-probability), tile "
                                    "{tile}, status {status}.").format(
                text=entry.text(), score=score, tile=entry.tile_id, status=entry.status))
            self.show_tile(entry)
            self.tileSelected.emit(entry.fid)
        elif isinstance(entry, RegionEntry):
            self.details.setText(tr("Region {id}, {theme}: {n} tiles. Right lists them; Enter "
                                    "shows the whole region on the map.").format(
                id=entry.region_id, theme=entry.theme, n=len(entry.tiles)))
            self.show_region(entry)
            self.regionSelected.emit(entry.region_id)
        else:
            self.details.setText(words)

    def _activated(self, entry) -> None:
        """Enter (or a double-click) on an entry: shown again; a region all in sight."""
        if isinstance(entry, TileEntry):
            self.show_tile(entry)
        elif isinstance(entry, RegionEntry):
            self.show_region(entry, fit=True)

    def show_tile(self, entry: TileEntry) -> None:
        """Centre the map on the tile (keeping the scale) and flash its outline."""
        show_on_map(self.canvas, self.layer, [entry.geometry])

    def show_region(self, region: RegionEntry, fit: bool = False) -> None:
        """Centre the map on the region and flash its tiles; ``fit``: all of it in sight."""
        show_on_map(self.canvas, self.layer, [tile.geometry for tile in region.tiles], fit)

    def copy_caption(self) -> Optional[str]:
        """Put the current tile's caption (a region's sentence) on the clipboard; returns it."""
        entry = self.tree.current_entry()
        if entry is None:
            return None
        if isinstance(entry, RegionEntry):
            text = entry.sentence
        else:
            text = entry.caption if entry.caption else entry.text()
        QApplication.clipboard().setText(text)
        return text


__all__ = ["CaptionsPanel", "CaptionsExportError", "TileEntry", "RegionEntry",
           "tiles_in_reading_order", "export_layer"]
