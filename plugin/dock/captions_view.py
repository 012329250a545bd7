"""The captions panel's tree view: the regions and tiles of captions_tree.py, filtered by the
search, with Qt's standard tree keys (Up/Down, Right expands, Left collapses, Home/End,
type-ahead on the entries' first words).

It says which entry is current (:attr:`CaptionsTree.currentEntryChanged`) and which one people
chose with Enter or a double-click (:attr:`CaptionsTree.entryActivated`); the panel moves the
map. Filling it again (new tiles, the regions of a description) keeps the current entry, and
does not move the map.
"""

from __future__ import annotations

from typing import Dict, Optional, Sequence

from qgis.PyQt.QtCore import QItemSelectionModel, QModelIndex, QRect, Qt, pyqtSignal
from qgis.PyQt.QtGui import QStandardItemModel
from qgis.PyQt.QtWidgets import (
    QAbstractItemView,
    QStyledItemDelegate,
    QStyleOptionViewItem,
    QTreeView,
    QWidget,
)

from .captions_entries import RegionEntry, TileEntry
from .captions_tree import (
    GROUP,
    KEY_ROLE,
    REGION,
    TILE,
    SearchFilter,
    fill_model,
    kind_and_key,
)


def _group_of(index: QModelIndex) -> Optional[str]:
    """The key of the heading an entry is under (REGIONS_GROUP or TILES_GROUP)."""
    if not index.isValid():
        return None
    while index.parent().isValid():
        index = index.parent()
    return kind_and_key(index)[1]


class WrappingDelegate(QStyledItemDelegate):
    """Entries wrapped to the width the view gives them: a caption or a region's sentence is
    read whole, never cut off with an ellipsis. (QTreeView asks for an entry's height without
    saying how wide it will be; this says it.)"""

    def __init__(self, view: QTreeView) -> None:
        super().__init__(view)
        self.view = view

    def sizeHint(self, option, index):
        depth, parent = 1, index.parent()
        while parent.isValid():
            depth, parent = depth + 1, parent.parent()
        wrapped = QStyleOptionViewItem(option)
        width = self.view.viewport().width() - self.view.indentation() * depth
        wrapped.rect = QRect(0, 0, max(80, width), 1)  # a valid rect: Qt wraps only in one
        return super().sizeHint(wrapped, index)


class CaptionsTree(QTreeView):
    """Regions, then tiles; ``source`` is the item model, ``proxy`` its filtered view."""

    currentEntryChanged = pyqtSignal(object, str)  # TileEntry, RegionEntry or None; its words
    entryActivated = pyqtSignal(object)            # TileEntry or RegionEntry

    def __init__(self, parent: Optional[QWidget] = None) -> None:
        super().__init__(parent)
        self.source = QStandardItemModel(self)
        self.proxy = SearchFilter(self)
        self.proxy.setSourceModel(self.source)
        self.tiles: Dict[int, TileEntry] = {}
        self.regions: Dict[int, RegionEntry] = {}
        self._quiet = False  # being filled: the current entry is not announced
        self.setModel(self.proxy)
        self.setHeaderHidden(True)
        self.setWordWrap(True)
        self.setUniformRowHeights(False)
        self.setExpandsOnDoubleClick(False)  # a double-click activates, as Enter does
        self.setSelectionMode(QAbstractItemView.SelectionMode.SingleSelection)
        self.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
        self.header().setStretchLastSection(True)
        self.setItemDelegate(WrappingDelegate(self))
        self._laid_out_width = -1
        self.selectionModel().currentChanged.connect(self._current_changed)
        self.activated.connect(self._activated)

    def resizeEvent(self, event) -> None:
        super().resizeEvent(event)
        if self.viewport().width() != self._laid_out_width:  # wrap the entries again
            self._laid_out_width = self.viewport().width()
            self.scheduleDelayedItemsLayout()

    def fill(self, tiles: Sequence[TileEntry], regions: Optional[Sequence[RegionEntry]],
             regions_note: str = "") -> None:
        """Show ``tiles`` and ``regions`` (None: not described; ``regions_note`` says why),
        keeping the current entry where it still is."""
        current = self.proxy.mapToSource(self.currentIndex())
        kind, key = kind_and_key(current)
        group = _group_of(current)
        self.tiles = {tile.fid: tile for tile in tiles}
        self.regions = {region.region_id: region for region in regions or ()}
        self._quiet = True
        try:
            fill_model(self.source, tiles, regions, regions_note)
            self.expand_default()
            if kind is not None and not self.select(kind, key, group):
                self.select(kind, key)
        finally:
            self._quiet = False

    def set_words(self, words: Sequence[str]) -> None:
        """Keep only what holds every one of ``words`` (none: everything)."""
        self.proxy.set_words(words)
        self.expand_default()
        if self.currentIndex().isValid():
            self.scrollTo(self.currentIndex())

    def expand_default(self) -> None:
        """Searching: everything open, so every match is in sight. Else the two groups open,
        the regions' tiles and finer levels closed."""
        if self.proxy.words:
            self.expandAll()
            return
        self.collapseAll()
        for row in range(self.proxy.rowCount()):
            self.expand(self.proxy.index(row, 0))

    def select(self, kind: str, key, group: Optional[str] = None) -> bool:
        """Make the first entry of ``kind`` and ``key`` current (a tile is under its region
        first, then among the tiles; ``group``: only under that heading, REGIONS_GROUP or
        TILES_GROUP)."""
        found = self.source.match(self.source.index(0, 0), KEY_ROLE, key, -1,
                                  Qt.MatchFlag.MatchExactly | Qt.MatchFlag.MatchRecursive)
        for index in found:
            if kind_and_key(index) == (kind, key) and group in (None, _group_of(index)):
                proxied = self.proxy.mapFromSource(index)
                if proxied.isValid():
                    self.selectionModel().setCurrentIndex(
                        proxied, QItemSelectionModel.SelectionFlag.ClearAndSelect)
                    self.scrollTo(proxied)
                    return True
        return False

    def entry_at(self, index: QModelIndex):
        """The TileEntry or RegionEntry at ``index`` of the view (None: a heading)."""
        kind, key = kind_and_key(self.proxy.mapToSource(index))
        if kind == TILE:
            return self.tiles.get(key)
        if kind == REGION:
            return self.regions.get(key)
        return None

    def current_entry(self):
        return self.entry_at(self.currentIndex())

    def go_to_first_match(self) -> None:
        """Focus on the first region or tile in sight (the first match of a search)."""
        index = self.proxy.index(0, 0)
        while index.isValid() and kind_and_key(self.proxy.mapToSource(index))[0] == GROUP:
            index = self.indexBelow(index)
        self.setFocus(Qt.FocusReason.OtherFocusReason)
        if index.isValid():
            self.setCurrentIndex(index)

    def _current_changed(self, current: QModelIndex, _previous: QModelIndex) -> None:
        if self._quiet or not current.isValid():
            return
        self.currentEntryChanged.emit(self.entry_at(current),
                                      str(current.data(Qt.ItemDataRole.DisplayRole) or ""))

    def _activated(self, index: QModelIndex) -> None:
        """Enter or a double-click: the entry is shown again; a heading opens or closes."""
        entry = self.entry_at(index)
        if entry is not None:
            self.entryActivated.emit(entry)
        elif index.isValid():
            self.setExpanded(index, not self.isExpanded(index))
