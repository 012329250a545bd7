"""What the captions panel lists: the tiles of a captions layer in reading order, and the regions
the engine's description made of them.

Reading order is row by row from north to south, and west to east within a row, the way the
HTML report reads; with a caption pyramid (a ``level`` field, 0 the coarsest) level by level,
coarsest first. ``parent_id`` (the tile of the coarser level around a tile) is read when the
layer has it. The words shown and searched are made here, so that the tree (captions_tree.py)
only arranges them.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Dict, List, Optional, Sequence, Tuple

from qgis.core import QgsFeatureRequest, QgsGeometry, QgsVectorLayer

from ..ui import tr

NODATA = "nodata"
FAILED = "failed"
UNCERTAIN = "uncertain"
_OPTIONAL_FIELDS = ("level", "parent_id")


@dataclass(frozen=True)
class TileEntry:
    """One tile as the panel lists it; ``geometry`` is in the layer's CRS. ``level_label`` is
    'Level 2 of 3' in a caption pyramid, empty for a layer of one level."""

    fid: int
    tile_id: int
    row: int
    col: int
    caption: Optional[str]
    score: Optional[float]
    status: str
    geometry: QgsGeometry
    level: int = 0
    parent_id: Optional[int] = None
    level_label: str = ""

    def text(self) -> str:
        if self.level_label:
            where = tr("{level}, row {row}, column {col}").format(
                level=self.level_label, row=self.row + 1, col=self.col + 1)
        else:
            where = tr("Row {row}, column {col}").format(row=self.row + 1, col=self.col + 1)
        if self.status == FAILED and not self.caption:
            return tr("{where}: no caption (its imagery could not be read)").format(where=where)
        if self.status == NODATA or not self.caption:
            return tr("{where}: no caption (too little imagery)").format(where=where)
        if self.status == UNCERTAIN:
            return tr("{where}: (uncertain) {caption}").format(where=where, caption=self.caption)
        return f"{where}: {self.caption}"

    def search_text(self) -> str:
        """What a search looks in: the caption, and the words of its status."""
        words = [self.caption or ""]
        if self.status == UNCERTAIN:
            words.append(tr("uncertain"))
        elif self.status == NODATA:
            words.append(tr("no data"))
        elif self.status == FAILED:
            words.append(tr("failed"))
        return " ".join(words).lower()


@dataclass(frozen=True)
class RegionEntry:
    """One region of the engine's description, with its tiles (of the layer's finest level)."""

    region_id: int
    theme: str
    sentence: str
    typical_caption: str
    tiles: Tuple[TileEntry, ...]

    def text(self) -> str:
        return self.sentence

    def search_text(self) -> str:
        return " ".join((self.theme, self.sentence, self.typical_caption)).lower()


def _value(feature, name: str):
    value = feature[name]
    # OGR NULLs arrive as QVariant NULL (falsy, not None) in PyQGIS.
    return None if value is None or (hasattr(value, "isNull") and value.isNull()) else value


def tiles_in_reading_order(layer: QgsVectorLayer) -> List[TileEntry]:
    """The layer's tiles, level by level (coarsest first), each level's rows from north to
    south, each row from west to east.

    Rows are the grid's rows (field ``row``), ordered by where their tiles lie rather than by
    the number, which follows the raster's pixel rows; in the layer's CRS north is up.
    """
    names = layer.fields().names()
    optional = [name for name in _OPTIONAL_FIELDS if name in names]
    request = QgsFeatureRequest().setSubsetOfAttributes(
        ["tile_id", "row", "col", "caption", "score", "status", *optional], layer.fields())
    read: List[TileEntry] = []
    for feature in layer.getFeatures(request):
        if not feature.hasGeometry():
            continue
        caption, score = _value(feature, "caption"), _value(feature, "score")
        level = _value(feature, "level") if "level" in optional else None
        parent = _value(feature, "parent_id") if "parent_id" in optional else None
        read.append(TileEntry(
            fid=feature.id(), tile_id=int(feature["tile_id"]), row=int(feature["row"]),
            col=int(feature["col"]), caption=None if caption is None else str(caption),
            score=None if score is None else float(score),
            status=str(_value(feature, "status") or ""),
            geometry=QgsGeometry(feature.geometry()), level=int(level or 0),
            parent_id=None if parent is None else int(parent)))
    levels = sorted({entry.level for entry in read})
    labels = ({level: tr("Level {n} of {count}").format(n=position + 1, count=len(levels))
               for position, level in enumerate(levels)} if len(levels) > 1 else {})
    ordered: List[TileEntry] = []
    for level in levels:
        ordered.extend(_reading_order([e for e in read if e.level == level]))
    if labels:
        ordered = [_with_label(entry, labels[entry.level]) for entry in ordered]
    return ordered


def _with_label(entry: TileEntry, label: str) -> TileEntry:
    return TileEntry(entry.fid, entry.tile_id, entry.row, entry.col, entry.caption,
                     entry.score, entry.status, entry.geometry, entry.level, entry.parent_id,
                     label)


def _reading_order(entries: Sequence[TileEntry]) -> List[TileEntry]:
    rows: Dict[int, List[TileEntry]] = {}
    centres = {entry.fid: entry.geometry.centroid().asPoint() for entry in entries}
    for entry in entries:
        rows.setdefault(entry.row, []).append(entry)
    groups = [sorted(group, key=lambda e: centres[e.fid].x()) for group in rows.values()]
    groups.sort(key=lambda group: sum(centres[e.fid].y() for e in group) / len(group),
                reverse=True)
    return [entry for group in groups for entry in group]


def regions_of(description, tiles: Sequence[TileEntry]) -> List[RegionEntry]:
    """The regions of the engine's ``description``, largest first, each with its tiles in
    reading order (the tiles the engine put in it: ``Region.tile_ids`` at ``Region.level``)."""
    by_id = {(entry.level, entry.tile_id): entry for entry in tiles}
    regions = []
    for region in description.regions:
        members = tuple(by_id[(region.level, tile_id)] for tile_id in region.tile_ids
                        if (region.level, tile_id) in by_id)
        regions.append(RegionEntry(region_id=region.region_id, theme=region.theme,
                                   sentence=region.sentence,
                                   typical_caption=region.typical_caption, tiles=members))
    return regions
