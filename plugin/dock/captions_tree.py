"""The captions panel's tree, as a Qt item model: regions, then the tiles from the whole area
down to the details; and the search that filters it by words.

::

    Regions: 4, largest first
        Farmland in the north-west: 16 tiles, … (25% of the captioned area); typically “…”.
            Row 1, column 1: many green farmlands …
            …
        …
    Tiles: 64, north to south, west to east            (one level)
        Row 1, column 1: …
    Tiles by level, from the whole area to the details  (a caption pyramid)
        Level 1 of 3, row 1, column 1: …               (its finer tiles inside it: parent_id)
            Level 2 of 3, row 1, column 1: …

Every item says what it is in words (a screen reader reads the item's text); its kind and key
are kept in item roles. A search keeps the regions and the tiles whose words hold every word
searched for (case-insensitive; "park" finds "parking"), and the groups and regions on the way
to them; :func:`count_matches` says how many there are.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Dict, List, Optional, Sequence, Tuple

from qgis.PyQt.QtCore import QModelIndex, QSortFilterProxyModel, Qt
from qgis.PyQt.QtGui import QStandardItem, QStandardItemModel

from ..ui import tr
from .captions_entries import RegionEntry, TileEntry

KIND_ROLE = Qt.ItemDataRole.UserRole + 1     # GROUP, REGION or TILE
KEY_ROLE = Qt.ItemDataRole.UserRole + 2      # a tile's feature id, a region's id
SEARCH_ROLE = Qt.ItemDataRole.UserRole + 3   # the lower-case words a search looks in
GROUP, REGION, TILE = "group", "region", "tile"
REGIONS_GROUP, TILES_GROUP = "regions", "tiles"


def search_words(text: str) -> List[str]:
    """The words of a search, lower-case; an empty list searches for nothing (shows all)."""
    return [word for word in text.lower().split() if word]


def matches(search_text: str, words: Sequence[str]) -> bool:
    return all(word in search_text for word in words)


@dataclass(frozen=True)
class MatchCount:
    regions: int
    tiles: int


def count_matches(regions: Sequence[RegionEntry], tiles: Sequence[TileEntry],
                  words: Sequence[str]) -> MatchCount:
    """How many regions and tiles (each tile once) hold every one of ``words``."""
    return MatchCount(
        regions=sum(1 for region in regions if matches(region.search_text(), words)),
        tiles=sum(1 for tile in tiles if matches(tile.search_text(), words)))


def _item(text: str, kind: str, key, search: str = "") -> QStandardItem:
    item = QStandardItem(text)
    item.setEditable(False)
    item.setData(kind, KIND_ROLE)
    item.setData(key, KEY_ROLE)
    item.setData(search, SEARCH_ROLE)
    item.setToolTip(text)
    return item


def _tile_item(tile: TileEntry) -> QStandardItem:
    return _item(tile.text(), TILE, tile.fid, tile.search_text())


def regions_heading(regions: Optional[Sequence[RegionEntry]], note: str = "") -> str:
    """The regions group's words: how many, or why there are none (``note``)."""
    if regions is None or (not regions and note):
        return tr("Regions: {note}").format(note=note or tr("not described yet"))
    if not regions:
        return tr("Regions: none (no tile has a theme of its own)")
    return tr("Regions: {n}, largest first").format(n=len(regions))


def tiles_heading(tiles: Sequence[TileEntry]) -> str:
    levels = sorted({tile.level for tile in tiles})
    if len(levels) > 1:
        return tr("Tiles by level, from the whole area to the details: {levels} levels, "
                  "{n} tiles").format(levels=len(levels), n=len(tiles))
    return tr("Tiles: {n}, north to south, west to east").format(n=len(tiles))


def fill_model(model: QStandardItemModel, tiles: Sequence[TileEntry],
               regions: Optional[Sequence[RegionEntry]], regions_note: str = "") -> None:
    """Fill ``model`` with the two groups: the regions (None: not described; ``regions_note``
    says why) with their tiles, then the tiles, each tile of a pyramid inside the coarser tile
    around it (``parent_id``)."""
    model.clear()
    root = model.invisibleRootItem()
    regions_group = _item(regions_heading(regions, regions_note), GROUP, REGIONS_GROUP)
    for region in regions or ():
        item = _item(region.text(), REGION, region.region_id, region.search_text())
        item.appendRows([_tile_item(tile) for tile in region.tiles])
        regions_group.appendRow(item)
    root.appendRow(regions_group)

    tiles_group = _item(tiles_heading(tiles), GROUP, TILES_GROUP)
    placed: Dict[Tuple[int, int], QStandardItem] = {}
    coarser: Dict[int, int] = {}  # a level → the next coarser level
    levels = sorted({tile.level for tile in tiles})
    for finer, coarse in zip(levels[1:], levels):
        coarser[finer] = coarse
    for tile in tiles:  # coarsest level first: a parent is placed before its children
        item = _tile_item(tile)
        parent = None
        if tile.parent_id is not None and tile.level in coarser:
            parent = placed.get((coarser[tile.level], tile.parent_id))
        (parent or tiles_group).appendRow(item)
        placed[(tile.level, tile.tile_id)] = item
    root.appendRow(tiles_group)


def kind_and_key(index: QModelIndex) -> Tuple[Optional[str], object]:
    if not index.isValid():
        return None, None
    return index.data(KIND_ROLE), index.data(KEY_ROLE)


class SearchFilter(QSortFilterProxyModel):
    """Keeps the regions and tiles whose words hold every word searched for; the groups, and
    the regions and coarser tiles holding a match, stay on the way to it (recursive
    filtering). Groups themselves never match: searching "tiles" finds captions, not the
    heading."""

    def __init__(self, parent=None) -> None:
        super().__init__(parent)
        self.words: List[str] = []
        self.setRecursiveFilteringEnabled(True)

    def set_words(self, words: Sequence[str]) -> None:
        self.words = list(words)
        self.invalidateFilter()

    def filterAcceptsRow(self, source_row: int, source_parent: QModelIndex) -> bool:
        if not self.words:
            return True
        index = self.sourceModel().index(source_row, 0, source_parent)
        if index.data(KIND_ROLE) == GROUP:
            return False
        return matches(index.data(SEARCH_ROLE) or "", self.words)
